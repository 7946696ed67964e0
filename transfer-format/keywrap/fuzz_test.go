package keywrap_test

import (
	"bytes"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
)

// FuzzUnwrapPad checks that UnwrapPad never panics, fails only with the documented errors,
// and accepts only what WrapPad produces: RFC 5649 wrapping is deterministic, so any accepted
// ciphertext must re-wrap to itself.
func FuzzUnwrapPad(f *testing.F) {
	for _, keySize := range []int{16, 24, 32} {
		for _, n := range []int{1, 8, 9, 40} {
			kek := pattern(keySize)
			ct, err := keywrap.WrapPad(kek, pattern(n))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(kek, ct)
		}
	}
	f.Add(pattern(20), pattern(24))
	f.Fuzz(func(t *testing.T, kek, ct []byte) {
		pt, err := keywrap.UnwrapPad(kek, ct)
		validArgs := (len(kek) == 16 || len(kek) == 24 || len(kek) == 32) && len(ct) >= 16 && len(ct)%8 == 0
		if err != nil {
			if pt != nil {
				t.Fatal("UnwrapPad returned bytes with an error")
			}
			if validArgs && err != keywrap.ErrUnwrap {
				t.Fatalf("UnwrapPad error = %v for valid arguments, want exactly ErrUnwrap", err)
			}
			if !validArgs && (errors.Is(err, keywrap.ErrUnwrap) ||
				!(errors.Is(err, keywrap.ErrKeySize) || errors.Is(err, keywrap.ErrLength))) {
				t.Fatalf("UnwrapPad error = %v for invalid arguments, want ErrKeySize or ErrLength", err)
			}
			return
		}
		if !validArgs {
			t.Fatal("UnwrapPad accepted invalid arguments")
		}
		again, err := keywrap.WrapPad(kek, pt)
		if err != nil {
			t.Fatalf("WrapPad of an unwrapped plaintext: %v", err)
		}
		if !bytes.Equal(again, ct) {
			t.Fatal("UnwrapPad accepted a ciphertext that WrapPad does not produce")
		}
	})
}

// FuzzUnwrapRSAAES checks that UnwrapRSAAES never panics with a fixed 2048-bit key and fails
// only with ErrLength or ErrUnwrap.
func FuzzUnwrapRSAAES(f *testing.F) {
	kek := testKEK(f, "2048")
	_, ec := ecPKCS8(f)
	for _, target := range [][]byte{pattern(1), pattern(32), ec} {
		ct, err := keywrap.WrapRSAAES(rand.Reader, &kek.PublicKey, target)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ct)
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		pt, err := keywrap.UnwrapRSAAES(kek, ct)
		if err == nil {
			// Only a ciphertext made with the key gets here (the seeds); it must re-wrap.
			if _, _, err := keywrap.SplitRSAAES(kek.Size(), ct); err != nil {
				t.Fatalf("UnwrapRSAAES accepted a ciphertext SplitRSAAES rejects: %v", err)
			}
			if len(pt) == 0 {
				t.Fatal("UnwrapRSAAES returned an empty target")
			}
			return
		}
		if pt != nil {
			t.Fatal("UnwrapRSAAES returned bytes with an error")
		}
		validLen := len(ct) >= kek.Size()+16 && (len(ct)-kek.Size())%8 == 0
		if validLen && err != keywrap.ErrUnwrap {
			t.Fatalf("UnwrapRSAAES error = %v for a valid length, want exactly ErrUnwrap", err)
		}
		if !validLen && !errors.Is(err, keywrap.ErrLength) {
			t.Fatalf("UnwrapRSAAES error = %v for an invalid length, want ErrLength", err)
		}
	})
}

// FuzzTrimDER checks that TrimDER never panics, splits its input losslessly, returns a single
// complete element, and agrees with encoding/asn1 on where the first element ends.
func FuzzTrimDER(f *testing.F) {
	_, ec := ecPKCS8(f)
	f.Add(ec)
	f.Add(append(append([]byte(nil), ec...), 0, 0, 0))
	f.Add([]byte{0x9f, 0x1f, 0x01, 0xaa})
	f.Add(append([]byte{0x04, 0x81, 0x80}, make([]byte, 0x80)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		der, trailing, err := keywrap.TrimDER(b)
		var raw asn1.RawValue
		rest, asn1Err := asn1.Unmarshal(b, &raw)
		if err != nil {
			if !errors.Is(err, keywrap.ErrDER) {
				t.Fatalf("TrimDER error = %v, want ErrDER", err)
			}
			if der != nil || trailing != nil {
				t.Fatal("TrimDER returned bytes with an error")
			}
			if asn1Err == nil {
				t.Fatalf("TrimDER rejects %x (%v), encoding/asn1 accepts it", b, err)
			}
			return
		}
		if len(der) == 0 || !bytes.Equal(append(append([]byte(nil), der...), trailing...), b) {
			t.Fatal("der || trailing != input")
		}
		if again, tail, err := keywrap.TrimDER(der); err != nil || !bytes.Equal(again, der) || len(tail) != 0 {
			t.Fatalf("TrimDER(der) = %d bytes, %d trailing, %v; want der, none, nil", len(again), len(tail), err)
		}
		if asn1Err != nil {
			t.Fatalf("TrimDER accepts %x, encoding/asn1 rejects it: %v", b, asn1Err)
		}
		if len(rest) != len(trailing) {
			t.Fatalf("TrimDER leaves %d trailing bytes, encoding/asn1 %d", len(trailing), len(rest))
		}
	})
}

func BenchmarkUnwrapRSAAES3072(b *testing.B) {
	kek := testKEK(b, "3072")
	_, target := rsaPKCS8(b)
	ct, err := keywrap.WrapRSAAES(rand.Reader, &kek.PublicKey, target)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(ct)))
	for b.Loop() {
		if _, err := keywrap.UnwrapRSAAES(kek, ct); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrapRSAAES3072(b *testing.B) {
	kek := testKEK(b, "3072")
	_, target := rsaPKCS8(b)
	for b.Loop() {
		if _, err := keywrap.WrapRSAAES(rand.Reader, &kek.PublicKey, target); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrapPad(b *testing.B) {
	kek := pattern(32)
	_, target := rsaPKCS8(b)
	ct, err := keywrap.WrapPad(kek, target)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(ct)))
	for b.Loop() {
		if _, err := keywrap.UnwrapPad(kek, ct); err != nil {
			b.Fatal(err)
		}
	}
}
