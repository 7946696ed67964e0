package byok

import (
	"bytes"
	"encoding/base64"
)

// The canonical encoding is fixed (see the package documentation): the member names, their
// order and three of the values never change. parseCanonical reads it by slicing, which
// costs a small fraction of the general JSON parser; replaying a medium parses one .byok per
// key package.
const (
	canonPrefix     = `{"schema_version":"1.0.0","header":{"kid":"`
	canonAfterKID   = `","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":"`
	canonAfterCiph  = `","generator":"`
	canonSuffix     = `"}`
	canonFixedBytes = len(canonPrefix) + len(canonAfterKID) + len(canonAfterCiph) + len(canonSuffix)
)

// parseCanonical returns the file b encodes if b is the canonical encoding of a valid file
// whose kid and generator are printable ASCII without '"' or '\\' (so that they appear in b
// exactly as they are), and nil otherwise. It never decides a refusal: for nil the caller
// runs the general parser, which accepts or refuses b with its reasons. Whatever it accepts,
// the general parser accepts with the same content, and Marshal returns b again.
func parseCanonical(b []byte) *File {
	if len(b) > MaxFileSize || len(b) < canonFixedBytes || string(b[:len(canonPrefix)]) != canonPrefix {
		return nil
	}
	rest := b[len(canonPrefix):]
	kid, rest, ok := cutPlain(rest)
	// cutPlain took the closing quote.
	after := canonAfterKID[1:]
	if !ok || len(rest) < len(after) || string(rest[:len(after)]) != after {
		return nil
	}
	rest = rest[len(after):]
	// The decoder below refuses every byte outside the alphabet, '=' included, but skips CR
	// and LF, which a JSON string cannot hold unescaped.
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil
	}
	ct := rest[:end]
	rest = rest[end:]
	if bytes.IndexByte(ct, '\r') >= 0 || bytes.IndexByte(ct, '\n') >= 0 ||
		len(rest) < len(canonAfterCiph) || string(rest[:len(canonAfterCiph)]) != canonAfterCiph {
		return nil
	}
	gen, rest, ok := cutPlain(rest[len(canonAfterCiph):])
	if !ok || string(rest) != canonSuffix[1:] {
		return nil
	}
	// Strict: the unused bits of the last character must be zero, so the ciphertext has one
	// spelling and re-encodes to the same characters.
	enc := base64.RawURLEncoding.Strict()
	ciphertext := make([]byte, enc.DecodedLen(len(ct)))
	n, err := enc.Decode(ciphertext, ct)
	if err != nil {
		return nil
	}
	f := &File{
		SchemaVersion: SchemaVersion,
		Header:        Header{KID: string(kid), Alg: Alg, Enc: Enc},
		Ciphertext:    ciphertext[:n],
		Generator:     string(gen),
	}
	if !f.validFields() {
		return nil
	}
	return f
}

// cutPlain splits b at the first '"': the string before it, if it is printable ASCII
// without '\\' (a canonical JSON string that needs no escape), and what follows the quote.
func cutPlain(b []byte) (s, rest []byte, ok bool) {
	for i, c := range b {
		switch {
		case c == '"':
			return b[:i], b[i+1:], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, nil, false
		}
	}
	return nil, nil, false
}
