//go:build cgo

package hsm_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
	"github.com/miekg/pkcs11"
)

// Test PINs. They are distinctive so that a test can check no error or log line holds them.
const (
	userPIN  = "user-pin-7391"
	soPIN    = "so-pin-5824"
	otherPIN = "other-pin-2046"
)

// setup creates fresh SoftHSM tokens for the test and returns the module path. Tokens must
// exist before the first Open of the test: SoftHSM reads its configuration on C_Initialize,
// which crypto11 calls when no context is open (every test closes its own).
func setup(t *testing.T, labels ...string) string {
	t.Helper()
	toks := make([]softhsmtest.Token, len(labels))
	for i, l := range labels {
		toks[i] = softhsmtest.Token{Label: l, PIN: userPIN, SOPIN: soPIN}
	}
	return softhsmtest.Setup(t, toks...)
}

// logger writes the package's log lines to the test output, failing the test if a line
// holds a PIN.
func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(pinGuard{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// pinGuard passes log output to the test and fails it on any test PIN.
type pinGuard struct{ t *testing.T }

func (g pinGuard) Write(p []byte) (int, error) {
	for _, pin := range []string{userPIN, soPIN, otherPIN, "wrong-pin-0000"} {
		if bytes.Contains(p, []byte(pin)) {
			g.t.Errorf("log line holds a PIN: %s", p)
		}
	}
	return g.t.Output().Write(p)
}

// open opens a token and closes it at the end of the test.
func open(t *testing.T, mod, label, pin string) *hsm.Token {
	t.Helper()
	tok, err := hsm.Open(context.Background(), hsm.Config{
		Module: mod, TokenLabel: label, PIN: secret.New(pin), Logger: logger(t),
	})
	if err != nil {
		t.Fatalf("Open(%q) = %v", label, err)
	}
	t.Cleanup(func() {
		if err := tok.Close(); err != nil {
			t.Errorf("Close(%q) = %v", label, err)
		}
	})
	return tok
}

// raw is an independent miekg/pkcs11 session on a token, for observing what the package
// left behind. Open it after hsm.Open: it never initialises or finalizes the module itself.
type raw struct {
	p  *pkcs11.Ctx
	sh pkcs11.SessionHandle
}

// rawSession opens a raw session on the token labelled label; it is closed before the
// token (cleanups run last-in first-out).
func rawSession(t testing.TB, mod, label string) *raw {
	t.Helper()
	p := pkcs11.New(mod)
	if p == nil {
		t.Fatalf("pkcs11.New(%s) failed", mod)
	}
	if err := p.Initialize(); err != nil && err != pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		t.Fatalf("Initialize = %v", err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil || ti.Label != label {
			continue
		}
		sh, err := p.OpenSession(s, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = p.CloseSession(sh)
			p.Destroy()
		})
		return &raw{p: p, sh: sh}
	}
	p.Destroy()
	t.Fatalf("no token %q", label)
	return nil
}

// find returns the handles of the objects matching tmpl.
func (r *raw) find(t testing.TB, tmpl ...*pkcs11.Attribute) []pkcs11.ObjectHandle {
	t.Helper()
	if err := r.p.FindObjectsInit(r.sh, tmpl); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.p.FindObjectsFinal(r.sh) }()
	var out []pkcs11.ObjectHandle
	for {
		hs, _, err := r.p.FindObjects(r.sh, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) == 0 {
			return out
		}
		out = append(out, hs...)
	}
}

// sessionObjects counts the session (non-token) objects of this process on the token.
func (r *raw) sessionObjects(t testing.TB) int {
	t.Helper()
	return len(r.find(t, pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)))
}

// requireOpenSSL skips without the openssl command, except in CI where it fails.
func requireOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("openssl is required in CI: %v", err)
		}
		t.Skipf("openssl not found: %v", err)
	}
}

// opensslUnwrapScript is FIELD-NOTES.md's OpenSSL unwrap procedure, verbatim apart from
// quoting: split at the KEK modulus length K, RSA-OAEP-SHA1 decrypt the AES key, RFC 5649
// unwrap the target. For private keys it then derives the public key from the PKCS#8.
const opensslUnwrapScript = `
head -c $K wrapped > rsa.bin; tail -c +$((K+1)) wrapped > kwp.bin
openssl pkeyutl -decrypt -inkey kek.pem -in rsa.bin -out aes.key \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1
openssl enc -d -id-aes256-wrap-pad -K "$(od -An -tx1 -v aes.key | tr -d ' \n')" -iv A65959A6 \
  -in kwp.bin -out target.p8.der
if [ "$PRIVATE" = 1 ]; then
  openssl pkey -inform DER -in target.p8.der -pubout -outform DER -out target.pub.der
fi
`

// opensslUnwrap unwraps ciphertext with the OpenSSL command line and returns the target
// bytes and, for private keys, the SubjectPublicKeyInfo DER OpenSSL derives from them.
func opensslUnwrap(t *testing.T, kek *rsa.PrivateKey, ciphertext []byte, private bool) (target, spki []byte) {
	t.Helper()
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(kek)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "kek.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	write(t, filepath.Join(dir, "wrapped"), ciphertext)
	priv := "0"
	if private {
		priv = "1"
	}
	cmd := exec.Command("sh", "-eu", "-c", opensslUnwrapScript)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "K="+strconv.Itoa(kek.Size()), "PRIVATE="+priv)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl unwrap failed: %v\n%s", err, out)
	}
	target = read(t, filepath.Join(dir, "target.p8.der"))
	if private {
		spki = read(t, filepath.Join(dir, "target.pub.der"))
	}
	return target, spki
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
