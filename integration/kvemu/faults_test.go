package kvemu_test

import (
	"context"
	"crypto/elliptic"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
)

// fastRetry retries quickly, so fault tests do not wait the SDK's default 800 ms.
var fastRetry = &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{
	MaxRetries: 3, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 2 * time.Second}}}

func TestFaultsRetriedBySDK(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fault      kvemu.Fault
		wantStatus int // status of the injected answer, 0 for a reset
	}{
		{"503", kvemu.Fault{Kind: kvemu.FaultStatus, Status: 503}, 503},
		{"500 twice", kvemu.Fault{Kind: kvemu.FaultStatus, Status: 500, Count: 2}, 500},
		{"429 with Retry-After", kvemu.Fault{Kind: kvemu.FaultStatus, Status: 429, RetryAfter: time.Second}, 429},
		{"connection reset", kvemu.Fault{Kind: kvemu.FaultReset}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := kvemutest.Start(t, kvemu.Config{})
			c := v.Client(t, fastRetry)
			ctx := context.Background()
			if _, err := c.CreateKey(ctx, "k", ecHSM, nil); err != nil {
				t.Fatal(err)
			}
			f := tt.fault
			f.Method, f.Path = "GET", `^/keys/k/`
			if err := v.InjectFault(f); err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetKey(ctx, "k", "", nil); err != nil {
				t.Fatalf("GetKey with retries: %v", err)
			}
			count := max(f.Count, 1)
			st := v.Stats()
			if st.Faults != uint64(count) || len(v.PendingFaults()) != 0 {
				t.Errorf("faults applied %d, pending %d; want %d, 0", st.Faults, len(v.PendingFaults()), count)
			}
			if tt.wantStatus != 0 && st.Responses[tt.wantStatus] != uint64(count) {
				t.Errorf("%d responses = %d, want %d", tt.wantStatus, st.Responses[tt.wantStatus], count)
			}
			if st.Throttled != 0 {
				t.Errorf("injected faults counted as throttling: %d", st.Throttled)
			}
		})
	}
}

func TestFaultsSeenWithoutRetry(t *testing.T) {
	t.Parallel()
	v := kvemutest.Start(t, kvemu.Config{})
	c := v.Client(t, noRetry)
	ctx := context.Background()
	if _, err := c.CreateKey(ctx, "k", ecHSM, nil); err != nil {
		t.Fatal(err)
	}
	get := func() error { _, err := c.GetKey(ctx, "k", "", nil); return err }

	if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultStatus, Status: 429, RetryAfter: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	re := wantAPIError(t, get(), http.StatusTooManyRequests, kvemu.CodeThrottled)
	if ra := re.RawResponse.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After = %q, want 2 (seconds, rounded up)", ra)
	}
	if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultStatus, Status: 503}); err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, get(), http.StatusServiceUnavailable, kvemu.CodeUnavailable)

	// Go's transport itself resends a GET once when a reused connection breaks, so it
	// takes two resets for the client to see one.
	if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultReset, Count: 2}); err != nil {
		t.Fatal(err)
	}
	err := get()
	var re2 *azcore.ResponseError
	if err == nil || errors.As(err, &re2) {
		t.Errorf("after a reset: err = %v, want a transport error", err)
	}

	// A fault for another method or path is not consumed.
	if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultStatus, Status: 500, Method: "PUT", Path: `^/keys/k$`}); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil {
		t.Errorf("GetKey hit a PUT fault: %v", err)
	}
	if p := v.PendingFaults(); len(p) != 1 || p[0].Count != 1 {
		t.Errorf("pending faults = %+v, want the PUT fault", p)
	}
	v.ClearFaults()
	if p := v.PendingFaults(); len(p) != 0 {
		t.Errorf("pending after ClearFaults = %+v", p)
	}

	for _, bad := range []kvemu.Fault{
		{Kind: kvemu.FaultStatus, Status: 404},
		{Kind: kvemu.FaultSlow},
		{Kind: "explode"},
		{Kind: kvemu.FaultReset, Path: "("},
	} {
		if err := v.InjectFault(bad); err == nil {
			t.Errorf("InjectFault(%+v) succeeded, want an error", bad)
		}
	}
}

// TestCommitThenReset checks the ambiguous failure: the import is applied, the client sees
// a transport error; and with the SDK's default retries the PUT is sent again and a second
// version appears, which is why byok-online must reconcile instead of retrying blindly.
func TestCommitThenReset(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		opts         *azkeys.ClientOptions
		wantErr      bool
		wantVersions int
	}{
		{"without retries the client sees an error after a committed import", noRetry, true, 1},
		{"with retries the SDK imports twice", fastRetry, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := kvemutest.Start(t, kvemu.Config{})
			k := createKEK(t, v.Client(t, nil), "kek", 2048)
			tg := ecTarget(t, elliptic.P256(), "P-256")
			if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultCommitThenReset, Method: "PUT", Path: `^/keys/target$`}); err != nil {
				t.Fatal(err)
			}
			_, err := importBYOK(v.Client(t, tt.opts), "target", tg.kty, tg.crv, k.wrap(t, tg.der))
			var re *azcore.ResponseError
			if tt.wantErr && (err == nil || errors.As(err, &re)) {
				t.Errorf("ImportKey error = %v, want a transport error", err)
			}
			if !tt.wantErr && err != nil {
				t.Errorf("ImportKey: %v", err)
			}
			if n := versionCount(t, v.Server, "target"); n != tt.wantVersions {
				t.Errorf("versions = %d, want %d", n, tt.wantVersions)
			}
			if st := v.Stats(); st.Imports != uint64(tt.wantVersions) || st.Faults != 1 {
				t.Errorf("stats = imports %d faults %d, want %d 1", st.Imports, st.Faults, tt.wantVersions)
			}
		})
	}
}

func TestSlowResponse(t *testing.T) {
	t.Parallel()
	v := kvemutest.Start(t, kvemu.Config{})
	k := createKEK(t, v.Client(t, nil), "kek", 2048)
	tg := ecTarget(t, elliptic.P256(), "P-256")
	if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultSlow, Delay: time.Hour, Method: "PUT"}); err != nil {
		t.Fatal(err)
	}
	c := v.Client(t, noRetry)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	jwk := &azkeys.JSONWebKey{Kty: &tg.kty, Crv: (*azkeys.CurveName)(&tg.crv), T: k.wrap(t, tg.der)}
	_, err := c.ImportKey(ctx, "target", azkeys.ImportKeyParameters{Key: jwk}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ImportKey error = %v, want the client's deadline", err)
	}
	// The import ran before the response was held.
	if n := versionCount(t, v.Server, "target"); n != 1 {
		t.Errorf("versions = %d, want 1", n)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	v := kvemutest.Start(t, kvemu.Config{})
	v.SetLatency(20 * time.Millisecond)
	if got := v.Latency(); got != 20*time.Millisecond {
		t.Errorf("Latency() = %s, want 20ms", got)
	}
	if _, err := v.Client(t, nil).CreateKey(context.Background(), "k", ecHSM, nil); err != nil {
		t.Fatalf("CreateKey with latency: %v", err)
	}
	v.SetLatency(-time.Second)
	if got := v.Latency(); got != 0 {
		t.Errorf("Latency() after a negative value = %s, want 0", got)
	}
}
