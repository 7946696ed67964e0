package kvemu

import (
	"bytes"
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
	// FaultLateCommit holds the request for Delay before executing it, whether or not the
	// client is still waiting, then answers (if anyone listens). A client whose timeout is
	// shorter than Delay gives up first and finds nothing when it looks at once: the write
	// lands later. A late commit that is still held when the server closes is dropped.
	FaultLateCommit FaultKind = "late_commit"
	// FaultLie executes the request, then changes its successful answer as Lie says: the
	// vault claims what it does not hold. Error answers pass unchanged.
	FaultLie FaultKind = "lie"
	// FaultPass executes the request normally. It uses up a place in the queue, so that a
	// test can interleave clean requests with faults.
	FaultPass FaultKind = "pass"
)

// Lie says how a FaultLie changes an answer. In a key bundle (CreateKey, ImportKey, GetKey,
// UpdateKey) it changes the bundle; in a list answer ({"value": [...]}) every entry.
type Lie struct {
	// KIDVault replaces the vault URL (scheme and host) of every kid, e.g.
	// "https://other.vault.azure.net"; KIDName replaces the key name in it.
	KIDVault string `json:"kid_vault,omitempty"`
	KIDName  string `json:"kid_name,omitempty"`
	// KID replaces every kid whole: malformed or oversized identifiers.
	KID string `json:"kid,omitempty"`
	// Set replaces members by dotted path from the bundle ("key.kty", "key.key_ops",
	// "attributes.created", "tags") with JSON values; a path through a missing object
	// creates it. In a list entry, a path starting with "key." applies to the entry
	// itself (entries carry kid at their top level).
	Set map[string]json.RawMessage `json:"set,omitempty"`
	// ExtraTags adds that many tags ("kvemu-lie-<n>": "x") to the answer's tags.
	ExtraTags int `json:"extra_tags,omitempty"`
	// Body, when set, replaces the whole answer body, keeping the status (malformed
	// answers); BodyBytes, when positive, pads the answer with spaces to that many bytes
	// (oversized answers). Neither changes the vault's state.
	Body      string `json:"body,omitempty"`
	BodyBytes int    `json:"body_bytes,omitempty"`
}

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
	// Delay is how long a FaultSlow holds the response, and a FaultLateCommit the request.
	Delay time.Duration `json:"-"`
	// Lie is what a FaultLie changes in the answer.
	Lie *Lie `json:"lie,omitempty"`
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
	case FaultSlow, FaultLateCommit:
		if f.Delay <= 0 {
			return fmt.Errorf("%s fault needs a positive delay", f.Kind)
		}
	case FaultLie:
		if f.Lie == nil {
			return fmt.Errorf("lie fault needs a lie")
		}
		if f.Lie.ExtraTags < 0 || f.Lie.ExtraTags > 1000 || f.Lie.BodyBytes < 0 || f.Lie.BodyBytes > 64<<20 {
			return fmt.Errorf("lie: extra_tags 0 to 1000, body_bytes 0 to 64 MiB")
		}
		for path := range f.Lie.Set {
			if path == "" || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") {
				return fmt.Errorf("lie: set path %q", path)
			}
		}
	case FaultReset, FaultCommitThenReset, FaultPass:
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

// apply changes a successful JSON answer as the lie says.
func (l *Lie) apply(body []byte) []byte {
	if l.Body != "" {
		body = []byte(l.Body)
	} else if out, ok := l.rewrite(body); ok {
		body = out
	}
	if n := l.BodyBytes - len(body); n > 0 {
		body = append(body, bytes.Repeat([]byte(" "), n)...)
	}
	return body
}

func (l *Lie) rewrite(body []byte) ([]byte, bool) {
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil {
		return nil, false
	}
	if list, ok := doc["value"].([]any); ok {
		for _, e := range list {
			if m, ok := e.(map[string]any); ok {
				l.change(m, true)
			}
		}
	} else {
		l.change(doc, false)
	}
	out, err := json.Marshal(doc)
	return out, err == nil
}

// change applies the lie to one bundle or list entry.
func (l *Lie) change(m map[string]any, entry bool) {
	kidOwner := m
	if k, ok := m["key"].(map[string]any); ok && !entry {
		kidOwner = k
	}
	if kid, ok := kidOwner["kid"].(string); ok {
		kidOwner["kid"] = l.kid(kid)
	}
	for path, raw := range l.Set {
		var v any
		if json.Unmarshal(raw, &v) != nil {
			continue
		}
		if entry {
			path = strings.TrimPrefix(path, "key.")
		}
		setPath(m, strings.Split(path, "."), v)
	}
	if l.ExtraTags > 0 {
		tags, _ := m["tags"].(map[string]any)
		if tags == nil {
			tags = map[string]any{}
			m["tags"] = tags
		}
		for i := range l.ExtraTags {
			tags[fmt.Sprintf("kvemu-lie-%d", i)] = "x"
		}
	}
}

// kid returns kid changed by the lie: https://vault/keys/name[/version].
func (l *Lie) kid(kid string) string {
	if l.KID != "" {
		return l.KID
	}
	rest, ok := strings.CutPrefix(kid, "https://")
	if !ok {
		return kid
	}
	host, path, _ := strings.Cut(rest, "/")
	vault := "https://" + host
	if l.KIDVault != "" {
		vault = l.KIDVault
	}
	if l.KIDName != "" {
		if after, ok := strings.CutPrefix(path, "keys/"); ok {
			_, version, _ := strings.Cut(after, "/")
			path = "keys/" + l.KIDName
			if version != "" {
				path += "/" + version
			}
		}
	}
	return vault + "/" + path
}

func setPath(m map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}
