package byok_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
)

func addSeeds(f *testing.F) {
	golden, err := os.ReadFile(goldenFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add([]byte(canonical()))
	f.Add([]byte(withMembers(mGenerator(testGen), mCiphertext(base64URLPadded(testCiphertext(testSize))), stdHeader(), mSchema("1.0.0"))))
	f.Add([]byte(withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), `"generator":"\u0041\n\"\\\ud83d\udd12"`)))
	f.Add([]byte("{\n \"schema_version\" : \"1.0.0\"\n}"))
	f.Add([]byte(`{"schema_version":"1.0.0","schema_version":"1.0.0"}`))
}

// FuzzParse checks that Parse never panics, returns nil with every error, accepts only what
// ParseLenient accepts, and accepts only canonical bytes: Marshal(Parse(x)) == x.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := byok.Parse(b)
		if err != nil {
			if file != nil {
				t.Fatal("Parse returned a file with an error")
			}
			return
		}
		if got := file.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("Marshal(Parse(x)) != x\n x = %q\ngot %q", b, got)
		}
		lenient, err := byok.ParseLenient(b)
		if err != nil {
			t.Fatalf("Parse accepts what ParseLenient rejects: %v", err)
		}
		if !equalFile(file, lenient) {
			t.Fatal("Parse and ParseLenient disagree")
		}
	})
}

// FuzzParseLenient checks that ParseLenient never panics and that whatever it accepts
// re-encodes to canonical bytes Parse accepts with the same content.
func FuzzParseLenient(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := byok.ParseLenient(b)
		if err != nil {
			if file != nil {
				t.Fatal("ParseLenient returned a file with an error")
			}
			return
		}
		c := file.Marshal()
		again, err := byok.Parse(c)
		if err != nil {
			t.Fatalf("Parse(Marshal(ParseLenient(x))): %v\n x = %q", err, b)
		}
		if !equalFile(file, again) {
			t.Fatalf("Parse(Marshal(ParseLenient(x))) != ParseLenient(x)\n x = %q", b)
		}
		if !bytes.Equal(again.Marshal(), c) {
			t.Fatal("Marshal is not stable")
		}
	})
}

// FuzzParseKeyID checks that ParseKeyID never panics and that String inverts it.
func FuzzParseKeyID(f *testing.F) {
	for _, s := range []string{testKID, goldenKID, "https://[::1]:8443/keys/k/v", "https://h:1/keys/../v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := byok.ParseKeyID(s)
		if err != nil {
			return
		}
		if k.String() != s {
			t.Fatalf("ParseKeyID(%q).String() = %q", s, k.String())
		}
	})
}
