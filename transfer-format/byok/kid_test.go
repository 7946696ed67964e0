package byok_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
)

func TestParseKeyID(t *testing.T) {
	const ver = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name string
		kid  string
		want byok.KeyID // zero when an error is expected
	}{
		{"key vault", "https://contoso.vault.azure.net/keys/kek-1/" + ver, byok.KeyID{"https://contoso.vault.azure.net", "kek-1", ver}},
		{"managed hsm", "https://contoso.managedhsm.azure.net/keys/KEK/" + ver, byok.KeyID{"https://contoso.managedhsm.azure.net", "KEK", ver}},
		{"port", "https://localhost:8443/keys/k/v1", byok.KeyID{"https://localhost:8443", "k", "v1"}},
		{"ipv4", "https://127.0.0.1:65535/keys/k/v", byok.KeyID{"https://127.0.0.1:65535", "k", "v"}},
		{"ipv6", "https://[::1]:8443/keys/k/v", byok.KeyID{"https://[::1]:8443", "k", "v"}},
		{"ipv6 without port", "https://[2001:db8::1]/keys/k/v", byok.KeyID{"https://[2001:db8::1]", "k", "v"}},
		{"name of 127", "https://h/keys/" + strings.Repeat("a", 127) + "/v", byok.KeyID{"https://h", strings.Repeat("a", 127), "v"}},
		{"name all hyphens", "https://h/keys/---/v", byok.KeyID{"https://h", "---", "v"}},

		{"empty", "", byok.KeyID{}},
		{"http", "http://h/keys/k/v", byok.KeyID{}},
		{"upper-case scheme", "HTTPS://h/keys/k/v", byok.KeyID{}},
		{"no scheme", "h/keys/k/v", byok.KeyID{}},
		{"scheme-relative", "//h/keys/k/v", byok.KeyID{}},
		{"no path", "https://h", byok.KeyID{}},
		{"unversioned", "https://h/keys/k", byok.KeyID{}},
		{"empty version", "https://h/keys/k/", byok.KeyID{}},
		{"trailing slash", "https://h/keys/k/v/", byok.KeyID{}},
		{"extra segment", "https://h/keys/k/v/x", byok.KeyID{}},
		{"secrets", "https://h/secrets/k/v", byok.KeyID{}},
		{"upper-case collection", "https://h/Keys/k/v", byok.KeyID{}},
		{"dot segment", "https://h/keys/./k/v", byok.KeyID{}},
		{"dot-dot segment", "https://h/keys/../k/v", byok.KeyID{}},
		{"dot-dot as name", "https://h/keys/../v", byok.KeyID{}},
		{"percent-encoded", "https://h/keys/k%2Fx/v", byok.KeyID{}},
		{"double slash", "https://h//keys/k/v", byok.KeyID{}},
		{"backslash", `https://h/keys\k/v`, byok.KeyID{}},
		{"query", "https://h/keys/k/v?api-version=7.4", byok.KeyID{}},
		{"fragment", "https://h/keys/k/v#x", byok.KeyID{}},
		{"userinfo", "https://user@h/keys/k/v", byok.KeyID{}},
		{"userinfo with password", "https://u:p@h/keys/k/v", byok.KeyID{}},
		{"empty host", "https:///keys/k/v", byok.KeyID{}},
		{"host with underscore", "https://a_b/keys/k/v", byok.KeyID{}},
		{"host label starting with hyphen", "https://-a.b/keys/k/v", byok.KeyID{}},
		{"host with trailing dot", "https://h./keys/k/v", byok.KeyID{}},
		{"host with empty label", "https://a..b/keys/k/v", byok.KeyID{}},
		{"host label over 63", "https://" + strings.Repeat("a", 64) + "/keys/k/v", byok.KeyID{}},
		{"host over 253", "https://" + strings.Repeat("a.", 127) + "a/keys/k/v", byok.KeyID{}},
		{"empty port", "https://h:/keys/k/v", byok.KeyID{}},
		{"port zero", "https://h:0/keys/k/v", byok.KeyID{}},
		{"port with leading zero", "https://h:0443/keys/k/v", byok.KeyID{}},
		{"port with sign", "https://h:+443/keys/k/v", byok.KeyID{}},
		{"port too large", "https://h:65536/keys/k/v", byok.KeyID{}},
		{"two ports", "https://h:1:2/keys/k/v", byok.KeyID{}},
		{"ipv6 not canonical", "https://[0:0::1]/keys/k/v", byok.KeyID{}},
		{"ipv6 with zone", "https://[fe80::1%25eth0]/keys/k/v", byok.KeyID{}},
		{"ipv4 in brackets", "https://[127.0.0.1]/keys/k/v", byok.KeyID{}},
		{"ipv4-mapped ipv6", "https://[::ffff:127.0.0.1]/keys/k/v", byok.KeyID{}},
		{"unclosed bracket", "https://[::1/keys/k/v", byok.KeyID{}},
		{"junk after bracket", "https://[::1]x/keys/k/v", byok.KeyID{}},
		{"empty name", "https://h/keys//v", byok.KeyID{}},
		{"name of 128", "https://h/keys/" + strings.Repeat("a", 128) + "/v", byok.KeyID{}},
		{"name with underscore", "https://h/keys/a_b/v", byok.KeyID{}},
		{"name with space", "https://h/keys/a b/v", byok.KeyID{}},
		{"non-ascii name", "https://h/keys/schlüssel/v", byok.KeyID{}},
		{"version with hyphen", "https://h/keys/k/v-1", byok.KeyID{}},
		{"whitespace around", " https://h/keys/k/v", byok.KeyID{}},
		{"trailing newline", "https://h/keys/k/v\n", byok.KeyID{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := byok.ParseKeyID(tt.kid)
			if tt.want == (byok.KeyID{}) {
				var pe *byok.ParseError
				if !errors.As(err, &pe) || pe.Field != "kid" || !errors.Is(err, byok.ErrKeyID) {
					t.Fatalf("ParseKeyID(%q) = %+v, %v; want a *ParseError for kid wrapping ErrKeyID", tt.kid, got, err)
				}
				if got != (byok.KeyID{}) {
					t.Errorf("ParseKeyID returned %+v with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeyID(%q): %v", tt.kid, err)
			}
			if got != tt.want {
				t.Errorf("ParseKeyID(%q) = %+v, want %+v", tt.kid, got, tt.want)
			}
			if s := got.String(); s != tt.kid {
				t.Errorf("String() = %q, want %q", s, tt.kid)
			}
		})
	}
}
