package byok_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log"
	"os"

	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
)

// A .byok file round trip: wrap a target for a KEK, encode, parse, check the KEK identifier,
// and unwrap as the local Key Vault emulator does.
func Example() {
	pemBytes, err := os.ReadFile("testdata/test-kek-2048.pem")
	if err != nil {
		log.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		log.Fatal(err)
	}
	kek := key.(*rsa.PrivateKey)
	target := []byte("0123456789abcdef0123456789abcdef") // an AES-256 key (oct-HSM)

	ciphertext, err := keywrap.WrapRSAAES(rand.Reader, &kek.PublicKey, target)
	if err != nil {
		log.Fatal(err)
	}
	kid := "https://contoso-kv.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef"
	f, err := byok.New(kid, ciphertext, "example 1.0")
	if err != nil {
		log.Fatal(err)
	}
	file := f.Marshal()

	parsed, err := byok.Parse(file)
	if err != nil {
		log.Fatal(err)
	}
	id, err := byok.ParseKeyID(parsed.Header.KID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("vault:", id.Vault)
	fmt.Println("kek:", id.Name)
	got, err := keywrap.UnwrapRSAAES(kek, parsed.Ciphertext)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("target recovered:", bytes.Equal(got, target))
	// Output:
	// vault: https://contoso-kv.vault.azure.net
	// kek: kek
	// target recovered: true
}

func ExampleParseKeyID() {
	id, err := byok.ParseKeyID("https://contoso-kv.vault.azure.net/keys/kek-1/4b6f0d4dd1a64e5f9e2bb8f0c3b54a1e")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.Vault)
	fmt.Println(id.Name)
	fmt.Println(id.Version)

	_, err = byok.ParseKeyID("https://contoso-kv.vault.azure.net/keys/kek-1")
	fmt.Println(err)
	// Output:
	// https://contoso-kv.vault.azure.net
	// kek-1
	// 4b6f0d4dd1a64e5f9e2bb8f0c3b54a1e
	// byok: kid: invalid key identifier: key version missing
}

func ExampleParseLenient() {
	// Another tool's output: indented, members reordered, a trailing newline.
	in, err := os.ReadFile("testdata/golden.byok")
	if err != nil {
		log.Fatal(err)
	}
	f, err := byok.Parse(in)
	if err != nil {
		log.Fatal(err)
	}
	other := fmt.Sprintf("{\n  \"generator\": %q,\n  \"header\": {\"alg\": \"dir\", \"enc\": \"CKM_RSA_AES_KEY_WRAP\", \"kid\": %q},\n  \"schema_version\": \"1.0.0\",\n  \"ciphertext\": %q\n}\n",
		f.Generator, f.Header.KID, base64.URLEncoding.EncodeToString(f.Ciphertext))

	_, err = byok.Parse([]byte(other))
	fmt.Println("Parse:", err)
	g, err := byok.ParseLenient([]byte(other))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ParseLenient, re-encoded canonically:", bytes.Equal(g.Marshal(), in))
	// Output:
	// Parse: byok: not in canonical form: differs from the canonical encoding at byte 1
	// ParseLenient, re-encoded canonically: true
}
