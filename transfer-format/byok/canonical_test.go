package byok

import (
	"bytes"
	"encoding/base64"
	"os"
	"strings"
	"testing"
)

// canonicalFixture returns the golden file and a variant with a generator that needs escapes.
func canonicalFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.byok")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameFile(a, b *File) bool {
	return a.SchemaVersion == b.SchemaVersion && a.Header == b.Header && bytes.Equal(a.Ciphertext, b.Ciphertext) && a.Generator == b.Generator
}

// The fast path must serve the files this project writes, or the replay loses its speed
// without any test failing.
func TestParseCanonicalTakesFilesThisProjectWrites(t *testing.T) {
	golden := canonicalFixture(t)
	f, err := New("https://v.vault.azure.net:8443/keys/kek-1/0123abc", bytes.Repeat([]byte{7}, 384+1784), "airgap-byok devel; SoftHSM project SoftHSM firmware 2.6 (Implementation of PKCS11 2.6)")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"golden": golden, "new": f.Marshal()} {
		t.Run(name, func(t *testing.T) {
			fast := parseCanonical(b)
			if fast == nil {
				t.Fatal("parseCanonical() = nil for a canonical file")
			}
			slow, err := ParseLenient(b)
			if err != nil {
				t.Fatal(err)
			}
			if !sameFile(fast, slow) {
				t.Error("parseCanonical() and ParseLenient() disagree")
			}
			if got := fast.Marshal(); !bytes.Equal(got, b) {
				t.Errorf("Marshal(parseCanonical(x)) != x")
			}
		})
	}
}

// Anything unusual goes to the general parser, which gives the reason (or accepts it: the
// fast path does not take escaped strings).
func TestParseCanonicalDeclines(t *testing.T) {
	golden := string(canonicalFixture(t))
	ct := golden[strings.Index(golden, `"ciphertext":"`)+len(`"ciphertext":"`):]
	ct = ct[:strings.IndexByte(ct, '"')]
	raw, err := base64.RawURLEncoding.DecodeString(ct)
	if err != nil {
		t.Fatal(err)
	}
	// A ciphertext whose length leaves spare bits in the last character, with one set.
	odd := base64.RawURLEncoding.EncodeToString(raw[:len(raw)-5])
	oddSpare := odd[:len(odd)-1] + string(odd[len(odd)-1]+1)
	tests := []struct {
		name   string
		in     string
		parses bool // Parse still accepts it, through the general parser
	}{
		{"escaped generator", strings.Replace(golden, `"generator":"`, `"generator":"a\"b`, 1), true},
		{"non-ascii generator", strings.Replace(golden, `"generator":"`, `"generator":"Lüneburg `, 1), true},
		{"trailing newline", golden + "\n", false},
		{"whitespace", strings.Replace(golden, `"header":{`, `"header": {`, 1), false},
		{"padded ciphertext", strings.Replace(golden, ct, base64.URLEncoding.EncodeToString(raw[:len(raw)-8]), 1), false},
		{"spare bits set", strings.Replace(golden, ct, oddSpare, 1), false},
		{"raw newline in ciphertext", strings.Replace(golden, ct, ct[:40]+"\n"+ct[40:], 1), false},
		{"raw carriage return in ciphertext", strings.Replace(golden, ct, ct[:40]+"\r"+ct[40:], 1), false},
		{"short ciphertext", strings.Replace(golden, ct, ct[:40], 1), false},
		{"not a multiple of 8", strings.Replace(golden, ct, odd, 1), false},
		{"bad kid", strings.Replace(golden, "/keys/", "/secrets/", 1), false},
		{"other alg", strings.Replace(golden, `"alg":"dir"`, `"alg":"RSA-OAEP"`, 1), false},
		{"truncated", golden[:len(golden)-1], false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if f := parseCanonical([]byte(tt.in)); f != nil {
				t.Fatalf("parseCanonical() accepted it")
			}
			if _, err := Parse([]byte(tt.in)); (err == nil) != tt.parses {
				t.Errorf("Parse() = %v, want success %v", err, tt.parses)
			}
		})
	}
}

// FuzzParseCanonical checks that the fast path accepts only what the general parser accepts,
// with the same content, and only canonical bytes.
func FuzzParseCanonical(f *testing.F) {
	f.Add(canonicalFixture(f))
	f.Add([]byte(canonPrefix + "https://a.b/keys/c/d" + canonAfterKID + strings.Repeat("A", 363) + "Q" + canonAfterCiph + "g" + canonSuffix))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast := parseCanonical(b)
		if fast == nil {
			return
		}
		slow, err := ParseLenient(b)
		if err != nil {
			t.Fatalf("parseCanonical accepts what ParseLenient refuses: %v", err)
		}
		if !sameFile(fast, slow) {
			t.Fatal("parseCanonical and ParseLenient disagree")
		}
		if !bytes.Equal(fast.Marshal(), b) {
			t.Fatal("Marshal(parseCanonical(x)) != x")
		}
	})
}

func BenchmarkParse(b *testing.B) {
	golden := canonicalFixture(b)
	b.Run("canonical", func(b *testing.B) {
		for b.Loop() {
			if _, err := Parse(golden); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lenient", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseLenient(golden); err != nil {
				b.Fatal(err)
			}
		}
	})
}
