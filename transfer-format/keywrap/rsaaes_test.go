package keywrap_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
)

// TestRSAAESRoundTrip wraps targets for each KEK size Azure accepts, then checks the layout
// step by step with crypto/rsa and UnwrapPad directly, and finally with UnwrapRSAAES.
func TestRSAAESRoundTrip(t *testing.T) {
	_, ecDER := ecPKCS8(t)
	_, rsaDER := rsaPKCS8(t)
	targets := map[string][]byte{
		"AES-128 key": pattern(16),
		"AES-256 key": pattern(32),
		"EC PKCS#8":   ecDER,
		"RSA PKCS#8":  rsaDER,
		"1 byte":      {0x42},
	}
	for _, size := range []string{"2048", "3072", "4096"} {
		kek := testKEK(t, size)
		for name, target := range targets {
			t.Run(size+"/"+name, func(t *testing.T) {
				ct, err := keywrap.WrapRSAAES(rand.Reader, &kek.PublicKey, target)
				if err != nil {
					t.Fatalf("WrapRSAAES: %v", err)
				}
				k := kek.Size()
				if want := k + (len(target)+7)/8*8 + 8; len(ct) != want {
					t.Fatalf("len(WrapRSAAES) = %d, want %d", len(ct), want)
				}
				rsaPart, kwpPart, err := keywrap.SplitRSAAES(k, ct)
				if err != nil {
					t.Fatalf("SplitRSAAES: %v", err)
				}
				aesKey, err := rsa.DecryptOAEP(sha1.New(), nil, kek, rsaPart, nil)
				if err != nil {
					t.Fatalf("RSA part is not RSA-OAEP SHA-1 with an empty label: %v", err)
				}
				if len(aesKey) != 32 {
					t.Fatalf("RSA part carries a %d-byte key, want AES-256", len(aesKey))
				}
				got, err := keywrap.UnwrapPad(aesKey, kwpPart)
				if err != nil {
					t.Fatalf("RFC 5649 part: UnwrapPad: %v", err)
				}
				if !bytes.Equal(got, target) {
					t.Fatal("RFC 5649 part does not hold the target")
				}
				got, err = keywrap.UnwrapRSAAES(kek, ct)
				if err != nil {
					t.Fatalf("UnwrapRSAAES: %v", err)
				}
				if !bytes.Equal(got, target) {
					t.Fatal("UnwrapRSAAES(WrapRSAAES(x)) != x")
				}
			})
		}
	}
}

// TestWrapRSAAESRandomness checks that the AES key and OAEP seed come from rand: the same
// stream gives the same bytes, and different streams give different AES keys.
func TestWrapRSAAESRandomness(t *testing.T) {
	kek := testKEK(t, "2048")
	target := pattern(48)
	a, err := keywrap.WrapRSAAES(detRand(1), &kek.PublicKey, target)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keywrap.WrapRSAAES(detRand(1), &kek.PublicKey, target)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("WrapRSAAES differs for the same random stream")
	}
	c, err := keywrap.WrapRSAAES(detRand(2), &kek.PublicKey, target)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[kek.Size():], c[kek.Size():]) {
		t.Error("RFC 5649 parts are equal for different random streams: the AES key is not random")
	}
	// The first 32 bytes of the stream are the AES key.
	aesKey := make([]byte, 32)
	if _, err := io.ReadFull(detRand(1), aesKey); err != nil {
		t.Fatal(err)
	}
	want, err := keywrap.WrapPad(aesKey, target)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a[kek.Size():], want) {
		t.Error("RFC 5649 part is not wrapped with the first 32 random bytes")
	}
}

type failingReader struct{}

var errNoEntropy = errors.New("no entropy")

func (failingReader) Read([]byte) (int, error) { return 0, errNoEntropy }

func TestWrapRSAAESErrors(t *testing.T) {
	kek := testKEK(t, "2048")
	tests := []struct {
		name    string
		rand    io.Reader
		kek     *rsa.PublicKey
		target  []byte
		wantErr error
	}{
		{"nil key", rand.Reader, nil, []byte{1}, keywrap.ErrRSAKey},
		{"key without modulus", rand.Reader, &rsa.PublicKey{E: 65537}, []byte{1}, keywrap.ErrRSAKey},
		{"empty target", rand.Reader, &kek.PublicKey, nil, keywrap.ErrLength},
		{"failing random source", failingReader{}, &kek.PublicKey, []byte{1}, errNoEntropy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keywrap.WrapRSAAES(tt.rand, tt.kek, tt.target)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("WrapRSAAES error = %v, want %v", err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("WrapRSAAES returned %d bytes with an error", len(got))
			}
		})
	}
}

// TestUnwrapRSAAESTampered checks bit flips in each part, truncation and extension by whole
// blocks, swapped parts and wrong keys: all must give exactly ErrUnwrap.
func TestUnwrapRSAAESTampered(t *testing.T) {
	kek := testKEK(t, "2048")
	_, target := ecPKCS8(t)
	ct, err := keywrap.WrapRSAAES(rand.Reader, &kek.PublicKey, target)
	if err != nil {
		t.Fatal(err)
	}
	k := kek.Size()
	other, err := keywrap.WrapRSAAES(rand.Reader, &kek.PublicKey, target)
	if err != nil {
		t.Fatal(err)
	}
	// An RSA part holding an AES-128 key, with a valid RFC 5649 part under that key.
	shortKey := pattern(16)
	shortRSA, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, &kek.PublicKey, shortKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	shortKWP, err := keywrap.WrapPad(shortKey, target)
	if err != nil {
		t.Fatal(err)
	}
	// An RSA part made with SHA-256 OAEP instead of SHA-1.
	aesKey := pattern(32)
	sha256RSA, err := rsa.EncryptOAEPWithOptions(rand.Reader, &kek.PublicKey, aesKey, &rsa.OAEPOptions{Hash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	sha256KWP, err := keywrap.WrapPad(aesKey, target)
	if err != nil {
		t.Fatal(err)
	}

	cases := map[string][]byte{
		"truncated by a block":               ct[:len(ct)-8],
		"extended by a block":                append(append([]byte(nil), ct...), ct[k:k+8]...),
		"RFC 5649 part of another wrap":      append(append([]byte(nil), ct[:k]...), other[k:]...),
		"RSA part holds an AES-128 key":      append(shortRSA, shortKWP...),
		"RSA part uses OAEP SHA-256":         append(sha256RSA, sha256KWP...),
		"RSA part all zero":                  append(make([]byte, k), ct[k:]...),
		"RSA part all ones (not below N)":    append(bytes.Repeat([]byte{0xff}, k), ct[k:]...),
		"RFC 5649 part from the wrong place": append(append([]byte(nil), ct[:k]...), append(ct[k+8:], ct[k:k+8]...)...),
	}
	for _, bit := range []int{0, 7, 8, 1000, k*8 - 1} {
		cases[fmt.Sprintf("RSA part bit %d flipped", bit)] = flipBit(ct, bit)
	}
	for i := k * 8; i < len(ct)*8; i += 13 {
		cases[fmt.Sprintf("RFC 5649 part bit %d flipped", i)] = flipBit(ct, i)
	}
	cases["last bit flipped"] = flipBit(ct, len(ct)*8-1)
	for name, c := range cases {
		got, err := keywrap.UnwrapRSAAES(kek, c)
		if err != keywrap.ErrUnwrap {
			t.Errorf("%s: UnwrapRSAAES error = %v, want exactly ErrUnwrap", name, err)
		}
		if got != nil {
			t.Errorf("%s: UnwrapRSAAES returned %d bytes with an error", name, len(got))
		}
	}
	if _, err := keywrap.UnwrapRSAAES(testKEK(t, "2048-other"), ct); err != keywrap.ErrUnwrap {
		t.Errorf("wrong key of the same size: UnwrapRSAAES error = %v, want exactly ErrUnwrap", err)
	}
	// A 3072-bit key splits this ciphertext 128 bytes later; the rest is still a valid length.
	if _, err := keywrap.UnwrapRSAAES(testKEK(t, "3072"), ct); err != keywrap.ErrUnwrap {
		t.Errorf("wrong key of another size: UnwrapRSAAES error = %v, want exactly ErrUnwrap", err)
	}
}

func TestUnwrapRSAAESArgumentErrors(t *testing.T) {
	kek := testKEK(t, "2048")
	ct, err := keywrap.WrapRSAAES(rand.Reader, &kek.PublicKey, pattern(40))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		kek        *rsa.PrivateKey
		ciphertext []byte
		wantErr    error
	}{
		{"nil key", nil, ct, keywrap.ErrRSAKey},
		{"key without modulus", &rsa.PrivateKey{}, ct, keywrap.ErrRSAKey},
		{"empty", kek, nil, keywrap.ErrLength},
		{"RSA part only", kek, ct[:256], keywrap.ErrLength},
		{"RSA part and one block", kek, ct[:264], keywrap.ErrLength},
		{"truncated by one byte", kek, ct[:len(ct)-1], keywrap.ErrLength},
		{"truncated by seven bytes", kek, ct[:len(ct)-7], keywrap.ErrLength},
		{"one byte appended", kek, append(append([]byte(nil), ct...), 0), keywrap.ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keywrap.UnwrapRSAAES(tt.kek, tt.ciphertext)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("UnwrapRSAAES error = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, keywrap.ErrUnwrap) {
				t.Errorf("UnwrapRSAAES error %v is ErrUnwrap for a bad argument", err)
			}
			if got != nil {
				t.Errorf("UnwrapRSAAES returned %d bytes with an error", len(got))
			}
		})
	}
}

func TestSplitRSAAES(t *testing.T) {
	ct := pattern(256 + 40)
	tests := []struct {
		name         string
		modulusBytes int
		ciphertext   []byte
		wantRSA      int
		wantErr      error
	}{
		{"2048-bit", 256, ct, 256, nil},
		{"minimum", 256, ct[:256+16], 256, nil},
		{"another split", 264, ct, 264, nil},
		{"zero modulus", 0, ct, 0, keywrap.ErrLength},
		{"negative modulus", -8, ct, 0, keywrap.ErrLength},
		{"RFC 5649 part one block", 256, ct[:264], 0, keywrap.ErrLength},
		{"RFC 5649 part not a multiple of 8", 256, ct[:256+17], 0, keywrap.ErrLength},
		{"shorter than the modulus", 512, ct, 0, keywrap.ErrLength},
		{"empty", 256, nil, 0, keywrap.ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rsaPart, kwpPart, err := keywrap.SplitRSAAES(tt.modulusBytes, tt.ciphertext)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SplitRSAAES error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if rsaPart != nil || kwpPart != nil {
					t.Error("SplitRSAAES returned parts with an error")
				}
				return
			}
			if len(rsaPart) != tt.wantRSA {
				t.Errorf("len(rsaPart) = %d, want %d", len(rsaPart), tt.wantRSA)
			}
			if !bytes.Equal(append(append([]byte(nil), rsaPart...), kwpPart...), tt.ciphertext) {
				t.Error("rsaPart || kwpPart != ciphertext")
			}
			// Appending to rsaPart must not overwrite kwpPart.
			before := append([]byte(nil), kwpPart...)
			_ = append(rsaPart, 0xEE)
			if !bytes.Equal(kwpPart, before) {
				t.Error("appending to rsaPart overwrote kwpPart")
			}
		})
	}
}
