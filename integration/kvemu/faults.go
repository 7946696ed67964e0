package kvemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// FaultKind selects what an injected fault does to a request.
type FaultKind string

// Fault kinds. Faults apply to authenticated requests only, after the authentication check
// and before throttling, so "the next N requests" counts real operations, never the
// SDK's unauthenticated challenge request.
const (
	// FaultStatus answers with Status (500, 503 or 429) without executing the request.
	// A 429 or 503 carries Retry-After when RetryAfter is set.
	FaultStatus FaultKind = "status"
	// FaultReset closes the connection (TCP reset) without executing the request and
	// without a response.
	FaultReset FaultKind = "reset"
	// FaultSlow executes the request, then holds the response for Delay. A client that
	// times out meanwhile sees a failure although the request took effect.
	FaultSlow FaultKind = "slow"
	// FaultCommitThenReset executes the request (a write is committed), then closes the
	// connection without a response: the client sees an ambiguous transport error.
	FaultCommitThenReset FaultKind = "commit_then_reset"
)

// Fault is a fault to inject into the next Count requests matching Method and Path.
type Fault struct {
	Kind FaultKind `json:"kind"`
	// Method matches the HTTP method, case-insensitively; empty matches every method.
	Method string `json:"method,omitempty"`
	// Path is a regular expression matched against the URL path (e.g. `^/keys/[^/]+$` for
	// ImportKey and DeleteKey); empty matches every path.
	Path string `json:"path,omitempty"`
	// Count is how many matching requests the fault affects; zero means one.
	Count int `json:"count,omitempty"`
	// Status is the status code of a FaultStatus: 429, 500 or 503.
	Status int `json:"status,omitempty"`
	// RetryAfter, for FaultStatus, is sent as the Retry-After header in whole seconds
	// (rounded up); zero sends none.
	RetryAfter time.Duration `json:"-"`
	// Delay is how long a FaultSlow holds the response.
	Delay time.Duration `json:"-"`
}

// MarshalJSON implements json.Marshaler with durations as strings.
func (f Fault) MarshalJSON() ([]byte, error) {
	type plain Fault
	out := struct {
		plain
		RetryAfter string `json:"retry_after,omitempty"`
		Delay      string `json:"delay,omitempty"`
	}{plain: plain(f)}
	if f.RetryAfter != 0 {
		out.RetryAfter = f.RetryAfter.String()
	}
	if f.Delay != 0 {
		out.Delay = f.Delay.String()
	}
	return json.Marshal(out)
}

// UnmarshalJSON implements json.Unmarshaler with durations as strings.
func (f *Fault) UnmarshalJSON(b []byte) error {
	type plain Fault
	var in struct {
		plain
		RetryAfter string `json:"retry_after,omitempty"`
		Delay      string `json:"delay,omitempty"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*f = Fault(in.plain)
	var err error
	if in.RetryAfter != "" {
		if f.RetryAfter, err = time.ParseDuration(in.RetryAfter); err != nil {
			return fmt.Errorf("retry_after: %w", err)
		}
	}
	if in.Delay != "" {
		if f.Delay, err = time.ParseDuration(in.Delay); err != nil {
			return fmt.Errorf("delay: %w", err)
		}
	}
	return nil
}

func (f *Fault) validate() error {
	switch f.Kind {
	case FaultStatus:
		switch f.Status {
		case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable:
		default:
			return fmt.Errorf("fault status %d: want 429, 500 or 503", f.Status)
		}
	case FaultSlow:
		if f.Delay <= 0 {
			return fmt.Errorf("slow fault needs a positive delay")
		}
	case FaultReset, FaultCommitThenReset:
	default:
		return fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	if f.Count < 0 {
		return fmt.Errorf("fault count %d is negative", f.Count)
	}
	if f.Count == 0 {
		f.Count = 1
	}
	if f.RetryAfter < 0 || f.Delay < 0 {
		return fmt.Errorf("fault durations must not be negative")
	}
	return nil
}

type pendingFault struct {
	f    Fault
	path *regexp.Regexp
	left int
}

// faultSet is the queue of pending faults; the first matching fault with requests left
// applies.
type faultSet struct {
	mu      sync.Mutex
	pending []*pendingFault
}

func (s *faultSet) add(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	p := &pendingFault{f: f, left: f.Count}
	if f.Path != "" {
		re, err := regexp.Compile(f.Path)
		if err != nil {
			return fmt.Errorf("fault path: %w", err)
		}
		p.path = re
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, p)
	return nil
}

// take consumes one use of the first fault matching r.
func (s *faultSet) take(r *http.Request) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.pending {
		if p.f.Method != "" && !strings.EqualFold(p.f.Method, r.Method) {
			continue
		}
		if p.path != nil && !p.path.MatchString(r.URL.Path) {
			continue
		}
		p.left--
		if p.left == 0 {
			s.pending = append(s.pending[:i:i], s.pending[i+1:]...)
		}
		return p.f, true
	}
	return Fault{}, false
}

func (s *faultSet) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = nil
}

// list returns the pending faults with their remaining counts.
func (s *faultSet) list() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, 0, len(s.pending))
	for _, p := range s.pending {
		f := p.f
		f.Count = p.left
		out = append(out, f)
	}
	return out
}
