package vault_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

type token struct{}

func (token) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "test-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// server is a Key Vault stand-in on loopback TLS that answers the SDK's challenge and then
// hands authenticated requests to handle.
type server struct {
	*httptest.Server
	authed atomic.Int32 // authenticated requests
	mu     sync.Mutex
	handle http.HandlerFunc
	bodies []string
}

func newServer(t *testing.T, handle http.HandlerFunc) *server {
	s := &server{handle: handle}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.example/tenant", resource="https://vault.azure.net"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Authorization") != "Bearer test-token" {
			t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
		}
		s.authed.Add(1)
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		s.handle(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) vault(timeout time.Duration) *vault.Azure {
	return vault.NewAzure(s.URL, vault.Options{Credential: token{}, Transport: s.Client(), RequestTimeout: timeout})
}

func kvError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
}

var byokFile = []byte(`{"schema_version":"1.0.0","header":{"kid":"https://x.vault.azure.net/keys/kek/1","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":"AAAA","generator":"test"}`)

func importParams() vault.ImportParams {
	return vault.ImportParams{Kty: "RSA-HSM", KeyOps: []string{"sign", "verify"}, BYOK: byokFile, Enabled: true,
		Tags: map[string]string{"byok-package": "ab"}}
}

func TestImportSendsExactlyOneRequestAndTranslatesErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		wantKind   error
		wantRetry  time.Duration
		ambiguous  bool
		wantStatus int
	}{
		{name: "internal error", status: 500, wantKind: vault.ErrServer, ambiguous: true},
		{name: "unavailable with retry-after", status: 503, header: map[string]string{"Retry-After": "3"}, wantKind: vault.ErrServer, wantRetry: 3 * time.Second, ambiguous: true},
		{name: "gateway timeout", status: 504, wantKind: vault.ErrServer, ambiguous: true},
		{name: "request timeout", status: 408, wantKind: vault.ErrServer, ambiguous: true},
		{name: "throttled", status: 429, header: map[string]string{"Retry-After": "7"}, wantKind: vault.ErrThrottled, wantRetry: 7 * time.Second},
		{name: "throttled in ms", status: 429, header: map[string]string{"Retry-After-Ms": "1500", "Retry-After": "9"}, wantKind: vault.ErrThrottled, wantRetry: 1500 * time.Millisecond},
		{name: "bad parameter", status: 400, wantKind: vault.ErrRefused},
		{name: "forbidden", status: 403, wantKind: vault.ErrRefused},
		{name: "not found", status: 404, wantKind: vault.ErrNotFound},
		{name: "conflict", status: 409, wantKind: vault.ErrConflict},
		{name: "unauthorized", status: 401, wantKind: vault.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				kvError(w, tt.status, "SomeCode", "something about the request")
			})
			_, err := s.vault(0).ImportKey(context.Background(), "key-1", importParams())
			if n := s.authed.Load(); n != 1 {
				t.Errorf("%d authenticated requests, want exactly 1 (no SDK retries)", n)
			}
			if !errors.Is(err, tt.wantKind) {
				t.Fatalf("ImportKey() = %v, want kind %v", err, tt.wantKind)
			}
			if got := vault.Ambiguous(err); got != tt.ambiguous {
				t.Errorf("Ambiguous() = %v, want %v", got, tt.ambiguous)
			}
			if got := vault.RetryAfter(err); got != tt.wantRetry {
				t.Errorf("RetryAfter() = %v, want %v", got, tt.wantRetry)
			}
			var ve *vault.Error
			if !errors.As(err, &ve) || ve.Status != tt.status || ve.Code != "SomeCode" || ve.Message != "something about the request" {
				t.Errorf("error = %#v", ve)
			}
			if strings.Contains(err.Error(), "test-token") {
				t.Error("the error message holds the token")
			}
		})
	}
}

func TestImportWithoutResponseIsAmbiguous(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		handle  http.HandlerFunc
	}{
		{"connection reset", 0, func(w http.ResponseWriter, r *http.Request) {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
		}},
		{"no answer within the timeout", 200 * time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.handle)
			_, err := s.vault(tt.timeout).ImportKey(context.Background(), "key-1", importParams())
			if !errors.Is(err, vault.ErrTransport) || !vault.Ambiguous(err) {
				t.Fatalf("ImportKey() = %v, want an ambiguous transport error", err)
			}
			if n := s.authed.Load(); n != 1 {
				t.Errorf("%d authenticated requests, want exactly 1", n)
			}
		})
	}
}

func TestImportInterruptedIsNotAVaultError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		cancel()
		<-r.Context().Done()
	})
	_, err := s.vault(0).ImportKey(ctx, "key-1", importParams())
	if !errors.Is(err, context.Canceled) || errors.Is(err, exitcode.ErrVault) {
		t.Fatalf("ImportKey() = %v, want context.Canceled and no Key Vault error", err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestImportReturnsTheKey(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPub, _ := ecKey.PublicKey.Bytes() // 0x04 || X || Y
	size := (len(ecPub) - 1) / 2
	tests := []struct {
		name string
		jwk  string
		want any
	}{
		{"rsa", fmt.Sprintf(`{"kid":"%%s/keys/key-1/0123","kty":"RSA-HSM","key_ops":["sign","verify"],"n":%q,"e":"AQAB"}`, b64(rsaKey.N.Bytes())), &rsaKey.PublicKey},
		{"ec", fmt.Sprintf(`{"kid":"%%s/keys/key-1/0123","kty":"EC-HSM","crv":"P-384","key_ops":["sign"],"x":%q,"y":%q}`, b64(ecPub[1:1+size]), b64(ecPub[1+size:])), &ecKey.PublicKey},
		{"oct", `{"kid":"%s/keys/key-1/0123","kty":"oct-HSM","key_ops":["wrapKey"]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *server
			s = newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPut || r.URL.Path != "/keys/key-1" || r.URL.Query().Get("api-version") == "" {
					t.Errorf("request %s %s", r.Method, r.URL)
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"key":`+tt.jwk+`,"attributes":{"enabled":true,"created":1800000000},"tags":{"byok-package":"ab"}}`, s.URL)
			})
			k, err := s.vault(0).ImportKey(context.Background(), "key-1", importParams())
			if err != nil {
				t.Fatalf("ImportKey() = %v", err)
			}
			if k.KID != s.URL+"/keys/key-1/0123" || !k.Enabled || k.Created.Unix() != 1_800_000_000 || k.Tags["byok-package"] != "ab" {
				t.Errorf("key = %+v", k)
			}
			switch want := tt.want.(type) {
			case nil:
				if k.Public != nil {
					t.Errorf("Public = %v, want none for oct-HSM", k.Public)
				}
			case interface{ Equal(x any) bool }:
				if !want.Equal(k.Public) {
					t.Errorf("Public = %v, want %v", k.Public, want)
				}
			}
			// The body carries the .byok as key_hsm, the tags and Hsm=true.
			var body struct {
				Key struct {
					Kty    string `json:"kty"`
					KeyHSM string `json:"key_hsm"`
				} `json:"key"`
				HSM  bool              `json:"Hsm"`
				Tags map[string]string `json:"tags"`
			}
			if err := json.Unmarshal([]byte(s.bodies[0]), &body); err != nil {
				t.Fatal(err)
			}
			if body.Key.KeyHSM != b64(byokFile) || !body.HSM || body.Tags["byok-package"] != "ab" || body.Key.Kty != "RSA-HSM" {
				t.Errorf("body = %s", s.bodies[0])
			}
		})
	}
}

func TestKeyVersionsFollowsPages(t *testing.T) {
	var s *server
	s = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("$skiptoken") == "" {
			fmt.Fprintf(w, `{"value":[{"kid":"%[1]s/keys/k/v1","attributes":{"enabled":true},"tags":{"t":"1"}}],"nextLink":"%[1]s/keys/k/versions?api-version=2025-07-01&$skiptoken=x"}`, s.URL)
			return
		}
		fmt.Fprintf(w, `{"value":[{"kid":"%s/keys/k/v2","attributes":{"enabled":false},"tags":{"t":"2"}}]}`, s.URL)
	})
	vs, err := s.vault(0).KeyVersions(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Version != "v1" || vs[1].Version != "v2" || vs[1].Tags["t"] != "2" || !vs[0].Enabled || vs[1].Enabled {
		t.Errorf("KeyVersions() = %+v", vs)
	}
	if n := s.authed.Load(); n != 2 {
		t.Errorf("%d requests, want 2 pages", n)
	}
}

func TestClientIsBuiltOnFirstUse(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-token")
	v := vault.NewAzure("https://127.0.0.1:1", vault.Options{TokenFile: missing})
	if v.URL() != "https://127.0.0.1:1" {
		t.Errorf("URL() = %q", v.URL())
	}
	// Building it needed nothing; the first call reads the token file and fails.
	_, err := v.GetKey(context.Background(), "k", "")
	var te *vault.TokenFileError
	if !errors.As(err, &te) {
		t.Fatalf("GetKey() = %v, want a *TokenFileError", err)
	}
	if err := os.WriteFile(missing, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The failure is remembered: the client is built once.
	if _, err2 := v.GetKey(context.Background(), "k", ""); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second GetKey() = %v, want the same error", err2)
	}
}

func TestDryRunImport(t *testing.T) {
	req, err := vault.DryRunImport(context.Background(), "https://contoso.vault.azure.net", "key-1", importParams())
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != http.MethodPut || req.URL != "https://contoso.vault.azure.net/keys/key-1?api-version=2025-07-01" {
		t.Errorf("request line = %s %s", req.Method, req.URL)
	}
	for k := range req.Headers {
		if strings.EqualFold(k, "Authorization") {
			t.Error("the dry run shows the Authorization header")
		}
	}
	if req.Headers["Content-Type"] != "application/json" || req.Headers["Content-Length"] == "" {
		t.Errorf("headers = %v", req.Headers)
	}
	if strings.Contains(req.Body, b64(byokFile)) || strings.Contains(req.String(), "AAAA") {
		t.Error("the dry run shows the .byok")
	}
	want := fmt.Sprintf(`"key_hsm":"<the .byok file: %d bytes as %d characters of base64url>"`, len(byokFile), len(b64(byokFile)))
	if !strings.Contains(req.Body, want) || !strings.Contains(req.Body, `"Hsm":true`) || !strings.Contains(req.Body, `"byok-package":"ab"`) {
		t.Errorf("body = %s", req.Body)
	}
}

// TestHostileAnswers: an answer longer than MaxAnswerBytes is refused as it is read (an
// ambiguous failure: the import may have happened), and a key whose public part does not
// parse is returned with PublicErr, everything else the vault claims kept for the report.
func TestHostileAnswers(t *testing.T) {
	t.Run("oversized", func(t *testing.T) {
		s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"key":{"kid":"x"},"tags":{"pad":"`)
			pad := strings.Repeat("a", 64<<10)
			for range vault.MaxAnswerBytes/len(pad) + 1 {
				fmt.Fprint(w, pad)
			}
			fmt.Fprint(w, `"}}`)
		})
		_, err := s.vault(0).ImportKey(context.Background(), "key-1", importParams())
		if !errors.Is(err, vault.ErrTransport) || !vault.Ambiguous(err) {
			t.Fatalf("ImportKey() = %v, want an ambiguous transport failure", err)
		}
		if !errors.Is(err, vault.ErrAnswerTooLarge) {
			t.Errorf("ImportKey() = %v, want it to say the answer is too large", err)
		}
	})
	t.Run("public key that does not parse", func(t *testing.T) {
		var s *server
		s = newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"key":{"kid":"%s/keys/key-1/0123","kty":"EC-HSM","crv":"P-256","x":"AQ","y":"AQ"},"attributes":{"enabled":true,"created":5}}`, s.URL)
		})
		k, err := s.vault(0).ImportKey(context.Background(), "key-1", importParams())
		if err != nil {
			t.Fatalf("ImportKey() = %v", err)
		}
		if k.Public != nil || k.PublicErr == nil || k.Kty != "EC-HSM" || k.KID != s.URL+"/keys/key-1/0123" || k.Created.Unix() != 5 {
			t.Errorf("key = %+v", k)
		}
	})
	t.Run("no key", func(t *testing.T) {
		s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"attributes":{"enabled":true}}`)
		})
		k, err := s.vault(0).ImportKey(context.Background(), "key-1", importParams())
		if err != nil || k.PublicErr == nil || k.KID != "" {
			t.Errorf("ImportKey() = %+v, %v; want a key with PublicErr", k, err)
		}
	})
}

type failingToken struct{}

func (failingToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("no signed-in account")
}

// A failure before the request reached Key Vault is not ambiguous: nothing was created, and
// the caller says so instead of "it may have been created".
func TestNothingSentIsNotAmbiguous(t *testing.T) {
	refused := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "https://" + addr
	}
	tests := []struct {
		name string
		kind error
		open func(t *testing.T, s *server) *vault.Azure
	}{
		{"connection refused", vault.ErrConnect, func(t *testing.T, s *server) *vault.Azure {
			return vault.NewAzure(refused(t), vault.Options{Credential: token{}})
		}},
		{"certificate not trusted", vault.ErrConnect, func(t *testing.T, s *server) *vault.Azure {
			return vault.NewAzure(s.URL, vault.Options{Credential: token{}})
		}},
		{"challenge resource not the vault's domain", vault.ErrAuth, func(t *testing.T, s *server) *vault.Azure {
			// azidentity's credential, whose challenge check wants an Azure domain.
			return vault.NewAzure(s.URL, vault.Options{Transport: s.Client()})
		}},
		{"credential gives no token", vault.ErrAuth, func(t *testing.T, s *server) *vault.Azure {
			return vault.NewAzure(s.URL, vault.Options{Credential: failingToken{}, Transport: s.Client()})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				t.Errorf("an authenticated %s %s reached the vault", r.Method, r.URL.Path)
			})
			_, err := tt.open(t, s).CreateKey(context.Background(), "kek", vault.CreateParams{Kty: "RSA-HSM", Size: 2048, KeyOps: []string{"import"}})
			if !errors.Is(err, tt.kind) || vault.Ambiguous(err) || !vault.NothingDone(err) {
				t.Fatalf("CreateKey() = %v, want %v, not ambiguous", err, tt.kind)
			}
			if n := s.authed.Load(); n != 0 {
				t.Errorf("%d authenticated requests, want none", n)
			}
		})
	}
}
