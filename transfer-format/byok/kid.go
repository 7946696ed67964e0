package byok

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// KeyID is a versioned Key Vault key identifier,
// https://<host>[:<port>]/keys/<name>/<version>.
type KeyID struct {
	Vault   string // "https://host" or "https://host:port", as written
	Name    string // 1 to 127 of [0-9a-zA-Z-]
	Version string // one or more of [0-9a-zA-Z]
}

// maxNameLen is Key Vault's limit on object names.
const maxNameLen = 127

// ParseKeyID parses kid, which must be exactly https://<host>[:<port>]/keys/<name>/<version>.
// The host is a DNS name or IPv4 address (labels of letters, digits and inner hyphens) or a
// bracketed IPv6 address in canonical form; the port, if any, is 1 to 65535 without leading
// zeros. No userinfo, query, fragment, percent-encoding, empty or dot segments, or trailing
// slash are allowed, so k.String() == kid for every kid it accepts. The host is kept as
// written: compare vaults case-insensitively if that matters.
//
// It returns a *ParseError wrapping ErrKeyID if kid is not of that form.
func ParseKeyID(kid string) (KeyID, error) {
	k, err := parseKeyID(kid)
	if err != nil {
		return KeyID{}, &ParseError{Field: "kid", Err: err}
	}
	return k, nil
}

// String returns the identifier: Vault + "/keys/" + Name + "/" + Version.
func (k KeyID) String() string {
	return k.Vault + "/keys/" + k.Name + "/" + k.Version
}

func parseKeyID(kid string) (KeyID, error) {
	fail := func(format string, args ...any) (KeyID, error) {
		return KeyID{}, fmt.Errorf("%w: "+format, append([]any{ErrKeyID}, args...)...)
	}
	const scheme = "https://"
	rest, ok := strings.CutPrefix(kid, scheme)
	if !ok {
		return fail("scheme must be https://")
	}
	if strings.ContainsAny(kid, "?#") {
		return fail("query or fragment not allowed")
	}
	authority, path, ok := strings.Cut(rest, "/")
	if !ok {
		return fail("no path")
	}
	if strings.Contains(authority, "@") {
		return fail("userinfo not allowed")
	}
	if err := checkAuthority(authority); err != nil {
		return fail("%v", err)
	}
	path, ok = strings.CutPrefix(path, "keys/")
	if !ok {
		return fail("path must start with /keys/")
	}
	name, version, ok := strings.Cut(path, "/")
	if !ok || version == "" {
		return fail("key version missing")
	}
	if name == "" || len(name) > maxNameLen || !allIn(name, true) {
		return fail("key name must be 1 to %d of [0-9a-zA-Z-]", maxNameLen)
	}
	if !allIn(version, false) {
		return fail("key version must be [0-9a-zA-Z]+")
	}
	return KeyID{Vault: scheme + authority, Name: name, Version: version}, nil
}

// allIn reports whether s has only ASCII letters and digits, and hyphens if hyphen is set.
func allIn(s string, hyphen bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case c == '-' && hyphen:
		default:
			return false
		}
	}
	return true
}

// checkAuthority checks host[:port].
func checkAuthority(a string) error {
	host, port := a, ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return fmt.Errorf("unclosed ipv6 literal")
		}
		host, port = a[:end+1], a[end+1:]
		addr, err := netip.ParseAddr(host[1:end])
		if err != nil || !addr.Is6() || addr.Is4In6() || addr.Zone() != "" || addr.String() != host[1:end] {
			return fmt.Errorf("ipv6 literal must be a canonical address without zone")
		}
		if port != "" {
			p, ok := strings.CutPrefix(port, ":")
			if !ok {
				return fmt.Errorf("junk after ipv6 literal")
			}
			port = p
			if err := checkPort(port); err != nil {
				return err
			}
		}
		return nil
	}
	if i := strings.IndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i+1:]
		if err := checkPort(port); err != nil {
			return err
		}
	}
	return checkHostname(host)
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || p[0] == '0' || !allDigits(p) || n < 1 || n > 65535 {
		return fmt.Errorf("port must be 1 to 65535 without leading zeros")
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkHostname accepts dot-separated labels of 1 to 63 letters, digits and inner hyphens,
// 253 bytes at most (RFC 1123 section 2.1). Dotted IPv4 addresses pass too.
func checkHostname(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("host must be 1 to 253 bytes")
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || !allIn(label, true) || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host must be dot-separated labels of [0-9a-zA-Z-], not starting or ending with '-'")
		}
	}
	return nil
}
