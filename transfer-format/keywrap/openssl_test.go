package keywrap_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
)

// requireOpenSSL skips the test when the openssl command is missing, unless CI is set, where
// the cross-check is mandatory.
func requireOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("openssl not found and CI is set: %v", err)
		}
		t.Skipf("openssl not found: %v", err)
	}
}

// runScript runs a POSIX shell script in dir with the given extra environment. It reports the
// script's output only on failure; the scripts print no key material.
func runScript(t *testing.T, dir, script string, env ...string) {
	t.Helper()
	cmd := exec.Command("sh", "-eu", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script failed: %v\n%s", err, out)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	writeFile(t, path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// unwrapScript is FIELD-NOTES.md's OpenSSL unwrap procedure, verbatim apart from quoting.
const unwrapScript = `
head -c $K wrapped > rsa.bin; tail -c +$((K+1)) wrapped > kwp.bin
openssl pkeyutl -decrypt -inkey kek.pem -in rsa.bin -out aes.key \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1
openssl enc -d -id-aes256-wrap-pad -K "$(od -An -tx1 -v aes.key | tr -d ' \n')" -iv A65959A6 \
  -in kwp.bin -out target.p8.der
openssl pkey -inform DER -in target.p8.der -pubout -outform DER -out target.pub.der
`

// wrapScript is the reverse: OpenSSL wraps target.p8.der for kek.pub.pem with the AES key in
// aes.key, RSA part first.
const wrapScript = `
openssl enc -id-aes256-wrap-pad -K "$(od -An -tx1 -v aes.key | tr -d ' \n')" -iv A65959A6 \
  -in target.p8.der -out kwp.bin
openssl pkeyutl -encrypt -pubin -inkey kek.pub.pem -in aes.key -out rsa.bin \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1
cat rsa.bin kwp.bin > wrapped
`

type targetKey struct {
	name string
	pub  crypto.PublicKey
	der  []byte // PKCS#8
}

func targetKeys(t *testing.T) []targetKey {
	ec, ecDER := ecPKCS8(t)
	r, rsaDER := rsaPKCS8(t)
	return []targetKey{
		{"EC P-256", ec.Public(), ecDER},
		{"RSA 2048", r.Public(), rsaDER},
	}
}

// TestOpenSSLUnwrapsRSAAES checks that OpenSSL's command line, following FIELD-NOTES.md,
// recovers what WrapRSAAES wrapped, and parses it as the same key.
func TestOpenSSLUnwrapsRSAAES(t *testing.T) {
	requireOpenSSL(t)
	for _, size := range []string{"2048", "4096"} {
		kek := testKEK(t, size)
		for _, tk := range targetKeys(t) {
			t.Run(size+"/"+tk.name, func(t *testing.T) {
				dir := t.TempDir()
				ct, err := keywrap.WrapRSAAES(rand.Reader, &kek.PublicKey, tk.der)
				if err != nil {
					t.Fatal(err)
				}
				kekDER, err := x509.MarshalPKCS8PrivateKey(kek)
				if err != nil {
					t.Fatal(err)
				}
				writePEM(t, filepath.Join(dir, "kek.pem"), "PRIVATE KEY", kekDER)
				writeFile(t, filepath.Join(dir, "wrapped"), ct)
				runScript(t, dir, unwrapScript, fmt.Sprintf("K=%d", kek.Size()))

				got, err := os.ReadFile(filepath.Join(dir, "target.p8.der"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tk.der) {
					t.Fatalf("OpenSSL recovered %d bytes that differ from the %d-byte target", len(got), len(tk.der))
				}
				gotPub, err := os.ReadFile(filepath.Join(dir, "target.pub.der"))
				if err != nil {
					t.Fatal(err)
				}
				wantPub, err := x509.MarshalPKIXPublicKey(tk.pub)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(gotPub, wantPub) {
					t.Error("OpenSSL derives a different public key from the recovered target")
				}
			})
		}
	}
}

// TestOpenSSLWrapsRSAAES checks that UnwrapRSAAES recovers what OpenSSL's command line wrapped.
func TestOpenSSLWrapsRSAAES(t *testing.T) {
	requireOpenSSL(t)
	for _, size := range []string{"2048", "3072"} {
		kek := testKEK(t, size)
		for _, tk := range targetKeys(t) {
			t.Run(size+"/"+tk.name, func(t *testing.T) {
				dir := t.TempDir()
				pubDER, err := x509.MarshalPKIXPublicKey(&kek.PublicKey)
				if err != nil {
					t.Fatal(err)
				}
				writePEM(t, filepath.Join(dir, "kek.pub.pem"), "PUBLIC KEY", pubDER)
				aesKey := make([]byte, 32)
				if _, err := rand.Read(aesKey); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, "aes.key"), aesKey)
				writeFile(t, filepath.Join(dir, "target.p8.der"), tk.der)
				runScript(t, dir, wrapScript)

				ct, err := os.ReadFile(filepath.Join(dir, "wrapped"))
				if err != nil {
					t.Fatal(err)
				}
				got, err := keywrap.UnwrapRSAAES(kek, ct)
				if err != nil {
					t.Fatalf("UnwrapRSAAES of OpenSSL's output: %v", err)
				}
				if !bytes.Equal(got, tk.der) {
					t.Fatal("UnwrapRSAAES of OpenSSL's output differs from the target")
				}
			})
		}
	}
}

// TestOpenSSLKWP compares WrapPad with OpenSSL's RFC 5649 implementation byte for byte, for
// every AES key size and lengths on both sides of the single-block case, in both directions.
func TestOpenSSLKWP(t *testing.T) {
	requireOpenSSL(t)
	if testing.Short() {
		t.Skip("runs openssl many times")
	}
	for _, keySize := range []int{16, 24, 32} {
		for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 121, 600} {
			t.Run(fmt.Sprintf("AES-%d/%d bytes", keySize*8, n), func(t *testing.T) {
				dir := t.TempDir()
				kek := make([]byte, keySize)
				if _, err := rand.Read(kek); err != nil {
					t.Fatal(err)
				}
				pt := make([]byte, n)
				if _, err := rand.Read(pt); err != nil {
					t.Fatal(err)
				}
				want, err := keywrap.WrapPad(kek, pt)
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, "pt"), pt)
				writeFile(t, filepath.Join(dir, "ct.go"), want)
				runScript(t, dir, `
openssl enc -id-aes${BITS}-wrap-pad -K "$KEY" -iv A65959A6 -in pt -out ct.openssl
openssl enc -d -id-aes${BITS}-wrap-pad -K "$KEY" -iv A65959A6 -in ct.go -out pt.openssl
`, fmt.Sprintf("BITS=%d", keySize*8), "KEY="+hex.EncodeToString(kek))
				got, err := os.ReadFile(filepath.Join(dir, "ct.openssl"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("OpenSSL wraps to %x, WrapPad to %x", got, want)
				}
				back, err := os.ReadFile(filepath.Join(dir, "pt.openssl"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(back, pt) {
					t.Error("OpenSSL does not unwrap WrapPad's output to the plaintext")
				}
			})
		}
	}
}
