package upload

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Buckets of Key Vault's throttling limits for HSM-protected keys, per vault: every request
// about a key counts in the bucket of the key's type and size.
const (
	BucketRSA2048 = "rsa-2048"
	BucketRSA3072 = "rsa-3072"
	BucketRSA4096 = "rsa-4096"
	BucketEC      = "ec"
	BucketOct     = "oct"
)

// DefaultWindow is Key Vault's throttling window.
const DefaultWindow = 10 * time.Second

// DefaultLimits are Azure's published limits per vault per 10 seconds for operations other
// than key creation on HSM-protected keys (RSA-2048 2000, RSA-3072 500, RSA-4096 250, EC
// 2000). Azure publishes no per-vault figure for AES keys on Managed HSM; 2000 is assumed.
func DefaultLimits() map[string]int {
	return map[string]int{BucketRSA2048: 2000, BucketRSA3072: 500, BucketRSA4096: 250, BucketEC: 2000, BucketOct: 2000}
}

// BucketOf returns the throttling bucket of a key type.
func BucketOf(kt payload.KeyType) string {
	switch {
	case kt.Kty() == "EC-HSM":
		return BucketEC
	case kt.IsSymmetric():
		return BucketOct
	}
	return "rsa-" + strconv.Itoa(kt.Size())
}

// ParseLimits parses limit overrides such as "rsa-4096=100" onto the defaults.
func ParseLimits(specs []string) (map[string]int, error) {
	l := DefaultLimits()
	for _, s := range specs {
		name, val, ok := strings.Cut(s, "=")
		n, err := strconv.Atoi(val)
		if !ok || err != nil || n < 1 {
			return nil, fmt.Errorf("rate limit %q: want BUCKET=N with N at least 1", s)
		}
		if _, known := l[name]; !known {
			names := make([]string, 0, len(l))
			for k := range l {
				names = append(names, k)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("rate limit %q: unknown bucket %q (one of %s)", s, name, strings.Join(names, ", "))
		}
		l[name] = n
	}
	return l, nil
}

// Limiter keeps the requests to each vault and bucket within a limit per sliding window, and
// holds a bucket back while Key Vault asked for a pause (Retry-After).
//
// Key Vault counts requests when they arrive; the limiter counts them when they leave, and
// the time in between varies (a new connection's TLS handshake, a retransmission, a busy
// machine). The limiter's window is therefore longer than Key Vault's by a margin, a tenth
// of it but at least a second, so that jitter cannot put more than the limit of arrivals
// into one of Key Vault's windows.
type Limiter struct {
	window time.Duration
	limits map[string]int
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error

	mu      sync.Mutex
	buckets map[bucketKey]*bucket
	// admitted, when set (by tests), is called with each admission's time, under mu.
	admitted func(time.Time)
}

type bucketKey struct{ vault, bucket string }

type bucket struct {
	sent   []time.Time // send times within the window, oldest first
	paused time.Time   // no request before this time
}

// NewLimiter returns a limiter with the given window (zero means DefaultWindow) and limits
// (nil means DefaultLimits); now and sleep are the clock (nil means the real one).
func NewLimiter(window time.Duration, limits map[string]int, now func() time.Time, sleep func(context.Context, time.Duration) error) *Limiter {
	if window <= 0 {
		window = DefaultWindow
	}
	if limits == nil {
		limits = DefaultLimits()
	}
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = Sleep
	}
	return &Limiter{window: window + max(window/10, time.Second), limits: limits, now: now, sleep: sleep, buckets: map[bucketKey]*bucket{}}
}

// Sleep waits for d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait blocks until one more request to vault in bucket stays within the limit, and counts
// it. It returns early only with ctx's error.
func (l *Limiter) Wait(ctx context.Context, vault, bucketName string) error {
	limit := l.limits[bucketName]
	for {
		l.mu.Lock()
		k := bucketKey{vault, bucketName}
		b := l.buckets[k]
		if b == nil {
			b = &bucket{}
			l.buckets[k] = b
		}
		now := l.now()
		i := 0
		for i < len(b.sent) && !b.sent[i].After(now.Add(-l.window)) {
			i++
		}
		b.sent = b.sent[i:]
		var wait time.Duration
		switch {
		case now.Before(b.paused):
			wait = b.paused.Sub(now)
		case limit > 0 && len(b.sent) >= limit:
			wait = b.sent[0].Add(l.window).Sub(now)
		default:
			b.sent = append(b.sent, now)
			if l.admitted != nil {
				l.admitted(now)
			}
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		if err := l.sleep(ctx, max(wait, time.Millisecond)); err != nil {
			return err
		}
	}
}

// Pause holds every request to vault in bucket back for d (Key Vault's Retry-After).
func (l *Limiter) Pause(vault, bucketName string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := bucketKey{vault, bucketName}
	b := l.buckets[k]
	if b == nil {
		b = &bucket{}
		l.buckets[k] = b
	}
	if until := l.now().Add(d); until.After(b.paused) {
		b.paused = until
	}
}
