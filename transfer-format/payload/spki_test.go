package payload_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"math/big"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// derLen returns the DER length octets of n.
func derLen(n int) []byte {
	switch {
	case n < 0x80:
		return []byte{byte(n)}
	case n < 0x100:
		return []byte{0x81, byte(n)}
	}
	return []byte{0x82, byte(n >> 8), byte(n)}
}

func tlv(tag byte, content ...[]byte) []byte {
	c := bytes.Join(content, nil)
	return append(append([]byte{tag}, derLen(len(c))...), c...)
}

// Only the canonical DER encoding of a key is a key of the format (SPEC.md §5.1, §7):
// encodings Go's parser takes but would not write are refused, so that a verifier written
// with another parser reaches the same verdict.
func TestParseSPKICanonicalOnly(t *testing.T) {
	p256 := must(ecdsa.GenerateKey(elliptic.P256(), nil))
	rsaKey := must(rsa.GenerateKey(rand.Reader, 2048))
	ed := ed25519.NewKeyFromSeed(make([]byte, 32)).Public()
	ecDER := must(x509.MarshalPKIXPublicKey(p256.Public()))
	rsaDER := must(x509.MarshalPKIXPublicKey(rsaKey.Public()))
	edDER := must(x509.MarshalPKIXPublicKey(ed))
	for name, der := range map[string][]byte{"p256": ecDER, "rsa": rsaDER, "ed25519": edDER} {
		if _, err := payload.ParseSPKI(der); err != nil {
			t.Errorf("%s: ParseSPKI(canonical) = %v", name, err)
		}
	}
	// The outer SEQUENCE with one more element: Go's parser skips it.
	inner := ecDER[2:]
	extra := tlv(0x30, inner, []byte{0x05, 0x00})
	// The RSAPublicKey followed by junk inside the BIT STRING: Go's parser ignores it.
	rsaPub := tlv(0x30, tlv(0x02, append([]byte{0}, rsaKey.N.Bytes()...)), tlv(0x02, big.NewInt(int64(rsaKey.E)).Bytes()))
	algRSA := []byte{0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00}
	junk := tlv(0x30, algRSA, tlv(0x03, []byte{0}, rsaPub, []byte{0x05, 0x00}))
	if _, err := x509.ParsePKIXPublicKey(extra); err != nil {
		t.Fatalf("the test's premise: Go parses the outer extra element: %v", err)
	}
	if _, err := x509.ParsePKIXPublicKey(junk); err != nil {
		t.Fatalf("the test's premise: Go parses the RSA junk: %v", err)
	}
	// A compressed point, which Go refuses and OpenSSL takes.
	comp := elliptic.MarshalCompressed(elliptic.P256(), p256.X, p256.Y)
	compressed := tlv(0x30, ecDER[2:23], tlv(0x03, []byte{0}, comp))
	p224 := must(x509.MarshalPKIXPublicKey(must(ecdsa.GenerateKey(elliptic.P224(), nil)).Public()))
	for name, der := range map[string][]byte{"outer extra element": extra, "rsa junk": junk, "compressed point": compressed, "p-224": p224, "empty": nil} {
		if _, err := payload.ParseSPKI(der); err == nil {
			t.Errorf("%s: ParseSPKI accepted % x", name, der)
		}
	}
	// A station or custodian key must be canonical too.
	if err := (payload.PublicKey{Alg: "ecdsa-p256", SPKI: extra}).Validate(); err == nil {
		t.Errorf("PublicKey.Validate accepted a non-canonical SPKI")
	}
}

// The grammar of a vault URL in a payload is that of a key identifier's vault, in lower case
// (SPEC.md §7); CanonicalVaultURL, which operators' input goes through, agrees with it.
func TestVaultURLGrammar(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://contoso.vault.azure.net", true},
		{"https://contoso.vault.azure.net:8443", true},
		{"https://[2001:db8::1]:8443", true},
		{"https://10.0.0.1", true},
		{"https://Contoso.vault.azure.net", false},
		{"https://contoso.vault.azure.net/", false},
		{"https://contoso.vault.azure.net.", false},
		{"https://contoso_byok.vault.azure.net", false},
		{"https://contoso.vault.azure.net:08443", false},
		{"https://contoso.vault.azure.net:", false},
		{"https://[2001:DB8::1]", false},
		{"https://[2001:db8:0:0:0:0:0:1]", false},
		{"https://a%2eb", false},
		{"https://u@contoso.vault.azure.net", false},
		{"https://-contoso.vault.azure.net", false},
		{"https://" + string(bytes.Repeat([]byte("a."), 126)) + "ab", false}, // 254 bytes
		{"http://contoso.vault.azure.net", false},
	} {
		err := payload.CheckVaultURL(tt.url)
		if gotOK := err == nil; gotOK != tt.ok {
			t.Errorf("vault URL %q: error %v, want accepted %v", tt.url, err, tt.ok)
		}
		c, cerr := payload.CanonicalVaultURL(tt.url)
		if (cerr == nil && c == tt.url) != tt.ok {
			t.Errorf("CanonicalVaultURL(%q) = %q, %v: disagrees with the grammar (%v)", tt.url, c, cerr, tt.ok)
		}
	}
}
