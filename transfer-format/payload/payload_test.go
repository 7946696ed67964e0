package payload_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// examples returns the canonical encoding of a valid payload of every kind, from a test
// ceremony: the offline station's enrollment (with HSM token info), policy v1, a Managed HSM KEK offer with attestation, an EC
// key package, an approval and a receipt.
func examples(t *testing.T) map[bundle.Kind][]byte {
	t.Helper()
	c, err := chaintest.New(chaintest.Config{Dir: t.TempDir(), FastWrite: true,
		Vault: "https://contoso-byok.managedhsm.azure.net", VaultKind: payload.VaultManagedHSM})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Setup(); err != nil {
		t.Fatal(err)
	}
	off, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := c.Package(off.ID(), payload.ECP256, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.ReceiptPayload(pkg)
	if err != nil {
		t.Fatal(err)
	}
	out := map[bundle.Kind][]byte{}
	for _, b := range c.Written {
		p, err := b.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[b.Header.Kind] = p // the last of each kind
	}
	out[bundle.KindApproval], err = payload.Marshal(c.Approval(pkg.ID(), bundle.KindKeyPackage, 0, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	out[bundle.KindReceipt], err = payload.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 6 {
		t.Fatalf("examples of %d kinds, want 6", len(out))
	}
	return out
}

var kinds = []bundle.Kind{bundle.KindEnrollment, bundle.KindPolicy, bundle.KindKEKOffer, bundle.KindKeyPackage, bundle.KindApproval, bundle.KindReceipt}

func TestDecodeCanonical(t *testing.T) {
	ex := examples(t)
	for _, k := range kinds {
		t.Run(k.String(), func(t *testing.T) {
			v, err := payload.Decode(k, ex[k])
			if err != nil {
				t.Fatalf("Decode() = %v", err)
			}
			if got, err := payload.KindOf(v); err != nil || got != k {
				t.Errorf("KindOf(Decode()) = %v, %v; want %s", got, err, k)
			}
			again, err := payload.Marshal(v)
			if err != nil || !bytes.Equal(again, ex[k]) {
				t.Errorf("Marshal(Decode(x)) != x")
			}
			// A payload of one kind is not a payload of another.
			for _, other := range kinds {
				if other == k {
					continue
				}
				if _, err := payload.Decode(other, ex[k]); err == nil {
					t.Errorf("Decode(%s, a %s payload) succeeded", other, k)
				}
			}
		})
	}
	if _, err := payload.Decode(7, ex[bundle.KindReceipt]); err == nil {
		t.Error("Decode(kind 7) succeeded")
	}
	if _, err := payload.KindOf(&payload.Vault{}); err == nil {
		t.Error("KindOf(*Vault) succeeded")
	}
}

// TestDecodeRefusesNonCanonical feeds every kind's payload spelled in other ways that a
// lenient JSON reader would accept as the same value.
func TestDecodeRefusesNonCanonical(t *testing.T) {
	ex := examples(t)
	// Each mutation returns the changed encoding, or nil where it does not apply.
	tests := []struct {
		name   string
		mutate func(p []byte) []byte
	}{
		{"leading space", func(p []byte) []byte { return append([]byte(" "), p...) }},
		{"trailing newline", func(p []byte) []byte { return append(bytes.Clone(p), '\n') }},
		{"space after a colon", func(p []byte) []byte { return bytes.Replace(p, []byte(`":`), []byte(`": `), 1) }},
		{"space after a comma", func(p []byte) []byte { return bytes.Replace(p, []byte(`,"`), []byte(`, "`), 1) }},
		{"tab before the end", func(p []byte) []byte { return append(bytes.Clone(p[:len(p)-1]), '\t', '}') }},
		{"first two members swapped", swapFirstMembers},
		{"unknown member", func(p []byte) []byte { return append(bytes.Clone(p[:len(p)-1]), []byte(`,"x":1}`)...) }},
		{"first member twice", func(p []byte) []byte {
			end := memberEnd(p, 1)
			return append(bytes.Clone(p[:end+1]), append(bytes.Clone(p[1:end+1]), p[end+1:]...)...)
		}},
		{"member name in another case", func(p []byte) []byte {
			i := bytes.IndexByte(p[2:], '"') + 2
			return append(append(bytes.Clone(p[:2]), bytes.ToUpper(p[2:i])...), p[i:]...)
		}},
		{"member name with an escape", func(p []byte) []byte {
			// The first letter of the first member name as \u00XX.
			return append(append(bytes.Clone(p[:2]), []byte(fmt.Sprintf(`\u%04x`, p[2]))...), p[3:]...)
		}},
		{"escaped slash", func(p []byte) []byte {
			if !bytes.Contains(p, []byte("/")) {
				return nil
			}
			return bytes.Replace(p, []byte("/"), []byte(`\/`), 1)
		}},
		{"html escape", func(p []byte) []byte {
			// '+' in base64 is left alone by the canonical encoder; \u002b is the same string.
			if !bytes.Contains(p, []byte("+")) {
				return nil
			}
			return bytes.Replace(p, []byte("+"), []byte(`\u002b`), 1)
		}},
		{"unpadded base64", func(p []byte) []byte {
			i := bytes.Index(p, []byte(`=",`))
			if i < 0 {
				i = bytes.Index(p, []byte(`="`))
			}
			if i < 0 {
				return nil
			}
			return append(bytes.Clone(p[:i]), p[i+1:]...)
		}},
		{"number with exponent", func(p []byte) []byte { return replaceNumber(p, func(n string) string { return n + "e0" }) }},
		{"number with fraction", func(p []byte) []byte { return replaceNumber(p, func(n string) string { return n + ".0" }) }},
		{"number with leading zero", func(p []byte) []byte { return replaceNumber(p, func(n string) string { return "0" + n }) }},
		{"two objects", func(p []byte) []byte { return append(bytes.Clone(p), p...) }},
		{"trailing garbage", func(p []byte) []byte { return append(bytes.Clone(p), 'x') }},
		{"truncated", func(p []byte) []byte { return p[:len(p)-1] }},
		{"null", func([]byte) []byte { return []byte("null") }},
		{"empty", func([]byte) []byte { return []byte{} }},
		{"array", func(p []byte) []byte { return append(append([]byte("["), p...), ']') }},
		{"invalid utf-8 in a string", func(p []byte) []byte {
			i := bytes.Index(p, []byte(`":"`))
			if i < 0 {
				return nil
			}
			return append(append(bytes.Clone(p[:i+3]), 0xff), p[i+3:]...)
		}},
		{"byte order mark", func(p []byte) []byte { return append([]byte("\xef\xbb\xbf"), p...) }},
	}
	for _, k := range kinds {
		for _, tt := range tests {
			m := tt.mutate(bytes.Clone(ex[k]))
			if m == nil {
				continue
			}
			t.Run(k.String()+"/"+tt.name, func(t *testing.T) {
				v, err := payload.Decode(k, m)
				var pe *bundle.ParseError
				if v != nil || !errors.As(err, &pe) {
					t.Errorf("Decode(%.60q) = %v, %v; want a *ParseError", m, v, err)
				}
			})
		}
	}
}

// memberEnd returns the index of the comma ending the member that starts at i.
func memberEnd(p []byte, i int) int {
	depth, inStr := 0, false
	for j := i; j < len(p); j++ {
		switch c := p[j]; {
		case inStr && c == '\\':
			j++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ',' && depth == 0:
			return j
		}
	}
	return len(p) - 1
}

func swapFirstMembers(p []byte) []byte {
	a := memberEnd(p, 1)
	if a == len(p)-1 {
		return nil
	}
	b := memberEnd(p, a+1)
	out := []byte{'{'}
	out = append(out, p[a+1:b]...)
	out = append(out, ',')
	out = append(out, p[1:a]...)
	return append(out, p[b:]...)
}

// replaceNumber rewrites the first number member value with f.
func replaceNumber(p []byte, f func(string) string) []byte {
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '"' && p[i+1] == ':' && p[i+2] >= '1' && p[i+2] <= '9' {
			j := i + 2
			for j < len(p) && p[j] >= '0' && p[j] <= '9' {
				j++
			}
			return append(append(bytes.Clone(p[:i+2]), f(string(p[i+2:j]))...), p[j:]...)
		}
	}
	return nil
}

// fresh decodes a new copy of the example of kind k.
func fresh[T any](t *testing.T, ex map[bundle.Kind][]byte, k bundle.Kind) *T {
	t.Helper()
	v, err := payload.Decode(k, ex[k])
	if err != nil {
		t.Fatal(err)
	}
	return v.(*T)
}

func pub(t *testing.T, k any) payload.PublicKey {
	t.Helper()
	p, err := payload.NewPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestValidateRules breaks one rule at a time in a valid payload. Each must fail Validate,
// and its canonical encoding must fail Decode with a *ParseError.
func TestValidateRules(t *testing.T) {
	ex := examples(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), nil)
	if err != nil {
		t.Fatal(err)
	}
	edPub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public()
	edKey := pub(t, edPub)
	p384SPKI := must(x509.MarshalPKIXPublicKey(p384.Public()))
	longText := strings.Repeat("a", 257)

	type rule struct {
		name string
		kind bundle.Kind
		edit func(v any)
	}
	enr := func(name string, f func(e *payload.Enrollment)) rule {
		return rule{name, bundle.KindEnrollment, func(v any) { f(v.(*payload.Enrollment)) }}
	}
	pol := func(name string, f func(p *payload.Policy)) rule {
		return rule{name, bundle.KindPolicy, func(v any) { f(v.(*payload.Policy)) }}
	}
	off := func(name string, f func(o *payload.KEKOffer)) rule {
		return rule{name, bundle.KindKEKOffer, func(v any) { f(v.(*payload.KEKOffer)) }}
	}
	pkg := func(name string, f func(k *payload.KeyPackage)) rule {
		return rule{name, bundle.KindKeyPackage, func(v any) { f(v.(*payload.KeyPackage)) }}
	}
	apr := func(name string, f func(a *payload.Approval)) rule {
		return rule{name, bundle.KindApproval, func(v any) { f(v.(*payload.Approval)) }}
	}
	rcp := func(name string, f func(r *payload.Receipt)) rule {
		return rule{name, bundle.KindReceipt, func(v any) { f(v.(*payload.Receipt)) }}
	}
	byokFile := func(kid string) []byte {
		ct := bytes.Repeat([]byte{1}, 3072/8+40)
		f, err := byok.New(kid, ct, "test")
		if err != nil {
			t.Fatal(err)
		}
		return f.Marshal()
	}
	tests := []rule{
		enr("station neither offline nor online", func(e *payload.Enrollment) { e.Station = "middle" }),
		enr("name with uppercase", func(e *payload.Enrollment) { e.Name = "Online" }),
		enr("empty name", func(e *payload.Enrollment) { e.Name = "" }),
		enr("name of 65 characters", func(e *payload.Enrollment) { e.Name = strings.Repeat("a", 65) }),
		enr("name starting with a dash", func(e *payload.Enrollment) { e.Name = "-a" }),
		enr("software with a newline", func(e *payload.Enrollment) { e.Software = "x\n" }),
		enr("software too long", func(e *payload.Enrollment) { e.Software = longText }),
		enr("hsm on the online station", func(e *payload.Enrollment) { e.Station = "online" }),
		enr("hsm label not printable", func(e *payload.Enrollment) { e.HSM.Label = "\x00" }),
		enr("key that is not a key", func(e *payload.Enrollment) { e.Key.SPKI = []byte{1, 2, 3} }),
		enr("key alg says ed25519 for an ecdsa key", func(e *payload.Enrollment) { e.Key.Alg = "ed25519" }),
		enr("ed25519 key named ecdsa", func(e *payload.Enrollment) { e.Key = payload.PublicKey{Alg: "ecdsa-p256", SPKI: edKey.SPKI} }),
		enr("p-384 key", func(e *payload.Enrollment) { e.Key = payload.PublicKey{Alg: "ecdsa-p384", SPKI: p384SPKI} }),

		pol("version 0", func(p *payload.Policy) { p.Version = 0 }),
		pol("version 1 with a previous policy", func(p *payload.Policy) { p.Previous = bundle.ID{1} }),
		pol("version 2 without a previous policy", func(p *payload.Policy) { p.Version = 2 }),
		pol("offline station key invalid", func(p *payload.Policy) { p.OfflineStation.SPKI = nil }),
		pol("online station key invalid", func(p *payload.Policy) { p.OnlineStation.Alg = "ed448" }),
		pol("one key for both stations", func(p *payload.Policy) { p.OnlineStation = p.OfflineStation }),
		pol("no custodians", func(p *payload.Policy) { p.Custodians, p.Threshold = nil, 1 }),
		pol("17 custodians", func(p *payload.Policy) {
			for i := len(p.Custodians); i < 17; i++ {
				k := must(ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{byte(i + 40)}, 32)))
				p.Custodians = append(p.Custodians, payload.Custodian{Name: fmt.Sprintf("c%d", i), Key: pub(t, k.Public())})
			}
		}),
		pol("custodian name invalid", func(p *payload.Policy) { p.Custodians[0].Name = "Alice" }),
		pol("custodian name twice", func(p *payload.Policy) { p.Custodians[1].Name = p.Custodians[0].Name }),
		pol("custodian key invalid", func(p *payload.Policy) { p.Custodians[0].Key.SPKI = p384SPKI }),
		pol("custodian holds a station key", func(p *payload.Policy) { p.Custodians[0].Key = p.OfflineStation }),
		pol("custodian holds the online key", func(p *payload.Policy) { p.Custodians[2].Key = p.OnlineStation }),
		pol("two custodians share a key", func(p *payload.Policy) { p.Custodians[1].Key = p.Custodians[0].Key }),
		pol("threshold 0", func(p *payload.Policy) { p.Threshold = 0 }),
		pol("threshold above the custodians", func(p *payload.Policy) { p.Threshold = len(p.Custodians) + 1 }),
		pol("no vaults", func(p *payload.Policy) { p.Vaults = nil }),
		pol("65 vaults", func(p *payload.Policy) {
			for i := len(p.Vaults); i < 65; i++ {
				p.Vaults = append(p.Vaults, payload.Vault{URL: fmt.Sprintf("https://v%d.vault.azure.net", i), Kind: "premium", Region: "westeurope"})
			}
		}),
		pol("vault url with uppercase", func(p *payload.Policy) { p.Vaults[0].URL = "https://Contoso.vault.azure.net" }),
		pol("vault url with a path", func(p *payload.Policy) { p.Vaults[0].URL = "https://contoso.vault.azure.net/keys" }),
		pol("vault url with a trailing slash", func(p *payload.Policy) { p.Vaults[0].URL = "https://contoso.vault.azure.net/" }),
		pol("vault url over http", func(p *payload.Policy) { p.Vaults[0].URL = "http://contoso.vault.azure.net" }),
		pol("vault url with user info", func(p *payload.Policy) { p.Vaults[0].URL = "https://a@contoso.vault.azure.net" }),
		pol("vault twice", func(p *payload.Policy) { p.Vaults = append(p.Vaults, p.Vaults[0]) }),
		pol("vault kind standard", func(p *payload.Policy) { p.Vaults[0].Kind = "standard" }),
		pol("vault region with a space", func(p *payload.Policy) { p.Vaults[0].Region = "west europe" }),
		pol("min_kek_bits 1024", func(p *payload.Policy) { p.MinKEKBits = 1024 }),
		pol("min_kek_bits 2049", func(p *payload.Policy) { p.MinKEKBits = 2049 }),
		pol("no key types", func(p *payload.Policy) { p.KeyTypes = nil }),
		pol("unknown key type", func(p *payload.Policy) { p.KeyTypes = []payload.KeyType{"RSA-1024"} }),
		pol("key types out of order", func(p *payload.Policy) { p.KeyTypes = []payload.KeyType{payload.AES128, payload.RSA2048} }),
		pol("key type twice", func(p *payload.Policy) { p.KeyTypes = []payload.KeyType{payload.RSA2048, payload.RSA2048} }),
		pol("lifetime 59 seconds", func(p *payload.Policy) { p.BundleLifetimeSeconds = 59 }),
		pol("lifetime over 366 days", func(p *payload.Policy) { p.BundleLifetimeSeconds = 366*86400 + 1 }),
		pol("negative clock skew", func(p *payload.Policy) { p.MaxClockSkewSeconds = -1 }),
		pol("clock skew over a day", func(p *payload.Policy) { p.MaxClockSkewSeconds = 86401 }),
		pol("region name with a capital", func(p *payload.Policy) {
			p.Regions = []payload.Region{{Name: "WestEurope", Custodians: []string{"custodian-1"}, Threshold: 1}}
		}),
		pol("regions out of order", func(p *payload.Policy) {
			p.Regions = []payload.Region{{Name: "westeurope", Custodians: []string{"custodian-1"}, Threshold: 1}, {Name: "eastus", Custodians: []string{"custodian-2"}, Threshold: 1}}
		}),
		pol("region twice", func(p *payload.Policy) {
			p.Regions = []payload.Region{{Name: "eastus", Custodians: []string{"custodian-1"}, Threshold: 1}, {Name: "eastus", Custodians: []string{"custodian-2"}, Threshold: 1}}
		}),
		pol("region without custodians", func(p *payload.Policy) {
			p.Regions = []payload.Region{{Name: "eastus", Threshold: 1}}
		}),
		pol("region names a stranger", func(p *payload.Policy) {
			p.Regions = []payload.Region{{Name: "eastus", Custodians: []string{"mallory"}, Threshold: 1}}
		}),
		pol("region custodians out of order", func(p *payload.Policy) {
			p.Regions = []payload.Region{{Name: "eastus", Custodians: []string{"custodian-2", "custodian-1"}, Threshold: 1}}
		}),
		pol("region custodian twice", func(p *payload.Policy) {
			p.Regions = []payload.Region{{Name: "eastus", Custodians: []string{"custodian-1", "custodian-1"}, Threshold: 1}}
		}),
		pol("region threshold 0", func(p *payload.Policy) {
			p.Regions = []payload.Region{{Name: "eastus", Custodians: []string{"custodian-1"}, Threshold: 0}}
		}),
		pol("region threshold above its custodians", func(p *payload.Policy) {
			p.Regions = []payload.Region{{Name: "eastus", Custodians: []string{"custodian-1"}, Threshold: 2}}
		}),
		pol("global approval without regions", func(p *payload.Policy) { p.GlobalApproval = true }),
		pol("65 regions", func(p *payload.Policy) {
			for i := range 65 {
				p.Regions = append(p.Regions, payload.Region{Name: fmt.Sprintf("r%02d", i), Custodians: []string{"custodian-1"}, Threshold: 1})
			}
		}),

		off("vault url not canonical", func(o *payload.KEKOffer) { o.Vault += "/" }),
		off("kid not a key identifier", func(o *payload.KEKOffer) { o.KID = o.Vault + "/keys/kek" }),
		off("kid in another vault", func(o *payload.KEKOffer) { o.KID = strings.Replace(o.KID, "contoso", "fabrikam", 1) }),
		off("kty EC-HSM", func(o *payload.KEKOffer) { o.Kty = "EC-HSM" }),
		off("kty RSA", func(o *payload.KEKOffer) { o.Kty = "RSA" }),
		off("key size 1024", func(o *payload.KEKOffer) { o.KeySize = 1024 }),
		off("key size does not match the modulus", func(o *payload.KEKOffer) { o.KeySize = 4096 }),
		off("key ops include wrapKey", func(o *payload.KEKOffer) { o.KeyOps = []string{"import", "wrapKey"} }),
		off("key ops empty", func(o *payload.KEKOffer) { o.KeyOps = nil }),
		off("modulus with a leading zero", func(o *payload.KEKOffer) { o.N = append([]byte{0}, o.N[:len(o.N)-1]...) }),
		off("modulus one byte short", func(o *payload.KEKOffer) { o.N = o.N[1:] }),
		off("modulus with the top bit clear", func(o *payload.KEKOffer) { o.N[0] &= 0x7f }),
		off("empty exponent", func(o *payload.KEKOffer) { o.E = nil }),
		off("even exponent", func(o *payload.KEKOffer) { o.E = []byte{1, 0, 0} }),
		off("exponent with a leading zero", func(o *payload.KEKOffer) { o.E = []byte{0, 1, 0, 1} }),
		off("exponent of five bytes", func(o *payload.KEKOffer) { o.E = []byte{1, 0, 0, 0, 1} }),
		off("exponent 1", func(o *payload.KEKOffer) { o.E = []byte{1} }),
		off("no expiry", func(o *payload.KEKOffer) { o.Expires = 0 }),
		off("attestation without data", func(o *payload.KEKOffer) { o.Attestation.Data = nil }),
		off("attestation format not printable", func(o *payload.KEKOffer) { o.Attestation.Format = "\x01" }),
		off("attestation certificate not DER", func(o *payload.KEKOffer) { o.Attestation.Certificates = [][]byte{{0x30, 0}} }),

		pkg("vault url not canonical", func(k *payload.KeyPackage) { k.Vault = strings.ToUpper(k.Vault) }),
		pkg("key name with an underscore", func(k *payload.KeyPackage) { k.KeyName = "key_1" }),
		pkg("key name of 128 characters", func(k *payload.KeyPackage) { k.KeyName = strings.Repeat("k", 128) }),
		pkg("empty key name", func(k *payload.KeyPackage) { k.KeyName = "" }),
		pkg("zero kek offer", func(k *payload.KeyPackage) { k.KEK.Offer = bundle.ID{} }),
		pkg("residency region with a space", func(k *payload.KeyPackage) { k.Regions = []string{"west europe"} }),
		pkg("residency regions out of order", func(k *payload.KeyPackage) { k.Regions = []string{"westeurope", "eastus"} }),
		pkg("residency region twice", func(k *payload.KeyPackage) { k.Regions = []string{"eastus", "eastus"} }),
		pkg("kek kid invalid", func(k *payload.KeyPackage) { k.KEK.KID = "kek" }),
		pkg("kek in another vault", func(k *payload.KeyPackage) {
			k.KEK.KID = "https://fabrikam.vault.azure.net/keys/kek/1"
			k.BYOK = byokFile(k.KEK.KID)
		}),
		pkg("byok not a byok file", func(k *payload.KeyPackage) { k.BYOK = []byte(`{}`) }),
		pkg("byok for another kek", func(k *payload.KeyPackage) { k.BYOK = byokFile(k.Vault + "/keys/other-kek/1") }),
		pkg("target kty unknown", func(k *payload.KeyPackage) { k.Target.Kty = "EC" }),
		pkg("target curve unknown", func(k *payload.KeyPackage) { k.Target.Curve = "P-256K" }),
		pkg("key ops empty", func(k *payload.KeyPackage) { k.Target.KeyOps = nil }),
		pkg("key ops not sorted", func(k *payload.KeyPackage) { k.Target.KeyOps = []string{"verify", "sign"} }),
		pkg("key op twice", func(k *payload.KeyPackage) { k.Target.KeyOps = []string{"sign", "sign"} }),
		pkg("key op not for EC", func(k *payload.KeyPackage) { k.Target.KeyOps = []string{"decrypt", "sign"} }),
		pkg("expires before not_before", func(k *payload.KeyPackage) { k.Target.NotBefore, k.Target.Expires = 200, 100 }),
		pkg("negative not_before", func(k *payload.KeyPackage) { k.Target.NotBefore = -1 }),
		pkg("16 tags", func(k *payload.KeyPackage) {
			k.Target.Tags = map[string]string{}
			for i := range 16 {
				k.Target.Tags[fmt.Sprint(i)] = "v"
			}
		}),
		pkg("empty tag name", func(k *payload.KeyPackage) { k.Target.Tags = map[string]string{"": "v"} }),
		pkg("tag value of 257 characters", func(k *payload.KeyPackage) { k.Target.Tags = map[string]string{"k": longText} }),
		pkg("EC target with a kcv", func(k *payload.KeyPackage) { k.KCV = []byte{1, 2, 3} }),
		pkg("EC target without a public key", func(k *payload.KeyPackage) { k.PublicKey = nil }),
		pkg("public key not DER", func(k *payload.KeyPackage) { k.PublicKey = []byte{0x30, 1, 0} }),
		pkg("public key of another type", func(k *payload.KeyPackage) { k.PublicKey = p384SPKI }),
		pkg("public key ed25519", func(k *payload.KeyPackage) { k.PublicKey = edKey.SPKI }),
		pkg("AES target with a public key", func(k *payload.KeyPackage) {
			k.Target = payload.Target{Kty: "oct-HSM", KeySize: 256, KeyOps: []string{"wrapKey"}, Enabled: true}
			k.KCV = []byte{1, 2, 3}
		}),
		pkg("AES target with a 4-byte kcv", func(k *payload.KeyPackage) {
			k.Target = payload.Target{Kty: "oct-HSM", KeySize: 256, KeyOps: []string{"wrapKey"}, Enabled: true}
			k.PublicKey, k.KCV = nil, []byte{1, 2, 3, 4}
		}),
		pkg("AES-512", func(k *payload.KeyPackage) {
			k.Target = payload.Target{Kty: "oct-HSM", KeySize: 512, KeyOps: []string{"wrapKey"}, Enabled: true}
			k.PublicKey, k.KCV = nil, []byte{1, 2, 3}
		}),
		pkg("provenance tool not printable", func(k *payload.KeyPackage) { k.Provenance.Tool = "\t" }),
		pkg("provenance wrap path too long", func(k *payload.KeyPackage) { k.Provenance.Wrap.Path = longText }),
		pkg("provenance token not printable", func(k *payload.KeyPackage) { k.Provenance.Token.Serial = "é" }),

		apr("zero target", func(a *payload.Approval) { a.Target = bundle.ID{} }),
		apr("target kind receipt", func(a *payload.Approval) { a.TargetKind = "receipt" }),
		apr("no signatures", func(a *payload.Approval) { a.Signatures = nil }),
		apr("17 signatures", func(a *payload.Approval) {
			for i := len(a.Signatures); i < 17; i++ {
				a.Signatures = append(a.Signatures, payload.Signature{Custodian: bundle.ID{0xff, byte(i)}, Sig: make([]byte, 64)})
			}
		}),
		apr("signature of 63 bytes", func(a *payload.Approval) { a.Signatures[0].Sig = a.Signatures[0].Sig[:63] }),
		apr("signature of 65 bytes", func(a *payload.Approval) { a.Signatures[1].Sig = append(a.Signatures[1].Sig, 0) }),
		apr("signatures out of order", func(a *payload.Approval) { a.Signatures[0], a.Signatures[1] = a.Signatures[1], a.Signatures[0] }),
		apr("custodian twice", func(a *payload.Approval) { a.Signatures[1].Custodian = a.Signatures[0].Custodian }),

		rcp("zero package", func(r *payload.Receipt) { r.Package = bundle.ID{} }),
		rcp("vault not canonical", func(r *payload.Receipt) { r.Vault += ":443/" }),
		rcp("unknown outcome", func(r *payload.Receipt) { r.Outcome = "created" }),
		rcp("imported without a kid", func(r *payload.Receipt) { r.KID = "" }),
		rcp("imported kid in another vault", func(r *payload.Receipt) { r.KID = "https://fabrikam.vault.azure.net/keys/key-1/1" }),
		rcp("imported without a creation time", func(r *payload.Receipt) { r.Created = 0 }),
		rcp("imported with an error", func(r *payload.Receipt) { r.Error = "oops" }),
		rcp("imported public key not DER", func(r *payload.Receipt) { r.PublicKey = []byte{1} }),
		rcp("rejected with a kid", func(r *payload.Receipt) {
			r.Outcome, r.PublicKey, r.Created, r.Error = payload.OutcomeRejected, nil, 0, "x"
		}),
		rcp("rejected with a public key", func(r *payload.Receipt) { r.Outcome, r.KID, r.Created, r.Error = payload.OutcomeRejected, "", 0, "x" }),
		rcp("rejected without an error", func(r *payload.Receipt) { r.Outcome, r.KID, r.PublicKey = payload.OutcomeRejected, "", nil }),
		rcp("error of 1025 bytes", func(r *payload.Receipt) {
			r.Outcome, r.KID, r.PublicKey, r.Error = payload.OutcomeRejected, "", nil, strings.Repeat("e", 1025)
		}),
		rcp("16 tags", func(r *payload.Receipt) {
			for i := range 16 {
				r.Tags[fmt.Sprint("t", i)] = "v"
			}
		}),
		rcp("tag name of 513 characters", func(r *payload.Receipt) { r.Tags[strings.Repeat("n", 513)] = "v" }),
	}
	for _, tt := range tests {
		t.Run(tt.kind.String()+"/"+tt.name, func(t *testing.T) {
			v, err := payload.Decode(tt.kind, ex[tt.kind])
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(v)
			val := v.(interface{ Validate() error })
			if err := val.Validate(); err == nil {
				t.Fatalf("Validate() = nil, want an error")
			}
			enc, err := payload.Marshal(v)
			if err != nil {
				return // not even encodable
			}
			got, err := payload.Decode(tt.kind, enc)
			var pe *bundle.ParseError
			if got != nil || !errors.As(err, &pe) {
				t.Errorf("Decode(invalid but canonical) = %v, %v; want a *ParseError", got, err)
			}
		})
	}
}

// TestValidateAccepts checks values at the edges of the rules.
func TestValidateAccepts(t *testing.T) {
	ex := examples(t)
	tests := []struct {
		name string
		kind bundle.Kind
		edit func(v any)
	}{
		{"enrollment with a long hsm serial", bundle.KindEnrollment, func(v any) {
			v.(*payload.Enrollment).HSM.Serial = strings.Repeat("9", 256)
		}},
		{"enrollment without an hsm", bundle.KindEnrollment, func(v any) { v.(*payload.Enrollment).HSM = nil }},
		{"policy with one custodian", bundle.KindPolicy, func(v any) {
			p := v.(*payload.Policy)
			p.Custodians, p.Threshold = p.Custodians[:1], 1
		}},
		{"policy lifetime bounds", bundle.KindPolicy, func(v any) {
			p := v.(*payload.Policy)
			p.BundleLifetimeSeconds, p.MaxClockSkewSeconds = 366*86400, 86400
		}},
		{"policy with regions and global approval", bundle.KindPolicy, func(v any) {
			p := v.(*payload.Policy)
			p.Regions = []payload.Region{
				{Name: "eastus", Custodians: []string{"custodian-2", "custodian-3"}, Threshold: 2},
				{Name: "westeurope", Custodians: []string{"custodian-1", "custodian-2"}, Threshold: 1},
			}
			p.GlobalApproval = true
		}},
		{"package bound to two regions", bundle.KindKeyPackage, func(v any) { v.(*payload.KeyPackage).Regions = []string{"eastus", "westeurope"} }},
		{"offer without attestation", bundle.KindKEKOffer, func(v any) { v.(*payload.KEKOffer).Attestation = nil }},
		{"package with 15 tags", bundle.KindKeyPackage, func(v any) {
			k := v.(*payload.KeyPackage)
			k.Target.Tags = map[string]string{}
			for i := range 15 {
				k.Target.Tags[fmt.Sprint(i)] = strings.Repeat("v", 256)
			}
		}},
		{"package with a 127-character name", bundle.KindKeyPackage, func(v any) { v.(*payload.KeyPackage).KeyName = strings.Repeat("K-9", 42) + "k" }},
		{"approval of a policy", bundle.KindApproval, func(v any) { v.(*payload.Approval).TargetKind = "policy" }},
		{"rejected receipt", bundle.KindReceipt, func(v any) {
			r := v.(*payload.Receipt)
			r.Outcome, r.KID, r.PublicKey, r.Created, r.Error = payload.OutcomeRejected, "", nil, 0, strings.Repeat("e", 1024)
		}},
		{"receipt for an AES key (no public key)", bundle.KindReceipt, func(v any) { v.(*payload.Receipt).PublicKey = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := payload.Decode(tt.kind, ex[tt.kind])
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(v)
			enc, err := payload.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := payload.Decode(tt.kind, enc); err != nil {
				t.Errorf("Decode() = %v, want success", err)
			}
		})
	}
}

func TestCanonicalVaultURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://contoso.vault.azure.net", "https://contoso.vault.azure.net"},
		{"https://Contoso.Vault.Azure.Net/", "https://contoso.vault.azure.net"},
		{"https://contoso.vault.azure.net:8443", "https://contoso.vault.azure.net:8443"},
		{"http://contoso.vault.azure.net", ""},
		{"https://contoso.vault.azure.net/keys", ""},
		{"https://contoso.vault.azure.net?x=1", ""},
		{"https://contoso.vault.azure.net#x", ""},
		{"https://u:p@contoso.vault.azure.net", ""},
		{"contoso.vault.azure.net", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := payload.CanonicalVaultURL(tt.in)
		if (tt.want == "") != (err != nil) || got != tt.want {
			t.Errorf("CanonicalVaultURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestKeyTypes(t *testing.T) {
	tests := []struct {
		kt       payload.KeyType
		kty      string
		size     int
		crv      string
		strength int
	}{
		{payload.RSA2048, "RSA-HSM", 2048, "", 112},
		{payload.RSA3072, "RSA-HSM", 3072, "", 128},
		{payload.RSA4096, "RSA-HSM", 4096, "", 152},
		{payload.ECP256, "EC-HSM", 0, "P-256", 128},
		{payload.ECP384, "EC-HSM", 0, "P-384", 192},
		{payload.ECP521, "EC-HSM", 0, "P-521", 256},
		{payload.AES128, "oct-HSM", 128, "", 128},
		{payload.AES192, "oct-HSM", 192, "", 192},
		{payload.AES256, "oct-HSM", 256, "", 256},
	}
	if len(tests) != len(payload.KeyTypes) {
		t.Fatalf("%d key types tested, %d defined", len(tests), len(payload.KeyTypes))
	}
	for i, tt := range tests {
		if payload.KeyTypes[i] != tt.kt {
			t.Errorf("KeyTypes[%d] = %s, want %s (canonical order)", i, payload.KeyTypes[i], tt.kt)
		}
		if tt.kt.Kty() != tt.kty || tt.kt.Size() != tt.size || tt.kt.Curve() != tt.crv || tt.kt.Strength() != tt.strength {
			t.Errorf("%s = %s/%d/%s/%d, want %s/%d/%s/%d", tt.kt, tt.kt.Kty(), tt.kt.Size(), tt.kt.Curve(), tt.kt.Strength(), tt.kty, tt.size, tt.crv, tt.strength)
		}
		if got, err := payload.KeyTypeOf(tt.kty, tt.size, tt.crv); err != nil || got != tt.kt {
			t.Errorf("KeyTypeOf(%s, %d, %s) = %s, %v", tt.kty, tt.size, tt.crv, got, err)
		}
		if got, err := payload.ParseKeyType(string(tt.kt)); err != nil || got != tt.kt {
			t.Errorf("ParseKeyType(%s) = %s, %v", tt.kt, got, err)
		}
		if tt.kt.IsSymmetric() != (tt.kty == "oct-HSM") {
			t.Errorf("%s.IsSymmetric() = %v", tt.kt, tt.kt.IsSymmetric())
		}
		if len(tt.kt.DefaultKeyOps()) == 0 {
			t.Errorf("%s has no default key ops", tt.kt)
		}
	}
	for _, bad := range []string{"RSA-1024", "rsa-2048", "EC-P256K", ""} {
		if _, err := payload.ParseKeyType(bad); err == nil {
			t.Errorf("ParseKeyType(%q) succeeded", bad)
		}
	}
	if _, err := payload.KeyTypeOf("RSA-HSM", 1024, ""); err == nil {
		t.Error("KeyTypeOf(RSA-HSM, 1024) succeeded")
	}
	if got := payload.RSAStrength(2048); got != 112 || payload.RSAStrength(1024) != 0 {
		t.Errorf("RSAStrength(2048) = %d, RSAStrength(1024) = %d", got, payload.RSAStrength(1024))
	}
	got := payload.SortKeyTypes([]payload.KeyType{payload.AES256, payload.RSA2048, payload.AES256, payload.ECP384})
	if want := []payload.KeyType{payload.RSA2048, payload.ECP384, payload.AES256}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("SortKeyTypes() = %v, want %v", got, want)
	}
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k := must(ecdsa.GenerateKey(c, nil))
		kt, err := payload.KeyTypeOfPublic(k.Public())
		if err != nil || kt.Curve() != c.Params().Name {
			t.Errorf("KeyTypeOfPublic(%s) = %s, %v", c.Params().Name, kt, err)
		}
	}
	if _, err := payload.KeyTypeOfPublic(ed25519.NewKeyFromSeed(make([]byte, 32)).Public()); err == nil {
		t.Error("KeyTypeOfPublic(ed25519) succeeded")
	}
	if kt, err := payload.KeyTypeOfPublic(chaintest.RSAKey("target-rsa-3072").Public()); err != nil || kt != payload.RSA3072 {
		t.Errorf("KeyTypeOfPublic(rsa-3072) = %s, %v", kt, err)
	}
}

func TestPolicyLookups(t *testing.T) {
	ex := examples(t)
	p := fresh[payload.Policy](t, ex, bundle.KindPolicy)
	c := p.Custodians[1]
	if got, ok := p.Custodian(c.Key.ID()); !ok || got.Name != c.Name {
		t.Errorf("Custodian(%s) = %v, %v", c.Key.ID().Short(), got, ok)
	}
	if _, ok := p.Custodian(p.OfflineStation.ID()); ok {
		t.Error("the offline station is a custodian")
	}
	if v, ok := p.Vault(p.Vaults[0].URL); !ok || v != p.Vaults[0] {
		t.Errorf("Vault(%s) = %v, %v", p.Vaults[0].URL, v, ok)
	}
	if _, ok := p.Vault(strings.ToUpper(p.Vaults[0].URL)); ok {
		t.Error("Vault() matched a non-canonical URL")
	}
	if !p.AllowsKeyType(payload.ECP256) {
		t.Error("AllowsKeyType(EC-P256) = false")
	}
	p.KeyTypes = []payload.KeyType{payload.RSA2048}
	if p.AllowsKeyType(payload.ECP256) {
		t.Error("AllowsKeyType(EC-P256) = true for an RSA-2048 policy")
	}
}

func TestSortSignatures(t *testing.T) {
	s := []payload.Signature{{Custodian: bundle.ID{3}}, {Custodian: bundle.ID{1}}, {Custodian: bundle.ID{2}}}
	payload.SortSignatures(s)
	for i, want := range []byte{1, 2, 3} {
		if s[i].Custodian[0] != want {
			t.Fatalf("SortSignatures() = %v", s)
		}
	}
}

func TestPublicKey(t *testing.T) {
	ed := ed25519.NewKeyFromSeed(make([]byte, 32)).Public()
	k := pub(t, ed)
	if k.Alg != "ed25519" {
		t.Errorf("NewPublicKey(ed25519).Alg = %q", k.Alg)
	}
	if id, err := bundle.KeyID(ed); err != nil || k.ID() != id {
		t.Errorf("ID() = %s, want KeyID() = %s (%v)", k.ID().Short(), id.Short(), err)
	}
	if got, err := k.Parse(); err != nil || !ed.(ed25519.PublicKey).Equal(got) {
		t.Errorf("Parse() = %v, %v", got, err)
	}
	p384 := must(ecdsa.GenerateKey(elliptic.P384(), nil))
	if _, err := payload.NewPublicKey(p384.Public()); !errors.Is(err, bundle.ErrUnsupportedKey) {
		t.Errorf("NewPublicKey(p-384) = %v, want ErrUnsupportedKey", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestKeyPackageFile(t *testing.T) {
	ex := examples(t)
	k := fresh[payload.KeyPackage](t, ex, bundle.KindKeyPackage)
	f1, err := k.File()
	if err != nil {
		t.Fatal(err)
	}
	want, err := byok.Parse(k.BYOK)
	if err != nil {
		t.Fatal(err)
	}
	if f1.Header != want.Header || !bytes.Equal(f1.Ciphertext, want.Ciphertext) {
		t.Fatalf("File() = %+v, want the parsed .byok", f1.Header)
	}
	if f2, _ := k.File(); f2 != f1 {
		t.Error("File() parsed the .byok again although Decode had parsed it")
	}
	// A changed .byok is parsed again, never served from the cache.
	other, err := byok.New(k.KEK.KID, bytes.Repeat([]byte{9}, 3072/8+40), "other")
	if err != nil {
		t.Fatal(err)
	}
	k.BYOK = other.Marshal()
	if f3, err := k.File(); err != nil || f3.Generator != "other" {
		t.Errorf("File() after BYOK changed = %v, %v; want the new file", f3, err)
	}
	k.BYOK[10] = '!'
	if _, err := k.File(); err == nil {
		t.Error("File() of a corrupted .byok succeeded")
	}
	// A package that did not come from Decode parses on demand.
	var fresh payload.KeyPackage
	fresh.BYOK = want.Marshal()
	if f, err := fresh.File(); err != nil || f.Header != want.Header {
		t.Errorf("File() of a new package = %v, %v", f, err)
	}
}
