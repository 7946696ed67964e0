package byok_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
)

func wantFile(gen string) *byok.File {
	return &byok.File{
		SchemaVersion: "1.0.0",
		Header:        byok.Header{KID: testKID, Alg: "dir", Enc: "CKM_RSA_AES_KEY_WRAP"},
		Ciphertext:    testCiphertext(testSize),
		Generator:     gen,
	}
}

func equalFile(a, b *byok.File) bool {
	return a.SchemaVersion == b.SchemaVersion && a.Header == b.Header &&
		bytes.Equal(a.Ciphertext, b.Ciphertext) && a.Generator == b.Generator
}

func TestParseValid(t *testing.T) {
	padded := base64.URLEncoding.EncodeToString(testCiphertext(testSize))
	if !strings.HasSuffix(padded, "=") {
		t.Fatal("test ciphertext needs padding; change testSize")
	}
	indented := new(bytes.Buffer)
	if err := json.Indent(indented, []byte(canonical()), "", "  "); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		in        string
		generator string // of the parsed file
		canonical bool   // Parse accepts it as is
	}{
		{"canonical", canonical(), testGen, true},
		{"escaped quote and backslash", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), `"generator":"a\"b\\c"`), `a"b\c`, true},
		{"short escapes", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), `"generator":"\b\f\n\r\t"`), "\b\f\n\r\t", true},
		{"control escapes", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), `"generator":"\u0000\u001f"`), "\x00\x1f", true},
		{"html characters raw", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), mGenerator("<a&b>")), "<a&b>", true},
		{"non-ascii raw", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), mGenerator("Lüneburg \u2028 HSM \U0001F512 \x7f")), "Lüneburg \u2028 HSM \U0001F512 \x7f", true},
		{"empty generator", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), mGenerator("")), "", true},

		{"indented", indented.String(), testGen, false},
		{"trailing newline", canonical() + "\n", testGen, false},
		{"leading whitespace", " \t\r\n" + canonical(), testGen, false},
		{"members reordered", withMembers(mGenerator(testGen), mCiphertext(testB64), stdHeader(), mSchema("1.0.0")), testGen, false},
		{"header reordered", withMembers(mSchema("1.0.0"), mHeader(mEnc("CKM_RSA_AES_KEY_WRAP"), mKID(testKID), mAlg("dir")), mCiphertext(testB64), mGenerator(testGen)), testGen, false},
		{"padded base64url", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(padded), mGenerator(testGen)), testGen, false},
		{"escaped slashes in kid", withMembers(mSchema("1.0.0"), mHeader(`"kid":"`+strings.ReplaceAll(testKID, "/", `\/`)+`"`, mAlg("dir"), mEnc("CKM_RSA_AES_KEY_WRAP")), mCiphertext(testB64), mGenerator(testGen)), testGen, false},
		{"unicode escape for ascii", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), `"generator":"\u0041"`), "A", false},
		{"uppercase hex escape", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), `"generator":"\u001F"`), "\x1f", false},
		{"escaped newline as \\u000a", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), `"generator":"\u000a"`), "\n", false},
		{"escaped non-ascii", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), `"generator":"\u00fc"`), "ü", false},
		{"surrogate pair", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), `"generator":"\ud83d\udd12"`), "\U0001F512", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := wantFile(tt.generator)
			f, err := byok.ParseLenient([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseLenient: %v", err)
			}
			if !equalFile(f, want) {
				t.Fatalf("ParseLenient = %+v, want %+v", f, want)
			}
			f2, err := byok.Parse(f.Marshal())
			if err != nil {
				t.Fatalf("Parse(Marshal(ParseLenient(x))): %v", err)
			}
			if !equalFile(f2, want) {
				t.Fatal("Parse(Marshal(ParseLenient(x))) differs")
			}

			f, err = byok.Parse([]byte(tt.in))
			if !tt.canonical {
				if !errors.Is(err, byok.ErrNonCanonical) {
					t.Fatalf("Parse error = %v, want ErrNonCanonical", err)
				}
				var pe *byok.ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("Parse error %v is not a *ParseError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !equalFile(f, want) {
				t.Fatalf("Parse = %+v, want %+v", f, want)
			}
			if got := f.Marshal(); string(got) != tt.in {
				t.Fatalf("Marshal(Parse(x)) = %s, want %s", got, tt.in)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	hdr := func(kid string) string { return mHeader(mKID(kid), mAlg("dir"), mEnc("CKM_RSA_AES_KEY_WRAP")) }
	withKID := func(kid string) string {
		return withMembers(mSchema("1.0.0"), hdr(kid), mCiphertext(testB64), mGenerator(testGen))
	}
	withCT := func(ct string) string {
		return withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(ct), mGenerator(testGen))
	}
	b64 := func(n int) string { return base64.RawURLEncoding.EncodeToString(testCiphertext(n)) }
	tests := []struct {
		name      string
		in        string
		wantErr   error
		wantField string
	}{
		{"empty", "", byok.ErrSyntax, ""},
		{"not json", "schema_version=1.0.0", byok.ErrSyntax, ""},
		{"array", "[" + canonical() + "]", byok.ErrSyntax, ""},
		{"string", `"x"`, byok.ErrSyntax, ""},
		{"truncated", canonical()[:100], byok.ErrSyntax, "header.kid"},
		{"missing closing brace", strings.TrimSuffix(canonical(), "}"), byok.ErrSyntax, ""},
		{"two objects", canonical() + canonical(), byok.ErrSyntax, ""},
		{"trailing garbage", canonical() + "x", byok.ErrSyntax, ""},
		{"trailing comma", strings.TrimSuffix(canonical(), "}") + ",}", byok.ErrSyntax, ""},
		{"byte order mark", "\ufeff" + canonical(), byok.ErrSyntax, ""},
		{"invalid utf-8", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), mGenerator("a\xffb")), byok.ErrSyntax, ""},
		{"raw newline in string", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), "\"generator\":\"a\nb\""), byok.ErrSyntax, "generator"},
		{"number value", withMembers(`"schema_version":1`, stdHeader(), mCiphertext(testB64), mGenerator(testGen)), byok.ErrSyntax, "schema_version"},
		{"null value", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), `"generator":null`), byok.ErrSyntax, "generator"},
		{"header is a string", withMembers(mSchema("1.0.0"), `"header":"x"`, mCiphertext(testB64), mGenerator(testGen)), byok.ErrSyntax, "header"},
		{"kid is an object", withMembers(mSchema("1.0.0"), mHeader(`"kid":{}`, mAlg("dir"), mEnc("CKM_RSA_AES_KEY_WRAP")), mCiphertext(testB64), mGenerator(testGen)), byok.ErrSyntax, "header.kid"},
		{"ciphertext is an array", withMembers(mSchema("1.0.0"), stdHeader(), `"ciphertext":["AAAA"]`, mGenerator(testGen)), byok.ErrSyntax, "ciphertext"},

		{"missing schema_version", withMembers(stdHeader(), mCiphertext(testB64), mGenerator(testGen)), byok.ErrMissingMember, "schema_version"},
		{"missing header", withMembers(mSchema("1.0.0"), mCiphertext(testB64), mGenerator(testGen)), byok.ErrMissingMember, "header"},
		{"missing ciphertext", withMembers(mSchema("1.0.0"), stdHeader(), mGenerator(testGen)), byok.ErrMissingMember, "ciphertext"},
		{"missing generator", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64)), byok.ErrMissingMember, "generator"},
		{"missing kid", withMembers(mSchema("1.0.0"), mHeader(mAlg("dir"), mEnc("CKM_RSA_AES_KEY_WRAP")), mCiphertext(testB64), mGenerator(testGen)), byok.ErrMissingMember, "header.kid"},
		{"missing alg", withMembers(mSchema("1.0.0"), mHeader(mKID(testKID), mEnc("CKM_RSA_AES_KEY_WRAP")), mCiphertext(testB64), mGenerator(testGen)), byok.ErrMissingMember, "header.alg"},
		{"missing enc", withMembers(mSchema("1.0.0"), mHeader(mKID(testKID), mAlg("dir")), mCiphertext(testB64), mGenerator(testGen)), byok.ErrMissingMember, "header.enc"},
		{"empty object", "{}", byok.ErrMissingMember, "schema_version"},
		{"empty header", withMembers(mSchema("1.0.0"), mHeader(), mCiphertext(testB64), mGenerator(testGen)), byok.ErrMissingMember, "header.kid"},

		{"extra member", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), mGenerator(testGen), `"kty":"EC-HSM"`), byok.ErrUnknownMember, "kty"},
		{"extra header member", withMembers(mSchema("1.0.0"), mHeader(mKID(testKID), mAlg("dir"), mEnc("CKM_RSA_AES_KEY_WRAP"), `"cty":"x"`), mCiphertext(testB64), mGenerator(testGen)), byok.ErrUnknownMember, "header.cty"},
		{"member name in other case", withMembers(`"Schema_Version":"1.0.0"`, stdHeader(), mCiphertext(testB64), mGenerator(testGen)), byok.ErrUnknownMember, "Schema_Version"},
		{"header member at top level", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), mGenerator(testGen), mKID(testKID)), byok.ErrUnknownMember, "kid"},
		{"duplicate member", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), mGenerator(testGen), mGenerator("other")), byok.ErrDuplicateMember, "generator"},
		{"duplicate ciphertext", withMembers(mSchema("1.0.0"), stdHeader(), mCiphertext(testB64), mCiphertext(testB64), mGenerator(testGen)), byok.ErrDuplicateMember, "ciphertext"},
		{"duplicate header", withMembers(mSchema("1.0.0"), stdHeader(), stdHeader(), mCiphertext(testB64), mGenerator(testGen)), byok.ErrDuplicateMember, "header"},
		{"duplicate header member", withMembers(mSchema("1.0.0"), mHeader(mKID(testKID), mAlg("dir"), mEnc("CKM_RSA_AES_KEY_WRAP"), mKID(testKID)), mCiphertext(testB64), mGenerator(testGen)), byok.ErrDuplicateMember, "header.kid"},

		{"schema 2.0.0", withMembers(mSchema("2.0.0"), stdHeader(), mCiphertext(testB64), mGenerator(testGen)), byok.ErrUnsupported, "schema_version"},
		{"schema 1.0", withMembers(mSchema("1.0"), stdHeader(), mCiphertext(testB64), mGenerator(testGen)), byok.ErrUnsupported, "schema_version"},
		{"alg RSA-OAEP", withMembers(mSchema("1.0.0"), mHeader(mKID(testKID), mAlg("RSA-OAEP"), mEnc("CKM_RSA_AES_KEY_WRAP")), mCiphertext(testB64), mGenerator(testGen)), byok.ErrUnsupported, "header.alg"},
		{"alg in upper case", withMembers(mSchema("1.0.0"), mHeader(mKID(testKID), mAlg("DIR"), mEnc("CKM_RSA_AES_KEY_WRAP")), mCiphertext(testB64), mGenerator(testGen)), byok.ErrUnsupported, "header.alg"},
		{"enc A256KW", withMembers(mSchema("1.0.0"), mHeader(mKID(testKID), mAlg("dir"), mEnc("A256KW")), mCiphertext(testB64), mGenerator(testGen)), byok.ErrUnsupported, "header.enc"},

		{"unversioned kid", withKID("https://contoso-kv.vault.azure.net/keys/kek-1"), byok.ErrKeyID, "header.kid"},
		{"unversioned kid with slash", withKID("https://contoso-kv.vault.azure.net/keys/kek-1/"), byok.ErrKeyID, "header.kid"},
		{"http kid", withKID("http://contoso-kv.vault.azure.net/keys/kek-1/0123456789abcdef0123456789abcdef"), byok.ErrKeyID, "header.kid"},
		{"dot-dot in kid", withKID("https://contoso-kv.vault.azure.net/keys/../keys/kek-1/abc"), byok.ErrKeyID, "header.kid"},
		{"encoded dot in kid", withKID("https://contoso-kv.vault.azure.net/keys/%2e%2e/kek-1/abc"), byok.ErrKeyID, "header.kid"},
		{"double slash in kid", withKID("https://contoso-kv.vault.azure.net//keys/kek-1/abc"), byok.ErrKeyID, "header.kid"},
		{"extra segment in kid", withKID("https://contoso-kv.vault.azure.net/keys/kek-1/abc/def"), byok.ErrKeyID, "header.kid"},
		{"secrets kid", withKID("https://contoso-kv.vault.azure.net/secrets/kek-1/abc"), byok.ErrKeyID, "header.kid"},
		{"empty kid", withKID(""), byok.ErrKeyID, "header.kid"},

		{"ciphertext empty", withCT(""), byok.ErrCiphertext, "ciphertext"},
		{"ciphertext one block short", withCT(b64(byok.MinCiphertextSize - 8)), byok.ErrCiphertext, "ciphertext"},
		{"ciphertext not a multiple of 8", withCT(b64(testSize + 1)), byok.ErrCiphertext, "ciphertext"},
		{"ciphertext standard alphabet", withCT(strings.NewReplacer("-", "+", "_", "/").Replace(b64(testSize + 24))), byok.ErrCiphertext, "ciphertext"},
		{"ciphertext with escaped newline", withMembers(mSchema("1.0.0"), stdHeader(), `"ciphertext":"`+testB64[:64]+`\n`+testB64[64:]+`"`, mGenerator(testGen)), byok.ErrCiphertext, "ciphertext"},
		{"ciphertext with escaped carriage return", withMembers(mSchema("1.0.0"), stdHeader(), `"ciphertext":"`+testB64[:64]+`\r`+testB64[64:]+`"`, mGenerator(testGen)), byok.ErrCiphertext, "ciphertext"},
		{"ciphertext with space", withCT(testB64[:64] + " " + testB64[64:]), byok.ErrCiphertext, "ciphertext"},
		{"ciphertext wrongly padded", withCT(testB64 + "="), byok.ErrCiphertext, "ciphertext"},
		{"ciphertext padding in the middle", withCT(testB64[:4] + "==" + testB64[4:]), byok.ErrCiphertext, "ciphertext"},
		{"ciphertext non-canonical last char", withCT(testB64[:len(testB64)-1] + "B"), byok.ErrCiphertext, "ciphertext"},
		{"ciphertext impossible length", withCT(testB64 + "A"), byok.ErrCiphertext, "ciphertext"},

		{"over 64 KiB", canonical() + strings.Repeat(" ", byok.MaxFileSize), byok.ErrTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range []struct {
				name  string
				parse func([]byte) (*byok.File, error)
			}{{"Parse", byok.Parse}, {"ParseLenient", byok.ParseLenient}} {
				f, err := p.parse([]byte(tt.in))
				if f != nil {
					t.Errorf("%s returned a file with error %v", p.name, err)
				}
				var pe *byok.ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("%s error = %v, want a *ParseError", p.name, err)
				}
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("%s error = %v, want %v", p.name, err, tt.wantErr)
				}
				if pe.Field != tt.wantField {
					t.Errorf("%s error field = %q, want %q (error %v)", p.name, pe.Field, tt.wantField, err)
				}
			}
		})
	}
}

// TestParseSizeLimit checks that the limit is on the input, exactly at MaxFileSize.
func TestParseSizeLimit(t *testing.T) {
	c := canonical()
	atLimit := c[:len(c)-1] + strings.Repeat(" ", byok.MaxFileSize-len(c)) + "}"
	if len(atLimit) != byok.MaxFileSize {
		t.Fatalf("test input is %d bytes", len(atLimit))
	}
	if _, err := byok.ParseLenient([]byte(atLimit)); err != nil {
		t.Errorf("ParseLenient of %d bytes: %v", len(atLimit), err)
	}
	over := atLimit[:len(atLimit)-1] + " }"
	if _, err := byok.ParseLenient([]byte(over)); !errors.Is(err, byok.ErrTooLarge) {
		t.Errorf("ParseLenient of %d bytes: error = %v, want ErrTooLarge", len(over), err)
	}
}

// TestMarshalIsJSON checks Marshal's output with an independent decoder (encoding/json) and
// the member order the specification shows.
func TestMarshalIsJSON(t *testing.T) {
	gens := []string{testGen, "", `q"b\`, "\x00\x01\x1f\x7f", "\b\f\n\r\t", "<>&'", "ü\u2028\u2029\U0001F512", "\ufffd"}
	for _, gen := range gens {
		f, err := byok.New(testKID, testCiphertext(testSize), gen)
		if err != nil {
			t.Fatalf("New(generator %q): %v", gen, err)
		}
		b := f.Marshal()
		var v struct {
			SchemaVersion string `json:"schema_version"`
			Header        struct {
				KID string `json:"kid"`
				Alg string `json:"alg"`
				Enc string `json:"enc"`
			} `json:"header"`
			Ciphertext string `json:"ciphertext"`
			Generator  string `json:"generator"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("generator %q: encoding/json rejects Marshal's output: %v", gen, err)
		}
		if v.SchemaVersion != "1.0.0" || v.Header.KID != testKID || v.Header.Alg != "dir" ||
			v.Header.Enc != "CKM_RSA_AES_KEY_WRAP" || v.Ciphertext != testB64 || v.Generator != gen {
			t.Errorf("generator %q: encoding/json decodes Marshal's output to %+v", gen, v)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(compact.Bytes(), b) {
			t.Errorf("generator %q: Marshal's output has insignificant whitespace", gen)
		}
		prefix := `{"schema_version":"1.0.0","header":{"kid":"` + testKID + `","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":"` + testB64 + `","generator":"`
		if !bytes.HasPrefix(b, []byte(prefix)) || !bytes.HasSuffix(b, []byte(`"}`)) {
			t.Errorf("generator %q: Marshal = %s, want members in the specification's order", gen, b)
		}
	}
}

func TestMarshalReplacesInvalidUTF8(t *testing.T) {
	f := wantFile("a\xffb")
	g, err := byok.Parse(f.Marshal())
	if err != nil {
		t.Fatalf("Parse(Marshal()) of a generator with invalid UTF-8: %v", err)
	}
	if g.Generator != "a\ufffdb" {
		t.Errorf("Generator = %q, want %q", g.Generator, "a\ufffdb")
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name       string
		kid        string
		ciphertext []byte
		generator  string
		wantErr    error
	}{
		{"2048-bit KEK", testKID, testCiphertext(256 + 16), testGen, nil},
		{"4096-bit KEK", testKID, testCiphertext(512 + 2000), testGen, nil},
		{"unversioned kid", "https://contoso-kv.vault.azure.net/keys/kek-1", testCiphertext(testSize), testGen, byok.ErrKeyID},
		{"short ciphertext", testKID, testCiphertext(byok.MinCiphertextSize - 8), testGen, byok.ErrCiphertext},
		{"nil ciphertext", testKID, nil, testGen, byok.ErrCiphertext},
		{"ciphertext not a multiple of 8", testKID, testCiphertext(testSize + 4), testGen, byok.ErrCiphertext},
		{"generator not utf-8", testKID, testCiphertext(testSize), "\xc3", byok.ErrGenerator},
		{"encodes over 64 KiB", testKID, testCiphertext(48 << 10), testGen, byok.ErrTooLarge},
		{"generator over 64 KiB", testKID, testCiphertext(testSize), strings.Repeat("g", byok.MaxFileSize), byok.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := byok.New(tt.kid, tt.ciphertext, tt.generator)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if f != nil {
					t.Error("New returned a file with an error")
				}
				return
			}
			if f.SchemaVersion != byok.SchemaVersion || f.Header != (byok.Header{KID: tt.kid, Alg: byok.Alg, Enc: byok.Enc}) || f.Generator != tt.generator {
				t.Errorf("New = %+v", f)
			}
			if !bytes.Equal(f.Ciphertext, tt.ciphertext) {
				t.Error("New changed the ciphertext")
			}
			tt.ciphertext[0] ^= 1
			if bytes.Equal(f.Ciphertext, tt.ciphertext) {
				t.Error("New does not copy the ciphertext")
			}
			g, err := byok.Parse(f.Marshal())
			if err != nil {
				t.Fatalf("Parse(New().Marshal()): %v", err)
			}
			if !equalFile(f, g) {
				t.Error("Parse(New().Marshal()) differs")
			}
		})
	}
}
