package kvemu

import (
	"sync"
	"time"
)

// Throttling buckets. Each has its own limit per sliding window (see Limits).
const (
	BucketCreate  = "create"   // CreateKey, every key type
	BucketRSA2048 = "rsa_2048" // other operations on RSA-2048 keys, imports included
	BucketRSA3072 = "rsa_3072" // other operations on RSA-3072 keys, imports included
	BucketRSA4096 = "rsa_4096" // other operations on RSA-4096 keys, imports included
	BucketEC      = "ec"       // other operations on EC keys, imports included
	BucketOct     = "oct"      // operations on AES keys
	BucketVault   = "vault"    // lists, deleted keys, unknown keys
)

// bucketFor returns the "other operations" bucket of a key type and size.
func bucketFor(kty string, size int) string {
	switch baseKty(kty) {
	case ktyRSA:
		switch {
		case size >= 4096:
			return BucketRSA4096
		case size >= 3072:
			return BucketRSA3072
		default:
			return BucketRSA2048
		}
	case ktyEC:
		return BucketEC
	case ktyOct:
		return BucketOct
	}
	return BucketVault
}

// BucketStats counts one throttling bucket.
type BucketStats struct {
	// Limit is the number of requests admitted per window; negative means unlimited.
	Limit int `json:"limit"`
	// Admitted and Throttled count the requests admitted and refused with 429.
	Admitted  uint64 `json:"admitted"`
	Throttled uint64 `json:"throttled"`
	// Peak is the largest number of requests, admitted or refused, that arrived within one
	// window. A client that respects the limit keeps Peak <= Limit.
	Peak int `json:"peak"`
}

// throttler is a sliding-window rate limiter per bucket. A request is admitted when fewer
// than limit requests were admitted in the last window; refused requests do not use quota.
type throttler struct {
	window time.Duration
	mu     sync.Mutex
	b      map[string]*bucket
}

type bucket struct {
	limit    int
	admitted timeQueue // admission times within the window
	arrivals timeQueue // arrival times within the window, refused ones included
	stats    BucketStats
}

func newThrottler(l Limits) *throttler {
	t := &throttler{window: l.Window, b: map[string]*bucket{}}
	for name, limit := range map[string]int{
		BucketCreate: l.Create, BucketRSA2048: l.RSA2048, BucketRSA3072: l.RSA3072,
		BucketRSA4096: l.RSA4096, BucketEC: l.EC, BucketOct: l.Oct, BucketVault: l.Vault,
	} {
		t.b[name] = &bucket{limit: limit, stats: BucketStats{Limit: limit}}
	}
	return t
}

// admit records a request at now and reports whether it may proceed; if not, retryAfter
// is when the oldest admission leaves the window.
func (t *throttler) admit(name string, now time.Time) (ok bool, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b[name]
	cutoff := now.Add(-t.window)
	b.arrivals.prune(cutoff)
	b.arrivals.push(now)
	b.stats.Peak = max(b.stats.Peak, b.arrivals.len())
	if b.limit < 0 {
		b.stats.Admitted++
		return true, 0
	}
	b.admitted.prune(cutoff)
	if b.admitted.len() >= b.limit {
		b.stats.Throttled++
		return false, b.admitted.front().Add(t.window).Sub(now)
	}
	b.admitted.push(now)
	b.stats.Admitted++
	return true, 0
}

func (t *throttler) stats() map[string]BucketStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]BucketStats, len(t.b))
	for name, b := range t.b {
		out[name] = b.stats
	}
	return out
}

func (t *throttler) resetStats() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range t.b {
		b.stats = BucketStats{Limit: b.limit}
	}
}

// timeQueue is a FIFO of times.
type timeQueue struct {
	q    []time.Time
	head int
}

func (q *timeQueue) push(t time.Time) { q.q = append(q.q, t) }
func (q *timeQueue) len() int         { return len(q.q) - q.head }
func (q *timeQueue) front() time.Time { return q.q[q.head] }

// prune drops times at or before cutoff.
func (q *timeQueue) prune(cutoff time.Time) {
	for q.head < len(q.q) && !q.q[q.head].After(cutoff) {
		q.head++
	}
	if q.head > 1024 && q.head*2 > len(q.q) {
		q.q = append(q.q[:0:0], q.q[q.head:]...)
		q.head = 0
	}
}
