package kvemu

import (
	"bytes"
	"encoding/hex"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestSecp256k1PublicKey(t *testing.T) {
	nMinus1 := new(big.Int).Sub(k1N, big.NewInt(1)).FillBytes(make([]byte, 32))
	negGy := new(big.Int).Sub(k1P, k1Gy).FillBytes(make([]byte, 32))
	tests := []struct {
		name   string
		d      []byte
		wx, wy string
	}{
		{"1·G", scalar(1), "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
			"483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"},
		{"2·G", scalar(2), "c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5",
			"1ae168fea63dc339a3c58419466ceaeef7f632653266d0e1236431a950cfe52a"},
		{"3·G", scalar(3), "f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9",
			"388f7b0f632de8140fe337e62a37f3566500a99934c2231b6cb9fd7584b8e672"},
		{"(n-1)·G = -G", nMinus1, "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", hex.EncodeToString(negGy)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, y, err := k1PublicKey(tt.d)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(x) != tt.wx || hex.EncodeToString(y) != tt.wy {
				t.Errorf("k1PublicKey = (%x, %x), want (%s, %s)", x, y, tt.wx, tt.wy)
			}
			if !k1OnCurve(new(big.Int).SetBytes(x), new(big.Int).SetBytes(y)) {
				t.Errorf("point not on the curve")
			}
		})
	}
	for _, bad := range [][]byte{scalar(0), k1N.FillBytes(make([]byte, 32)), make([]byte, 31)} {
		if _, _, err := k1PublicKey(bad); err == nil {
			t.Errorf("k1PublicKey(%x) succeeded, want an error", bad)
		}
	}
}

func scalar(n int64) []byte { return big.NewInt(n).FillBytes(make([]byte, 32)) }

// TestSecp256k1MatchesOpenSSL parses OpenSSL-made secp256k1 PKCS#8 keys and compares the
// derived public key with OpenSSL's.
func TestSecp256k1MatchesOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is required in CI")
		}
		t.Skip("openssl not installed")
	}
	run := func(dir string, args ...string) []byte {
		cmd := exec.Command(openssl, args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl %v: %v", args, err)
		}
		return out
	}
	for range 5 {
		dir := t.TempDir()
		run(dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1", "-out", "k.pem")
		der := run(dir, "pkcs8", "-topk8", "-nocrypt", "-in", "k.pem", "-outform", "DER")
		spki := run(dir, "pkey", "-in", filepath.Join(dir, "k.pem"), "-pubout", "-outform", "DER")
		key, err := parsePKCS8(der)
		if err != nil {
			t.Fatalf("parsePKCS8: %v", err)
		}
		k, ok := key.(*secp256k1Key)
		if !ok {
			t.Fatalf("parsePKCS8 = %T, want *secp256k1Key", key)
		}
		want := spki[len(spki)-64:]
		if !bytes.Equal(append(bytes.Clone(k.x), k.y...), want) {
			t.Errorf("public key = %x%x, want %x", k.x, k.y, want)
		}
		// A PKCS#8 whose embedded public key disagrees with the scalar is refused.
		bad := bytes.Clone(der)
		bad[len(bad)-1] ^= 1
		if _, err := parsePKCS8(bad); err == nil {
			t.Errorf("parsePKCS8 accepted a mismatched public key")
		}
	}
}
