package keywrap

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math"
)

// aivPrefix is the high half of RFC 5649's Alternative Initial Value (section 3); the low
// half is the plaintext length in bytes, 32-bit big-endian.
var aivPrefix = [4]byte{0xA6, 0x59, 0x59, 0xA6}

// newCipher returns the AES block cipher for kek, or an error wrapping ErrKeySize.
func newCipher(kek []byte) (cipher.Block, error) {
	switch len(kek) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: key is %d bytes, want 16, 24 or 32", ErrKeySize, len(kek))
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("keywrap: %w", err)
	}
	return b, nil
}

// WrapPad wraps plaintext with the AES key kek using AES Key Wrap with Padding (RFC 5649).
// kek must be 16, 24 or 32 bytes (AES-128, -192, -256); plaintext must be 1 to 2^32-1 bytes.
// The result is 8 bytes longer than plaintext rounded up to a multiple of 8. The wrapping is
// deterministic: equal inputs give equal outputs.
//
// It returns an error wrapping ErrKeySize or ErrLength for arguments out of range.
func WrapPad(kek, plaintext []byte) ([]byte, error) {
	block, err := newCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(plaintext) == 0 || uint64(len(plaintext)) > math.MaxUint32 {
		return nil, fmt.Errorf("%w: plaintext is %d bytes, want 1 to 2^32-1", ErrLength, len(plaintext))
	}
	padded := (len(plaintext) + 7) &^ 7
	out := make([]byte, 8+padded)
	copy(out[:4], aivPrefix[:])
	binary.BigEndian.PutUint32(out[4:8], uint32(len(plaintext)))
	copy(out[8:], plaintext) // the padding bytes stay zero
	if padded == 8 {
		// RFC 5649 section 4.1: a single block is encrypted once with AES in ECB mode.
		block.Encrypt(out, out)
		return out, nil
	}
	wrap(block, out)
	return out, nil
}

// UnwrapPad unwraps ciphertext made by WrapPad (RFC 5649) with the AES key kek.
//
// The integrity check (initial value, length indicator, zero padding) runs in constant time
// with respect to the unwrapped bytes. It returns an error wrapping ErrKeySize for a kek of
// the wrong size, ErrLength if ciphertext is shorter than 16 bytes or not a multiple of 8, and
// ErrUnwrap, alone, if the integrity check fails.
func UnwrapPad(kek, ciphertext []byte) ([]byte, error) {
	block, err := newCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) < 16 || len(ciphertext)%8 != 0 {
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, want a multiple of 8 and at least 16", ErrLength, len(ciphertext))
	}
	buf := make([]byte, len(ciphertext))
	copy(buf, ciphertext)
	if len(buf) == 16 {
		block.Decrypt(buf, buf)
	} else {
		unwrap(block, buf)
	}

	// buf is A || P, with A = A65959A6 || MLI and P = plaintext || zero padding.
	n := uint64(len(buf) - 8)
	mli := uint64(binary.BigEndian.Uint32(buf[4:8]))
	ok := uint64(subtle.ConstantTimeCompare(buf[:4], aivPrefix[:]))
	// RFC 5649 section 3: 8*(n-1) < MLI <= 8*n, where n counts 64-bit blocks.
	ok &= lessThan(n-8, mli) & (1 ^ lessThan(n, mli))
	// The bytes of the last block at or beyond MLI must be zero.
	var nonzero byte
	for i := n - 8; i < n; i++ {
		inPad := byte(0) - byte(1^lessThan(i, mli)) // 0xff when i >= mli
		nonzero |= buf[8+i] & inPad
	}
	ok &= uint64(subtle.ConstantTimeByteEq(nonzero, 0))
	if ok != 1 {
		clear(buf)
		return nil, ErrUnwrap
	}
	out := make([]byte, mli)
	copy(out, buf[8:8+mli])
	clear(buf)
	return out, nil
}

// lessThan returns 1 if a < b and 0 otherwise, in constant time. Both must be below 2^63.
func lessThan(a, b uint64) uint64 {
	return (a - b) >> 63
}

// wrap applies RFC 3394's wrapping process W (section 2.2.1, index form) in place to
// buf = A || R[1] || ... || R[n], n >= 2.
func wrap(block cipher.Block, buf []byte) {
	n := len(buf)/8 - 1
	var b [16]byte
	copy(b[:8], buf[:8])
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			r := buf[8*i : 8*i+8]
			copy(b[8:], r)
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(b[:8])^t)
			copy(r, b[8:])
		}
	}
	copy(buf[:8], b[:8])
	clear(b[:])
}

// unwrap applies RFC 3394's unwrapping process W^-1 (section 2.2.2, index form) in place to
// buf = C[0] || ... || C[n], n >= 2, leaving A || R[1] || ... || R[n].
func unwrap(block cipher.Block, buf []byte) {
	n := len(buf)/8 - 1
	var b [16]byte
	copy(b[:8], buf[:8])
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			r := buf[8*i : 8*i+8]
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(b[:8])^t)
			copy(b[8:], r)
			block.Decrypt(b[:], b[:])
			copy(r, b[8:])
		}
	}
	copy(buf[:8], b[:8])
	clear(b[:])
}
