package upload_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/online/internal/upload"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// admitted runs n Waits on vault/bucket from workers goroutines and returns the admission
// times on the virtual clock.
func admitted(t *testing.T, l *upload.Limiter, workers, n int, vault, bucket string) []time.Time {
	t.Helper()
	var times []time.Time
	upload.OnAdmit(l, func(at time.Time) { times = append(times, at) }) // called under the limiter's lock
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if err := l.Wait(context.Background(), vault, bucket); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	return times
}

func TestLimiterKeepsEverySlidingWindowWithinTheLimit(t *testing.T) {
	for _, workers := range []int{1, 8} {
		clk := newClock()
		l := upload.NewLimiter(10*time.Second, map[string]int{upload.BucketRSA4096: 5}, clk.Now, clk.Sleep)
		times := admitted(t, l, workers, 23, "https://v", upload.BucketRSA4096)
		if len(times) != 23 {
			t.Fatalf("%d admissions, want 23", len(times))
		}
		// Any 6 consecutive admissions span the window and its margin (1s): no window of
		// Key Vault's holds 6 arrivals, even with a second of jitter.
		for i := 0; i+5 < len(times); i++ {
			if span := times[i+5].Sub(times[i]); span < 11*time.Second {
				t.Errorf("workers %d: admissions %d..%d within %s, want at least the 10s window and its 1s margin", workers, i, i+5, span)
			}
		}
		// And the limiter does not wait needlessly: the first 5 go at once.
		if !times[4].Equal(times[0]) {
			t.Errorf("workers %d: the first 5 admissions waited (%s)", workers, times[4].Sub(times[0]))
		}
	}
}

func TestLimiterBucketsAndVaultsAreIndependent(t *testing.T) {
	clk := newClock()
	l := upload.NewLimiter(10*time.Second, map[string]int{upload.BucketRSA4096: 1, upload.BucketEC: 1}, clk.Now, clk.Sleep)
	for _, k := range []struct{ vault, bucket string }{{"https://a", upload.BucketRSA4096}, {"https://a", upload.BucketEC}, {"https://b", upload.BucketRSA4096}} {
		if err := l.Wait(context.Background(), k.vault, k.bucket); err != nil {
			t.Fatal(err)
		}
	}
	if s := clk.Slept(); len(s) != 0 {
		t.Errorf("waited %v; three different (vault, bucket) pairs share no quota", s)
	}
}

func TestLimiterPauseHoldsTheBucket(t *testing.T) {
	clk := newClock()
	l := upload.NewLimiter(0, nil, clk.Now, clk.Sleep)
	start := clk.Now()
	l.Pause("https://v", upload.BucketEC, 4*time.Second)
	if err := l.Wait(context.Background(), "https://v", upload.BucketEC); err != nil {
		t.Fatal(err)
	}
	if got := clk.Now().Sub(start); got < 4*time.Second {
		t.Errorf("admitted after %s, want at least the 4s pause", got)
	}
}

func TestLimiterWaitReturnsWhenCancelled(t *testing.T) {
	l := upload.NewLimiter(time.Hour, map[string]int{upload.BucketEC: 1}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	if err := l.Wait(ctx, "v", upload.BucketEC); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := l.Wait(ctx, "v", upload.BucketEC); err != context.Canceled {
		t.Errorf("Wait() = %v, want context.Canceled", err)
	}
}

func TestBucketOf(t *testing.T) {
	tests := map[payload.KeyType]string{
		payload.RSA2048: upload.BucketRSA2048, payload.RSA3072: upload.BucketRSA3072, payload.RSA4096: upload.BucketRSA4096,
		payload.ECP256: upload.BucketEC, payload.ECP521: upload.BucketEC, payload.AES128: upload.BucketOct,
	}
	for kt, want := range tests {
		if got := upload.BucketOf(kt); got != want {
			t.Errorf("BucketOf(%s) = %q, want %q", kt, got, want)
		}
	}
}

func TestParseLimits(t *testing.T) {
	l, err := upload.ParseLimits([]string{"rsa-4096=100", "ec=7"})
	if err != nil {
		t.Fatal(err)
	}
	if l[upload.BucketRSA4096] != 100 || l[upload.BucketEC] != 7 || l[upload.BucketRSA2048] != 2000 || l[upload.BucketRSA3072] != 500 {
		t.Errorf("ParseLimits() = %v", l)
	}
	for _, bad := range []string{"rsa-4096", "rsa-4096=0", "rsa-4096=x", "dsa=5"} {
		if _, err := upload.ParseLimits([]string{bad}); err == nil {
			t.Errorf("ParseLimits(%q) = nil error", bad)
		}
	}
}
