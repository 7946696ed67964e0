package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// ID is a SHA-256 content address: of a bundle (the bundle ID, §4.2) or of a public key (the
// key ID, §5.1). A policy's ID is the ID of the bundle that carries it.
type ID [32]byte

// String returns the ID as 64 lowercase hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the ID is all zero, which the format uses for "none".
func (id ID) IsZero() bool { return id == ID{} }

// crockford is Crockford's base32 alphabet: no I, L, O or U, so it reads aloud without doubt.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Short returns the fingerprint people compare: the first 80 bits of the ID in Crockford
// base32, in four groups of four, e.g. "7KQ2-M9XD-4TNV-H3PA" (§4.4).
func (id ID) Short() string {
	var out [19]byte // 16 digits and 3 dashes
	var acc uint64
	bits, n, o := 0, 0, 0
	for _, b := range id[:10] {
		acc = acc<<8 | uint64(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			if n > 0 && n%4 == 0 {
				out[o] = '-'
				o++
			}
			out[o] = crockford[(acc>>bits)&31]
			o++
			n++
		}
	}
	return string(out[:o])
}

// MarshalText encodes the ID as hex.
func (id ID) MarshalText() ([]byte, error) {
	b := make([]byte, 64)
	hex.Encode(b, id[:])
	return b, nil
}

// UnmarshalText accepts exactly 64 lowercase hex digits.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseID parses 64 lowercase hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 64 {
		return id, errorf("id", "want 64 hex digits, got %d characters", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return id, errorf("id", "not lowercase hex")
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, errorf("id", "%v", err)
	}
	return id, nil
}

// ParseShort normalises a fingerprint typed by a person (case, dashes, spaces, and the
// look-alikes O→0, I/L→1) and returns its canonical form, or an error if it is not 16
// Crockford base32 characters.
func ParseShort(s string) (string, error) {
	var sb strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		if r > 127 || strings.IndexByte(crockford, byte(r)) < 0 {
			return "", errors.New("fingerprint has a character outside 0-9 A-Z (without I, L, O, U)")
		}
		if sb.Len() > 0 && (sb.Len()+1)%5 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteRune(r)
	}
	if sb.Len() != 19 {
		return "", errors.New("fingerprint must have 16 characters (four groups of four)")
	}
	return sb.String(), nil
}

// hashWithDomain returns SHA-256(domain || 0x00 || parts...).
func hashWithDomain(domain string, parts ...[]byte) ID {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write([]byte{0})
	for _, p := range parts {
		h.Write(p)
	}
	var id ID
	h.Sum(id[:0])
	return id
}
