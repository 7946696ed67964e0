package kvemu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
)

func TestAdminEndpoint(t *testing.T) {
	t.Parallel()
	v := kvemutest.Start(t, kvemu.Config{AdminAddr: "127.0.0.1:0"})
	if !strings.HasPrefix(v.AdminURL(), "http://127.0.0.1:") {
		t.Fatalf("AdminURL() = %q", v.AdminURL())
	}
	c := v.Client(t, noRetry)
	ctx := context.Background()
	if _, err := c.CreateKey(ctx, "k", ecHSM, nil); err != nil {
		t.Fatal(err)
	}
	call := func(method, path, token, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, v.AdminURL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	tok := v.Token.Reveal()

	for _, bad := range []string{"", "wrong"} {
		if status, _ := call("GET", "/stats", bad, ""); status != http.StatusUnauthorized {
			t.Errorf("GET /stats with token %q = %d, want 401", bad, status)
		}
	}

	status, body := call("POST", "/faults", tok, `{"kind":"status","status":503,"method":"GET","path":"^/keys/k/","count":1}`)
	if status != http.StatusNoContent {
		t.Fatalf("POST /faults = %d %s", status, body)
	}
	if status, body := call("GET", "/faults", tok, ""); status != 200 || !bytes.Contains(body, []byte(`"status":503`)) {
		t.Errorf("GET /faults = %d %s, want the queued fault", status, body)
	}
	_, err := c.GetKey(ctx, "k", "", nil)
	wantAPIError(t, err, http.StatusServiceUnavailable, kvemu.CodeUnavailable)

	if status, body := call("POST", "/faults", tok, `{"kind":"slow","delay":"soon"}`); status != http.StatusBadRequest {
		t.Errorf("POST a bad fault = %d %s, want 400", status, body)
	}
	if status, _ := call("POST", "/faults", tok, `{"kind":"slow","delay":"1s","count":3}`); status != http.StatusNoContent {
		t.Errorf("POST slow fault = %d", status)
	}
	if status, _ := call("DELETE", "/faults", tok, ""); status != http.StatusNoContent || len(v.PendingFaults()) != 0 {
		t.Errorf("DELETE /faults = %d, pending %d", status, len(v.PendingFaults()))
	}

	status, body = call("GET", "/stats", tok, "")
	var st kvemu.Stats
	if err := json.Unmarshal(body, &st); status != 200 || err != nil {
		t.Fatalf("GET /stats = %d %s (%v)", status, body, err)
	}
	if st.Creates != 1 || st.Faults != 1 || st.Responses[503] != 1 || st.Buckets[kvemu.BucketCreate].Admitted != 1 {
		t.Errorf("stats = %+v, want 1 create, 1 fault, one 503", st)
	}

	status, body = call("GET", "/keys/k", tok, "")
	var vs struct {
		Versions []kvemu.KeyVersionInfo `json:"versions"`
	}
	if err := json.Unmarshal(body, &vs); status != 200 || err != nil || len(vs.Versions) != 1 || vs.Versions[0].Kty != "EC-HSM" {
		t.Errorf("GET /keys/k = %d %s", status, body)
	}
	if bytes.Contains(body, []byte("private")) {
		t.Errorf("GET /keys/k exposes key material: %s", body)
	}
	if status, _ := call("GET", "/keys/nope", tok, ""); status != http.StatusNotFound {
		t.Errorf("GET /keys/nope = %d, want 404", status)
	}
	if status, body := call("GET", "/keys", tok, ""); status != 200 || !bytes.Contains(body, []byte(`"k"`)) {
		t.Errorf("GET /keys = %d %s", status, body)
	}

	if status, _ := call("PUT", "/latency", tok, `{"latency":"15ms"}`); status != http.StatusNoContent || v.Latency().String() != "15ms" {
		t.Errorf("PUT /latency = %d, latency %s", status, v.Latency())
	}
	if status, _ := call("PUT", "/latency", tok, `{"latency":"-1s"}`); status != http.StatusBadRequest {
		t.Errorf("PUT negative latency = %d, want 400", status)
	}
	if status, body := call("GET", "/ca.pem", tok, ""); status != 200 || !bytes.Equal(body, v.CACertPEM()) {
		t.Errorf("GET /ca.pem = %d, want the CA", status)
	}
	if status, body := call("GET", "/attestation-root.pem", tok, ""); status != 200 || !bytes.Equal(body, v.AttestationRootPEM()) {
		t.Errorf("GET /attestation-root.pem = %d, want the root", status)
	}
	status, body = call("GET", "/info", tok, "")
	var info kvemu.AdminInfo
	if err := json.Unmarshal(body, &info); status != 200 || err != nil || info.VaultURL != v.URL() || info.Kind != kvemu.KindPremium {
		t.Errorf("GET /info = %d %s", status, body)
	}
	if status, _ := call("POST", "/stats/reset", tok, ""); status != http.StatusNoContent || v.Stats().Creates != 0 {
		t.Errorf("POST /stats/reset = %d, creates %d", status, v.Stats().Creates)
	}
}
