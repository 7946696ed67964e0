package byok_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// The golden file wraps a fixed P-256 target for a fixed 2048-bit KEK with randomness from a
// ChaCha8 stream seeded with goldenSeed. The keys are test fixtures in testdata.
const (
	goldenFile = "testdata/golden.byok"
	goldenKID  = "https://contoso-byok.vault.azure.net/keys/contoso-kek/4b6f0d4dd1a64e5f9e2bb8f0c3b54a1e"
	goldenGen  = "airgap-byok golden test vector; software wrap"
	goldenSeed = "airgap-byok .byok golden seed 01" // 32 bytes
)

func readPKCS8(tb testing.TB, name string) (any, []byte) {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		tb.Fatalf("%s: no PRIVATE KEY block", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return k, block.Bytes
}

func goldenKeys(tb testing.TB) (kek *rsa.PrivateKey, target *ecdsa.PrivateKey, targetDER []byte) {
	tb.Helper()
	k, _ := readPKCS8(tb, "test-kek-2048.pem")
	t, der := readPKCS8(tb, "test-target-p256.pem")
	return k.(*rsa.PrivateKey), t.(*ecdsa.PrivateKey), der
}

// TestGolden rebuilds the golden file from its fixed inputs and compares bytes, then checks
// that the golden file parses and unwraps to the target.
func TestGolden(t *testing.T) {
	kek, target, targetDER := goldenKeys(t)
	ct, err := keywrap.WrapRSAAES(mathrand.NewChaCha8([32]byte([]byte(goldenSeed))), &kek.PublicKey, targetDER)
	if err != nil {
		t.Fatal(err)
	}
	f, err := byok.New(goldenKID, ct, goldenGen)
	if err != nil {
		t.Fatal(err)
	}
	built := f.Marshal()
	if *update {
		if err := os.WriteFile(goldenFile, built, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, golden) {
		t.Fatalf("rebuilt file differs from %s (run with -update if the change is intended):\n got %s\nwant %s", goldenFile, built, golden)
	}

	g, err := byok.Parse(golden)
	if err != nil {
		t.Fatalf("Parse(golden): %v", err)
	}
	if _, _, err := keywrap.SplitRSAAES(kek.Size(), g.Ciphertext); err != nil {
		t.Fatalf("golden ciphertext does not fit the KEK: %v", err)
	}
	got, err := keywrap.UnwrapRSAAES(kek, g.Ciphertext)
	if err != nil {
		t.Fatalf("UnwrapRSAAES(golden): %v", err)
	}
	if !bytes.Equal(got, targetDER) {
		t.Fatal("golden file does not unwrap to the target")
	}
	k, err := x509.ParsePKCS8PrivateKey(got)
	if err != nil {
		t.Fatal(err)
	}
	if !target.Equal(k) {
		t.Fatal("unwrapped target is a different key")
	}
}
