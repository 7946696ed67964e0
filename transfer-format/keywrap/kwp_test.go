package keywrap_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
)

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestWrapPadRFC5649Vectors checks the two test vectors of RFC 5649 section 6.
func TestWrapPadRFC5649Vectors(t *testing.T) {
	const kek = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"
	tests := []struct {
		name       string
		plaintext  string
		ciphertext string
	}{
		{"20 bytes", "c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
		{"7 bytes", "466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, pt, ct := unhex(t, kek), unhex(t, tt.plaintext), unhex(t, tt.ciphertext)
			got, err := keywrap.WrapPad(k, pt)
			if err != nil {
				t.Fatalf("WrapPad: %v", err)
			}
			if !bytes.Equal(got, ct) {
				t.Errorf("WrapPad = %x, want %x", got, ct)
			}
			got, err = keywrap.UnwrapPad(k, ct)
			if err != nil {
				t.Fatalf("UnwrapPad: %v", err)
			}
			if !bytes.Equal(got, pt) {
				t.Errorf("UnwrapPad = %x, want %x", got, pt)
			}
		})
	}
}

func TestWrapPadRoundTrip(t *testing.T) {
	for _, keySize := range []int{16, 24, 32} {
		kek := pattern(keySize)
		for n := 1; n <= 600; n++ {
			pt := pattern(n)
			ct, err := keywrap.WrapPad(kek, pt)
			if err != nil {
				t.Fatalf("AES-%d, %d bytes: WrapPad: %v", keySize*8, n, err)
			}
			if want := (n+7)/8*8 + 8; len(ct) != want {
				t.Fatalf("AES-%d, %d bytes: len(WrapPad) = %d, want %d", keySize*8, n, len(ct), want)
			}
			got, err := keywrap.UnwrapPad(kek, ct)
			if err != nil {
				t.Fatalf("AES-%d, %d bytes: UnwrapPad: %v", keySize*8, n, err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatalf("AES-%d, %d bytes: UnwrapPad(WrapPad(x)) != x", keySize*8, n)
			}
		}
	}
}

func TestWrapPadArgumentErrors(t *testing.T) {
	tests := []struct {
		name      string
		kek       []byte
		plaintext []byte
		wantErr   error
	}{
		{"nil key", nil, []byte{1}, keywrap.ErrKeySize},
		{"15-byte key", make([]byte, 15), []byte{1}, keywrap.ErrKeySize},
		{"33-byte key", make([]byte, 33), []byte{1}, keywrap.ErrKeySize},
		{"empty plaintext", make([]byte, 32), nil, keywrap.ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keywrap.WrapPad(tt.kek, tt.plaintext)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("WrapPad error = %v, want %v", err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("WrapPad returned %d bytes with an error", len(got))
			}
		})
	}
}

func TestUnwrapPadArgumentErrors(t *testing.T) {
	kek := pattern(32)
	tests := []struct {
		name       string
		kek        []byte
		ciphertext []byte
		wantErr    error
	}{
		{"nil key", nil, make([]byte, 16), keywrap.ErrKeySize},
		{"20-byte key", make([]byte, 20), make([]byte, 16), keywrap.ErrKeySize},
		{"empty", kek, nil, keywrap.ErrLength},
		{"one block", kek, make([]byte, 8), keywrap.ErrLength},
		{"not a multiple of 8", kek, make([]byte, 17), keywrap.ErrLength},
		{"one byte short", kek, make([]byte, 23), keywrap.ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keywrap.UnwrapPad(tt.kek, tt.ciphertext)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("UnwrapPad error = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, keywrap.ErrUnwrap) {
				t.Errorf("UnwrapPad error %v is ErrUnwrap for a bad argument", err)
			}
			if got != nil {
				t.Errorf("UnwrapPad returned %d bytes with an error", len(got))
			}
		})
	}
}

// TestUnwrapPadTampered checks that every single-bit change, a removed or added block, and a
// wrong key all give ErrUnwrap, for the single-block path (<= 8 bytes) and the RFC 3394 path.
func TestUnwrapPadTampered(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 20, 64} {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			kek := pattern(32)
			ct, err := keywrap.WrapPad(kek, pattern(n))
			if err != nil {
				t.Fatal(err)
			}
			cases := map[string][]byte{}
			for i := 0; i < len(ct)*8; i++ {
				cases[fmt.Sprintf("bit %d flipped", i)] = flipBit(ct, i)
			}
			if len(ct) > 16 {
				cases["last block removed"] = ct[:len(ct)-8]
				cases["first block removed"] = ct[8:]
			}
			cases["block appended"] = append(append([]byte(nil), ct...), ct[:8]...)
			for name, c := range cases {
				got, err := keywrap.UnwrapPad(kek, c)
				if err != keywrap.ErrUnwrap {
					t.Errorf("%s: UnwrapPad error = %v, want exactly ErrUnwrap", name, err)
				}
				if got != nil {
					t.Errorf("%s: UnwrapPad returned %d bytes with an error", name, len(got))
				}
			}
			for _, other := range [][]byte{pattern(16), pattern(24), flipBit(kek, 255)} {
				if _, err := keywrap.UnwrapPad(other, ct); err != keywrap.ErrUnwrap {
					t.Errorf("wrong %d-byte key: UnwrapPad error = %v, want exactly ErrUnwrap", len(other), err)
				}
			}
		})
	}
}

// TestUnwrapPadDoesNotModifyInput guards against unwrapping in place.
func TestUnwrapPadDoesNotModifyInput(t *testing.T) {
	kek := pattern(32)
	ct, err := keywrap.WrapPad(kek, pattern(40))
	if err != nil {
		t.Fatal(err)
	}
	orig := append([]byte(nil), ct...)
	if _, err := keywrap.UnwrapPad(kek, ct); err != nil {
		t.Fatal(err)
	}
	if _, err := keywrap.UnwrapPad(kek, flipBit(ct, 3)); err == nil {
		t.Fatal("UnwrapPad accepted a flipped bit")
	}
	if !bytes.Equal(ct, orig) {
		t.Error("UnwrapPad modified its input")
	}
}
