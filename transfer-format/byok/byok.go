package byok

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Fixed values and limits of the format.
const (
	// SchemaVersion is the only schema_version defined.
	SchemaVersion = "1.0.0"
	// Alg is the only header alg defined.
	Alg = "dir"
	// Enc is the only header enc defined.
	Enc = "CKM_RSA_AES_KEY_WRAP"

	// MaxFileSize is the largest .byok file accepted, in bytes. The largest real one (an
	// RSA-4096 target under a 4096-bit KEK) is under 4 KiB.
	MaxFileSize = 64 << 10
	// MinCiphertextSize is the shortest ciphertext accepted: a 2048-bit RSA part and the
	// shortest RFC 5649 output.
	MinCiphertextSize = 256 + 16
)

// File is a .byok file.
type File struct {
	SchemaVersion string // always SchemaVersion
	Header        Header
	Ciphertext    []byte // RSA part || RFC 5649 part (raw bytes; base64url on the wire)
	Generator     string // tool and HSM that made the file; informational
}

// Header is the header member of a .byok file.
type Header struct {
	KID string // the KEK's versioned key identifier (see ParseKeyID)
	Alg string // always Alg
	Enc string // always Enc
}

// New returns a File for ciphertext (a CKM_RSA_AES_KEY_WRAP output, copied) wrapped for the
// KEK kid, made by generator. kid must be in the form ParseKeyID accepts; ciphertext must be
// at least MinCiphertextSize bytes and a multiple of 8; generator must be valid UTF-8; and
// the encoded file must fit in MaxFileSize.
//
// Its errors wrap ErrKeyID, ErrCiphertext, ErrGenerator or ErrTooLarge.
func New(kid string, ciphertext []byte, generator string) (*File, error) {
	f := &File{
		SchemaVersion: SchemaVersion,
		Header:        Header{KID: kid, Alg: Alg, Enc: Enc},
		Ciphertext:    bytes.Clone(ciphertext),
		Generator:     generator,
	}
	if field, err := f.validate(); err != nil {
		return nil, fmt.Errorf("byok: invalid %s: %w", field, err)
	}
	return f, nil
}

// validate checks every value of f and returns the member at fault.
func (f *File) validate() (field string, err error) {
	if f.SchemaVersion != SchemaVersion {
		return "schema_version", fmt.Errorf("%w: want %q", ErrUnsupported, SchemaVersion)
	}
	if _, err := parseKeyID(f.Header.KID); err != nil {
		return "header.kid", err
	}
	if f.Header.Alg != Alg {
		return "header.alg", fmt.Errorf("%w: want %q", ErrUnsupported, Alg)
	}
	if f.Header.Enc != Enc {
		return "header.enc", fmt.Errorf("%w: want %q", ErrUnsupported, Enc)
	}
	if n := len(f.Ciphertext); n < MinCiphertextSize || n%8 != 0 {
		return "ciphertext", fmt.Errorf("%w: %d bytes, want a multiple of 8 and at least %d", ErrCiphertext, n, MinCiphertextSize)
	}
	if !utf8.ValidString(f.Generator) {
		return "generator", fmt.Errorf("%w: not valid utf-8", ErrGenerator)
	}
	if n := len(f.Marshal()); n > MaxFileSize {
		return "", fmt.Errorf("%w: encodes to %d bytes, limit %d", ErrTooLarge, n, MaxFileSize)
	}
	return "", nil
}

// validFields is validate without the size check, for parseCanonical, which knows the size.
func (f *File) validFields() bool {
	if _, err := parseKeyID(f.Header.KID); err != nil {
		return false
	}
	n := len(f.Ciphertext)
	return n >= MinCiphertextSize && n%8 == 0
}

// Marshal returns the canonical encoding of f (see the package documentation). It encodes
// the fields as they are, without validating them; a File from New, Parse or ParseLenient
// always encodes to bytes Parse accepts. Invalid UTF-8 in a string is replaced by U+FFFD.
func (f *File) Marshal() []byte {
	b := make([]byte, 0, 160+len(f.Header.KID)+len(f.Generator)+base64.RawURLEncoding.EncodedLen(len(f.Ciphertext)))
	b = append(b, `{"schema_version":`...)
	b = appendString(b, f.SchemaVersion)
	b = append(b, `,"header":{"kid":`...)
	b = appendString(b, f.Header.KID)
	b = append(b, `,"alg":`...)
	b = appendString(b, f.Header.Alg)
	b = append(b, `,"enc":`...)
	b = appendString(b, f.Header.Enc)
	b = append(b, `},"ciphertext":"`...)
	b = base64.RawURLEncoding.AppendEncode(b, f.Ciphertext)
	b = append(b, `","generator":`...)
	b = appendString(b, f.Generator)
	return append(b, '}')
}

// appendString appends s as a canonical JSON string: '"' and '\\' escaped with a backslash,
// control characters as \b, \f, \n, \r, \t or \u00xx (lowercase hex), everything else as raw
// UTF-8.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				b = append(b, c)
			}
		}
		i++
	}
	return append(b, '"')
}

// Parse decodes a .byok file in canonical form: it accepts exactly the bytes that Marshal
// emits for a valid File, so f.Marshal() returns b again. Use it for files this project
// writes; use ParseLenient for files from other tools.
//
// Every error is a *ParseError; it wraps ErrNonCanonical if ParseLenient would accept b.
func Parse(b []byte) (*File, error) {
	if f := parseCanonical(b); f != nil {
		return f, nil
	}
	f, err := ParseLenient(b)
	if err != nil {
		return nil, err
	}
	if c := f.Marshal(); !bytes.Equal(c, b) {
		i := 0
		for i < len(c) && i < len(b) && c[i] == b[i] {
			i++
		}
		return nil, &ParseError{Err: fmt.Errorf("%w: differs from the canonical encoding at byte %d", ErrNonCanonical, i)}
	}
	return f, nil
}

// ParseLenient decodes a .byok file as Azure accepts it from other tools: any JSON whitespace
// and member order, padded or unpadded base64url, any JSON string escapes. It still requires
// exactly the defined members (matched case-sensitively, none unknown, none repeated), the
// fixed values, a valid kid and a ciphertext of a possible length. A JSON escape of a lone
// UTF-16 surrogate decodes to U+FFFD.
//
// Every error is a *ParseError wrapping one of this package's sentinel errors.
func ParseLenient(b []byte) (*File, error) {
	if len(b) > MaxFileSize {
		return nil, &ParseError{Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxFileSize)}
	}
	if !utf8.Valid(b) {
		return nil, &ParseError{Err: fmt.Errorf("%w: not valid utf-8", ErrSyntax)}
	}
	d := decoder{dec: json.NewDecoder(bytes.NewReader(b))}
	f, err := d.file()
	if err != nil {
		return nil, err
	}
	// The object must be the whole input.
	if _, err := d.dec.Token(); err != io.EOF {
		return nil, &ParseError{Err: fmt.Errorf("%w: data after the object", ErrSyntax)}
	}
	if field, err := f.validate(); err != nil {
		return nil, &ParseError{Field: field, Err: err}
	}
	return f, nil
}

// decoder reads the .byok object token by token, which lets it refuse duplicate members and
// match member names exactly (encoding/json's Unmarshal keeps the last duplicate and matches
// names case-insensitively).
type decoder struct {
	dec *json.Decoder
}

func (d *decoder) file() (*File, error) {
	f := new(File)
	var ciphertext string
	err := d.object("", map[string]func(field string) error{
		"schema_version": func(field string) error { return d.str(field, &f.SchemaVersion) },
		"header": func(field string) error {
			return d.object(field, map[string]func(string) error{
				"kid": func(field string) error { return d.str(field, &f.Header.KID) },
				"alg": func(field string) error { return d.str(field, &f.Header.Alg) },
				"enc": func(field string) error { return d.str(field, &f.Header.Enc) },
			})
		},
		"ciphertext": func(field string) error { return d.str(field, &ciphertext) },
		"generator":  func(field string) error { return d.str(field, &f.Generator) },
	})
	if err != nil {
		return nil, err
	}
	f.Ciphertext, err = decodeBase64URL(ciphertext)
	if err != nil {
		return nil, &ParseError{Field: "ciphertext", Err: err}
	}
	return f, nil
}

// object reads a JSON object whose members are exactly those of members, each read by its
// function. path is the object's own member path, empty for the top level.
func (d *decoder) object(path string, members map[string]func(field string) error) error {
	if err := d.delim(path, '{', "an object"); err != nil {
		return err
	}
	seen := make(map[string]bool, len(members))
	for d.dec.More() {
		tok, err := d.dec.Token()
		if err != nil {
			return d.syntax(path, err)
		}
		name, ok := tok.(string)
		if !ok {
			return d.syntax(path, fmt.Errorf("member name expected"))
		}
		field := name
		if path != "" {
			field = path + "." + name
		}
		read, ok := members[name]
		if !ok {
			return &ParseError{Field: field, Err: ErrUnknownMember}
		}
		if seen[name] {
			return &ParseError{Field: field, Err: ErrDuplicateMember}
		}
		seen[name] = true
		if err := read(field); err != nil {
			return err
		}
	}
	if err := d.delim(path, '}', "end of object"); err != nil {
		return err
	}
	var missing []string
	for name := range members {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		// Report one, deterministically: the first in the canonical order.
		name := firstInOrder(missing)
		if path != "" {
			name = path + "." + name
		}
		return &ParseError{Field: name, Err: ErrMissingMember}
	}
	return nil
}

// canonicalOrder lists member names in their canonical order, header members included.
var canonicalOrder = []string{"schema_version", "header", "kid", "alg", "enc", "ciphertext", "generator"}

func firstInOrder(names []string) string {
	for _, c := range canonicalOrder {
		for _, n := range names {
			if n == c {
				return n
			}
		}
	}
	return names[0]
}

func (d *decoder) delim(field string, want json.Delim, what string) error {
	tok, err := d.dec.Token()
	if err != nil {
		return d.syntax(field, err)
	}
	if got, ok := tok.(json.Delim); !ok || got != want {
		return &ParseError{Field: field, Err: fmt.Errorf("%w: want %s", ErrSyntax, what)}
	}
	return nil
}

func (d *decoder) str(field string, dst *string) error {
	tok, err := d.dec.Token()
	if err != nil {
		return d.syntax(field, err)
	}
	s, ok := tok.(string)
	if !ok {
		return &ParseError{Field: field, Err: fmt.Errorf("%w: want a string", ErrSyntax)}
	}
	*dst = s
	return nil
}

// syntax wraps an encoding/json error. Its text is a detail, not part of the contract.
func (d *decoder) syntax(field string, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &ParseError{Field: field, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
}

// decodeBase64URL decodes base64url (RFC 4648 section 5), unpadded or correctly padded, with
// canonical trailing bits. Unlike encoding/base64 alone it refuses embedded CR and LF.
func decodeBase64URL(s string) ([]byte, error) {
	body := strings.TrimRight(s, "=")
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("%w: not base64url", ErrCiphertext)
		}
	}
	enc := base64.RawURLEncoding
	if len(body) != len(s) {
		enc = base64.URLEncoding
	}
	out, err := enc.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url: %v", ErrCiphertext, err)
	}
	return out, nil
}
