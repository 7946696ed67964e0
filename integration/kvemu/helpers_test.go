package kvemu_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
)

// noRetry disables the SDK's retries, so a test sees the first answer.
var noRetry = &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}

var (
	rsaKeysMu sync.Mutex
	rsaKeys   = map[int]*rsa.PrivateKey{}
)

// rsaKey returns an RSA key of the given size, generated once per test binary.
func rsaKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	rsaKeysMu.Lock()
	defer rsaKeysMu.Unlock()
	if k := rsaKeys[bits]; k != nil {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	rsaKeys[bits] = k
	return k
}

func pkcs8(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// kek is a Key Exchange Key created in the emulator.
type kek struct {
	kid string
	pub *rsa.PublicKey
}

func createKEK(t testing.TB, c *azkeys.Client, name string, bits int32) kek {
	t.Helper()
	resp, err := c.CreateKey(context.Background(), name, azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(bits),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)},
	}, nil)
	if err != nil {
		t.Fatalf("CreateKey(%s): %v", name, err)
	}
	return kek{kid: string(*resp.Key.KID), pub: jwkRSA(t, resp.Key)}
}

func jwkRSA(t testing.TB, k *azkeys.JSONWebKey) *rsa.PublicKey {
	t.Helper()
	if k == nil || len(k.N) == 0 || len(k.E) == 0 {
		t.Fatalf("JWK has no RSA public key: %+v", k)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())}
}

// wrap returns a .byok file holding target wrapped for k.
func (k kek) wrap(t testing.TB, target []byte) []byte {
	t.Helper()
	return byokFile(t, k.kid, k.pub, target)
}

func byokFile(t testing.TB, kid string, pub *rsa.PublicKey, target []byte) []byte {
	t.Helper()
	ct, err := keywrap.WrapRSAAES(rand.Reader, pub, target)
	if err != nil {
		t.Fatal(err)
	}
	f, err := byok.New(kid, ct, "kvemu test")
	if err != nil {
		t.Fatal(err)
	}
	return f.Marshal()
}

// importBYOK calls ImportKey as byok-online does.
func importBYOK(c *azkeys.Client, name string, kty azkeys.KeyType, crv string, file []byte) (azkeys.ImportKeyResponse, error) {
	jwk := &azkeys.JSONWebKey{Kty: to.Ptr(kty), T: file}
	if crv != "" {
		jwk.Crv = to.Ptr(azkeys.CurveName(crv))
	}
	return c.ImportKey(context.Background(), name, azkeys.ImportKeyParameters{Key: jwk, HSM: to.Ptr(true)}, nil)
}

// responseError returns err as an *azcore.ResponseError, failing the test otherwise.
func responseError(t testing.TB, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v (%T), want *azcore.ResponseError", err, err)
	}
	return re
}

func wantAPIError(t testing.TB, err error, status int, code string) *azcore.ResponseError {
	t.Helper()
	if err == nil {
		t.Fatalf("call succeeded, want %d %s", status, code)
	}
	re := responseError(t, err)
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("error = %d %s, want %d %s (%v)", re.StatusCode, re.ErrorCode, status, code, err)
	}
	return re
}

func versionCount(t testing.TB, s *kvemu.Server, name string) int {
	t.Helper()
	vs, err := s.KeyVersions(name)
	if errors.Is(err, kvemu.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(vs)
}

func start(t testing.TB, kind kvemu.Kind) (*kvemutest.Vault, *azkeys.Client) {
	t.Helper()
	v := kvemutest.Start(t, kvemu.Config{Kind: kind})
	return v, v.Client(t, nil)
}

// requireOpenSSL returns the openssl path, skipping the test when it is missing (failing
// it when CI is set).
func requireOpenSSL(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is required in CI")
		}
		t.Skip("openssl not installed")
	}
	return p
}

func runOpenSSL(t testing.TB, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(requireOpenSSL(t), args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %v: %v: %s", args, err, stderr.Bytes())
	}
	return out
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// logCapture is a slog handler that keeps records for assertions.
type logCapture struct {
	mu      sync.Mutex
	records []slog.Record
	next    slog.Handler
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) Handle(ctx context.Context, r slog.Record) error {
	l.mu.Lock()
	l.records = append(l.records, r.Clone())
	l.mu.Unlock()
	return l.next.Handle(ctx, r)
}
func (l *logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{parent: l, attrs: as}
}
func (l *logCapture) WithGroup(string) slog.Handler { return l }

// attrHandler forwards to the capture with the attributes of With.
type attrHandler struct {
	parent *logCapture
	attrs  []slog.Attr
}

func (a *attrHandler) Enabled(context.Context, slog.Level) bool { return true }
func (a *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(a.attrs...)
	return a.parent.Handle(ctx, r)
}
func (a *attrHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{parent: a.parent, attrs: append(append([]slog.Attr(nil), a.attrs...), as...)}
}
func (a *attrHandler) WithGroup(string) slog.Handler { return a }

// withAttr returns the records at level or above that have the attribute key.
func (l *logCapture) withAttr(level slog.Level, key string) []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []slog.Record
	for _, r := range l.records {
		if r.Level < level {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				out = append(out, r)
				return false
			}
			return true
		})
	}
	return out
}

// allText returns every record rendered as text, to check that secrets never appear.
func (l *logCapture) allText() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b bytes.Buffer
	h := slog.NewTextHandler(&b, nil)
	for _, r := range l.records {
		_ = h.Handle(context.Background(), r)
	}
	return b.String()
}
