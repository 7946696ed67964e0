package kvemu_test

import (
	"context"
	"crypto/elliptic"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var ecHSM = azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM)}

func TestThrottleCreate(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	v := kvemutest.Start(t, kvemu.Config{Now: clock.Now, Limits: kvemu.Limits{Create: 2}})
	c := v.Client(t, noRetry)
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if _, err := c.CreateKey(ctx, name, ecHSM, nil); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(4 * time.Second)
	_, err := c.CreateKey(ctx, "c", ecHSM, nil)
	re := wantAPIError(t, err, http.StatusTooManyRequests, kvemu.CodeThrottled)
	if got := re.RawResponse.Header.Get("Retry-After"); got != "6" {
		t.Errorf("Retry-After = %q, want 6 (the first create leaves the 10 s window in 6 s)", got)
	}
	if n := versionCount(t, v.Server, "c"); n != 0 {
		t.Errorf("throttled create stored %d versions", n)
	}
	// Other buckets are not affected.
	if _, err := c.GetKey(ctx, "a", "", nil); err != nil {
		t.Errorf("GetKey while creates are throttled: %v", err)
	}
	clock.Advance(6 * time.Second)
	if _, err := c.CreateKey(ctx, "c", ecHSM, nil); err != nil {
		t.Errorf("CreateKey after the window: %v", err)
	}
	st := v.Stats()
	want := kvemu.BucketStats{Limit: 2, Admitted: 3, Throttled: 1, Peak: 3}
	if got := st.Buckets[kvemu.BucketCreate]; got != want || st.Throttled != 1 || st.Responses[http.StatusTooManyRequests] != 1 {
		t.Errorf("stats = create %+v, throttled %d, 429s %d; want %+v, 1, 1", got, st.Throttled, st.Responses[429], want)
	}
}

func TestThrottleBucketsByKeyType(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	v := kvemutest.Start(t, kvemu.Config{Now: clock.Now, Limits: kvemu.Limits{
		Create: -1, RSA2048: 2, RSA3072: 1, EC: 1}})
	c := v.Client(t, noRetry)
	ctx := context.Background()
	k := createKEK(t, c, "kek", 2048)
	if _, err := c.CreateKey(ctx, "rsa3072", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr[int32](3072)}, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		call   func() error
		bucket string
	}{
		{"get RSA-3072", func() error { _, err := c.GetKey(ctx, "rsa3072", "", nil); return err }, kvemu.BucketRSA3072},
		{"get RSA-2048", func() error { _, err := c.GetKey(ctx, "kek", "", nil); return err }, kvemu.BucketRSA2048},
		{"import EC counts as EC", func() error {
			tg := ecTarget(t, elliptic.P256(), "P-256")
			_, err := importBYOK(c, "ec", tg.kty, tg.crv, k.wrap(t, tg.der))
			return err
		}, kvemu.BucketEC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit := v.Stats().Buckets[tt.bucket].Limit
			left := limit - int(v.Stats().Buckets[tt.bucket].Admitted)
			for i := range left {
				if err := tt.call(); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			wantAPIError(t, tt.call(), http.StatusTooManyRequests, kvemu.CodeThrottled)
			if b := v.Stats().Buckets[tt.bucket]; b.Throttled != 1 || int(b.Admitted) != limit {
				t.Errorf("bucket %s = %+v, want %d admitted and 1 throttled", tt.bucket, b, limit)
			}
		})
	}
	if n := versionCount(t, v.Server, "ec"); n != 1 {
		t.Errorf("EC imports stored = %d, want 1 (the throttled import stores nothing)", n)
	}
}

// advanceOn429 is a pipeline policy that moves the fake clock past the window whenever the
// emulator throttles, so that the SDK's retry (after the real Retry-After) is admitted.
type advanceOn429 struct {
	clock  *fakeClock
	window time.Duration
	seen   *int
}

func (p advanceOn429) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		*p.seen++
		p.clock.Advance(p.window)
	}
	return resp, err
}

func TestThrottleSDKRetrySucceeds(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	v := kvemutest.Start(t, kvemu.Config{Now: clock.Now, Limits: kvemu.Limits{Window: time.Second, Create: 1}})
	seen := 0
	c := v.Client(t, &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{
		PerRetryPolicies: []policy.Policy{advanceOn429{clock, time.Second, &seen}}}})
	ctx := context.Background()
	if _, err := c.CreateKey(ctx, "a", ecHSM, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := c.CreateKey(ctx, "b", ecHSM, nil)
	if err != nil {
		t.Fatalf("CreateKey with SDK retries: %v", err)
	}
	if resp.Key.KID.Name() != "b" || seen != 1 {
		t.Errorf("kid %s after %d 429s, want b after 1", *resp.Key.KID, seen)
	}
	st := v.Stats()
	if st.Throttled != 1 || st.Creates != 2 || versionCount(t, v.Server, "b") != 1 {
		t.Errorf("stats = throttled %d creates %d, want 1 and 2, one version of b", st.Throttled, st.Creates)
	}
}

func TestThrottlePeakTracksClientRate(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	v := kvemutest.Start(t, kvemu.Config{Now: clock.Now, Limits: kvemu.Limits{Vault: 3}})
	c := v.Client(t, noRetry)
	ctx := context.Background()
	list := func() error { _, err := c.NewListKeyPropertiesPager(nil).NextPage(ctx); return err }
	// Three lists per window, spread over 25 s: within the limit, never throttled.
	for range 5 {
		for range 3 {
			if err := list(); err != nil {
				t.Fatal(err)
			}
		}
		clock.Advance(10*time.Second + time.Millisecond)
	}
	if b := v.Stats().Buckets[kvemu.BucketVault]; b.Peak != 3 || b.Throttled != 0 || b.Admitted != 15 {
		t.Errorf("vault bucket = %+v, want peak 3, 0 throttled, 15 admitted", b)
	}
	for range 3 {
		if err := list(); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		wantAPIError(t, list(), http.StatusTooManyRequests, kvemu.CodeThrottled)
	}
	if b := v.Stats().Buckets[kvemu.BucketVault]; b.Peak != 5 || b.Throttled != 2 {
		t.Errorf("vault bucket = %+v, want peak 5 (refused requests count toward the peak), 2 throttled", b)
	}
}
