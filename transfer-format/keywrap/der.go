package keywrap

import (
	"fmt"
	"math"
)

// TrimDER returns the leading complete DER element of b (for example a PKCS#8
// PrivateKeyInfo) and the bytes after it. Both alias b.
//
// SoftHSM2 2.6.1 zero-pads a key to a multiple of 8 bytes before RFC 5649 wrapping, so a
// PKCS#8 key it wrapped unwraps with 1 to 7 trailing zero bytes; real HSMs and SoftHSM 2.7
// emit the exact length. Callers use TrimDER to detect and report that (checking that the
// trailing bytes are all zero is up to them).
//
// TrimDER checks the outer tag and length only, as DER requires them (no indefinite length,
// minimal length and tag encodings, a content length that fits in b); it does not parse the
// contents. It returns an error wrapping ErrDER otherwise.
func TrimDER(b []byte) (der, trailing []byte, err error) {
	n, err := derElementLen(b)
	if err != nil {
		return nil, nil, err
	}
	return b[:n:n], b[n:], nil
}

// Bounds on the header: 4 length bytes already describe 4 GiB, and 5 base-128 digits hold
// every tag number up to 2^31-1.
const (
	maxLengthBytes = 4
	maxTagDigits   = 5
)

// derElementLen returns the total length (header and contents) of the DER element at the
// start of b.
func derElementLen(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("%w: empty input", ErrDER)
	}
	off := 1
	if b[0]&0x1f == 0x1f {
		// High-tag-number form (X.690 section 8.1.2.4): base-128 digits, most significant
		// first, the last one with bit 8 clear; no leading 0x80 digit; number >= 31. Like
		// encoding/asn1, tag numbers are limited to 2^31-1.
		var tag uint64
		for i := 0; ; i++ {
			if off >= len(b) {
				return 0, fmt.Errorf("%w: truncated tag", ErrDER)
			}
			if i == maxTagDigits {
				return 0, fmt.Errorf("%w: tag number too large", ErrDER)
			}
			c := b[off]
			off++
			if i == 0 && c == 0x80 {
				return 0, fmt.Errorf("%w: non-minimal tag encoding", ErrDER)
			}
			tag = tag<<7 | uint64(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
		if tag > math.MaxInt32 {
			return 0, fmt.Errorf("%w: tag number too large", ErrDER)
		}
		if tag < 0x1f {
			return 0, fmt.Errorf("%w: non-minimal tag encoding", ErrDER)
		}
	}
	if off >= len(b) {
		return 0, fmt.Errorf("%w: truncated length", ErrDER)
	}
	first := b[off]
	off++
	var length uint64
	switch {
	case first < 0x80:
		length = uint64(first)
	case first == 0x80:
		return 0, fmt.Errorf("%w: indefinite length", ErrDER)
	default:
		k := int(first & 0x7f)
		if k > maxLengthBytes {
			return 0, fmt.Errorf("%w: length field of %d bytes", ErrDER, k)
		}
		if len(b)-off < k {
			return 0, fmt.Errorf("%w: truncated length", ErrDER)
		}
		if b[off] == 0 {
			return 0, fmt.Errorf("%w: non-minimal length encoding", ErrDER)
		}
		for _, c := range b[off : off+k] {
			length = length<<8 | uint64(c)
		}
		off += k
		if length < 0x80 {
			return 0, fmt.Errorf("%w: non-minimal length encoding", ErrDER)
		}
	}
	if length > uint64(len(b)-off) {
		return 0, fmt.Errorf("%w: content of %d bytes exceeds the %d bytes available", ErrDER, length, len(b)-off)
	}
	return off + int(length), nil
}
