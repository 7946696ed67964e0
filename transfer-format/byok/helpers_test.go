package byok_test

import (
	"encoding/base64"
	"strings"
)

const (
	testKID  = "https://contoso-kv.vault.azure.net/keys/kek-1/0123456789abcdef0123456789abcdef"
	testGen  = "airgap-byok test; SoftHSM 2.6.1"
	testSize = 280 // a 2048-bit RSA part and a 24-byte RFC 5649 part
)

// testCiphertext returns n bytes standing in for a CKM_RSA_AES_KEY_WRAP output.
func testCiphertext(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*29 + 1)
	}
	return b
}

var testB64 = base64.RawURLEncoding.EncodeToString(testCiphertext(testSize))

// JSON building blocks for test inputs. Each returns one member, `"name":value`.
func mSchema(v string) string     { return `"schema_version":` + q(v) }
func mCiphertext(v string) string { return `"ciphertext":` + q(v) }
func mGenerator(v string) string  { return `"generator":` + q(v) }
func mKID(v string) string        { return `"kid":` + q(v) }
func mAlg(v string) string        { return `"alg":` + q(v) }
func mEnc(v string) string        { return `"enc":` + q(v) }
func mHeader(members ...string) string {
	return `"header":` + obj(members...)
}

// q quotes s as a JSON string, escaping only '"' and '\\': test inputs spell other escapes
// out themselves.
func q(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func obj(members ...string) string { return "{" + strings.Join(members, ",") + "}" }

// canonical returns the canonical file with the test values.
func canonical() string {
	return obj(mSchema("1.0.0"), mHeader(mKID(testKID), mAlg("dir"), mEnc("CKM_RSA_AES_KEY_WRAP")),
		mCiphertext(testB64), mGenerator(testGen))
}

// withMembers returns the test file with the given top-level members (raw).
func withMembers(members ...string) string { return obj(members...) }

func stdHeader() string {
	return mHeader(mKID(testKID), mAlg("dir"), mEnc("CKM_RSA_AES_KEY_WRAP"))
}

func base64URLPadded(b []byte) string { return base64.URLEncoding.EncodeToString(b) }
