package kvemu_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
	"github.com/airgap-byok/airgap-byok/shared/secret"
)

const apiVersion = "api-version=2025-07-01"

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeError(t *testing.T, resp *http.Response) errorBody {
	t.Helper()
	var b errorBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatalf("decode error body: %v", err)
	}
	return b
}

var challengeRE = regexp.MustCompile(`^Bearer authorization="([^"]+)", resource="([^"]+)"$`)

func TestChallenge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind         kvemu.Kind
		wantResource string
	}{
		{kvemu.KindPremium, "https://vault.azure.net"},
		{kvemu.KindManagedHSM, "https://managedhsm.azure.net"},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			v := kvemutest.Start(t, kvemu.Config{Kind: tt.kind})
			resp, err := v.HTTPClient().Get(v.URL() + "/keys?" + apiVersion)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", resp.StatusCode)
			}
			m := challengeRE.FindStringSubmatch(resp.Header.Get("WWW-Authenticate"))
			if m == nil {
				t.Fatalf("WWW-Authenticate = %q, want the Key Vault challenge", resp.Header.Get("WWW-Authenticate"))
			}
			u, err := url.Parse(m[1])
			if err != nil || u.Scheme != "https" || u.Path != "/"+kvemu.DefaultTenantID {
				t.Errorf("authorization = %q, want https://<host>/<tenant> (the SDK indexes the path segment)", m[1])
			}
			if m[2] != tt.wantResource {
				t.Errorf("resource = %q, want %q", m[2], tt.wantResource)
			}
			if b := decodeError(t, resp); b.Error.Code != kvemu.CodeUnauthorized {
				t.Errorf("error code = %q, want Unauthorized", b.Error.Code)
			}

			// The SDK sends its first request without token and body, follows the challenge,
			// then resends with both: a CreateKey with a body succeeds.
			k := createKEK(t, v.Client(t, nil), "kek", 2048)
			if !strings.HasPrefix(k.kid, v.URL()+"/keys/kek/") {
				t.Errorf("kid = %q, want under %s/keys/kek/", k.kid, v.URL())
			}
			st := v.Stats()
			if st.Challenges != 2 || st.Requests != 3 || st.Creates != 1 {
				t.Errorf("stats = challenges %d, requests %d, creates %d; want 2, 3, 1", st.Challenges, st.Requests, st.Creates)
			}
		})
	}
}

func TestBadTokenRefused(t *testing.T) {
	t.Parallel()
	logs := &logCapture{next: slog.NewTextHandler(t.Output(), nil)}
	v := kvemutest.Start(t, kvemu.Config{Logger: slog.New(logs)})
	wrong := secret.New("not-the-token-0123456789")
	c := kvemutest.NewClient(t, v.URL(), v.CACertPEM(), kvemutest.Credential{Token: wrong}, nil)
	_, err := c.GetKey(context.Background(), "any", "", nil)
	wantAPIError(t, err, http.StatusUnauthorized, kvemu.CodeUnauthorized)
	if st := v.Stats(); st.Unauthorized == 0 {
		t.Errorf("Stats().Unauthorized = 0, want > 0")
	}

	req, err := http.NewRequest(http.MethodGet, v.URL()+"/keys?"+apiVersion, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+wrong.Reveal())
	resp, err := v.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("wrong token: status %d, challenge %q; want 401 with a challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if b := decodeError(t, resp); b.Error.Code != kvemu.CodeUnauthorized {
		t.Errorf("error code = %q, want Unauthorized", b.Error.Code)
	}

	text := logs.allText()
	for _, tok := range []string{v.Token.Reveal(), wrong.Reveal()} {
		if strings.Contains(text, tok) {
			t.Errorf("logs contain a token")
		}
	}
}

func TestConfigRefused(t *testing.T) {
	t.Parallel()
	tok := secret.New("t")
	tests := []struct {
		name string
		cfg  kvemu.Config
	}{
		{"no token", kvemu.Config{}},
		{"vault on all interfaces", kvemu.Config{Token: tok, Addr: "0.0.0.0:0"}},
		{"admin off loopback", kvemu.Config{Token: tok, AdminAddr: "192.0.2.1:0"}},
		{"unknown kind", kvemu.Config{Token: tok, Kind: "standard"}},
		{"page size too large", kvemu.Config{Token: tok, PageSize: 26}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := kvemu.Start(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Start succeeded, want an error")
			}
		})
	}
}

func TestRawGetTrailingSlash(t *testing.T) {
	t.Parallel()
	v, c := start(t, kvemu.KindPremium)
	k := createKEK(t, c, "kek", 2048)
	for _, path := range []string{"/keys/kek/", "/keys/kek", "/keys/KEK/"} {
		req, err := http.NewRequest(http.MethodGet, v.URL()+path+"?"+apiVersion, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+v.Token.Reveal())
		resp, err := v.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Key struct {
				KID string `json:"kid"`
			} `json:"key"`
		}
		err = json.NewDecoder(resp.Body).Decode(&b)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || b.Key.KID != k.kid {
			t.Errorf("GET %s = %d, kid %q (%v); want 200, %q", path, resp.StatusCode, b.Key.KID, err, k.kid)
		}
	}
	if got := fmt.Sprint(v.KeyNames()); got != "[kek]" {
		t.Errorf("KeyNames() = %s, want [kek]", got)
	}
}
