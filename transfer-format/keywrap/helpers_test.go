package keywrap_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Test KEKs live in testdata as PKCS#8 PEM: generating 4096-bit keys on every run is slow,
// and Go 1.26's rsa.GenerateKey ignores its random source, so keys cannot be derived from a
// seed. They are test fixtures and protect nothing.
var kekFiles = map[string]string{
	"2048":       "test-kek-2048.pem",
	"3072":       "test-kek-3072.pem",
	"4096":       "test-kek-4096.pem",
	"2048-other": "test-kek-2048-other.pem",
}

var (
	kekOnce sync.Once
	keks    map[string]*rsa.PrivateKey
	kekErr  error
)

// testKEK returns the fixed test RSA key named name (a key of kekFiles).
func testKEK(tb testing.TB, name string) *rsa.PrivateKey {
	tb.Helper()
	kekOnce.Do(func() {
		keks = make(map[string]*rsa.PrivateKey)
		for n, file := range kekFiles {
			k, err := loadRSAKey(filepath.Join("testdata", file))
			if err != nil {
				kekErr = err
				return
			}
			keks[n] = k
		}
	})
	if kekErr != nil {
		tb.Fatalf("load test keys: %v", kekErr)
	}
	k, ok := keks[name]
	if !ok {
		tb.Fatalf("no test key %q", name)
	}
	return k
}

func loadRSAKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, os.ErrInvalid
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	return k.(*rsa.PrivateKey), nil
}

// detRand returns a deterministic random stream for reproducible wraps.
func detRand(seed byte) *mathrand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return mathrand.NewChaCha8(s)
}

// pattern returns n bytes that differ from position to position.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// ecPKCS8 returns a fresh P-256 private key and its PKCS#8 encoding.
func ecPKCS8(tb testing.TB) (*ecdsa.PrivateKey, []byte) {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return k, der
}

// rsaPKCS8 returns the PKCS#8 encoding of a fixed 2048-bit RSA test key, standing in for a
// target key.
func rsaPKCS8(tb testing.TB) (*rsa.PrivateKey, []byte) {
	tb.Helper()
	k := testKEK(tb, "2048-other")
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return k, der
}

// flipBit returns a copy of b with bit i (counted from the first byte's high bit) inverted.
func flipBit(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i/8] ^= 0x80 >> (i % 8)
	return c
}
