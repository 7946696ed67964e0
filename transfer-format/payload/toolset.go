package payload

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// MaxToolsets is the largest number of allowed toolsets a policy lists (§6).
const MaxToolsets = 64

// Toolset is the build of the program that wrote a bundle (§7.7): its version, as the
// program reports it, and the SHA-256 of its executable file, the digest a release's
// SHA256SUMS lists. Every payload of format version 2 records it; version 1 payloads have
// none.
type Toolset struct {
	Version string `json:"version"` // non-empty text
	SHA256  string `json:"sha256"`  // 64 lowercase hex digits
}

// Validate checks the §7.7 rules.
func (t *Toolset) Validate() error {
	if t.Version == "" || !isText(t.Version) {
		return fmt.Errorf("toolset version %q: want a non-empty printable ASCII text", t.Version)
	}
	if !isSHA256Hex(t.SHA256) {
		return fmt.Errorf("toolset sha256 %q: want 64 lowercase hex digits", t.SHA256)
	}
	return nil
}

// isSHA256Hex reports whether s is 64 lowercase hex digits.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseToolsetHash returns a SHA-256 digest typed by a person (hex, either case, surrounding
// space ignored) in the form a policy lists it: 64 lowercase hex digits.
func ParseToolsetHash(s string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(s))
	if !isSHA256Hex(h) {
		return "", fmt.Errorf("toolset hash %q: want the 64 hex digits of a SHA-256", s)
	}
	return h, nil
}

// SortToolsets puts digests in the canonical order of allowed_toolsets and removes
// duplicates.
func SortToolsets(hs []string) []string {
	hs = slices.Clone(hs)
	slices.Sort(hs)
	return slices.Compact(hs)
}

// ToolsetOf returns the toolset a payload records, or nil.
func ToolsetOf(v any) *Toolset {
	switch p := v.(type) {
	case *Enrollment:
		return p.Toolset
	case *Policy:
		return p.Toolset
	case *KEKOffer:
		return p.Toolset
	case *KeyPackage:
		return p.Toolset
	case *Approval:
		return p.Toolset
	case *Receipt:
		return p.Toolset
	}
	return nil
}

// SetToolset records t in a payload (a pointer to one of the payload types).
func SetToolset(v any, t *Toolset) error {
	switch p := v.(type) {
	case *Enrollment:
		p.Toolset = t
	case *Policy:
		p.Toolset = t
	case *KEKOffer:
		p.Toolset = t
	case *KeyPackage:
		p.Toolset = t
	case *Approval:
		p.Toolset = t
	case *Receipt:
		p.Toolset = t
	default:
		return fmt.Errorf("not a payload type: %T", v)
	}
	return nil
}

// ErrVersionMembers is wrapped by CheckVersion's errors.
var ErrVersionMembers = errors.New("payload members do not fit the format version")

// CheckVersion checks the rules of §7 that depend on the format version of the bundle that
// carries payload v: a version 2 payload records its toolset, which is valid; a version 1
// payload has no toolset, no allowed toolsets and no receipt versions, members version 1
// does not define.
func CheckVersion(version uint16, v any) error {
	t := ToolsetOf(v)
	switch version {
	case bundle.Version1:
		if t != nil {
			return fmt.Errorf("%w: a version 1 payload has no toolset member", ErrVersionMembers)
		}
		if p, ok := v.(*Policy); ok && len(p.AllowedToolsets) > 0 {
			return fmt.Errorf("%w: a version 1 policy has no allowed_toolsets member", ErrVersionMembers)
		}
		if p, ok := v.(*Policy); ok && p.HasV2Members() {
			return fmt.Errorf("%w: a version 1 policy has no regions or global_approval member", ErrVersionMembers)
		}
		if k, ok := v.(*KeyPackage); ok && k.HasV2Members() {
			return fmt.Errorf("%w: a version 1 key package has no regions member", ErrVersionMembers)
		}
		if r, ok := v.(*Receipt); ok && len(r.Versions) > 0 {
			return fmt.Errorf("%w: a version 1 receipt has no versions member", ErrVersionMembers)
		}
	case bundle.Version2:
		if t == nil {
			return fmt.Errorf("%w: a version 2 payload records the toolset that wrote it", ErrVersionMembers)
		}
	default:
		return fmt.Errorf("%w: format version %d", ErrVersionMembers, version)
	}
	if t != nil {
		return t.Validate()
	}
	return nil
}
