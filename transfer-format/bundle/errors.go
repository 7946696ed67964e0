package bundle

import (
	"errors"
	"fmt"
)

var (
	// ErrBadSignature means a station signature or an approval did not verify.
	ErrBadSignature = errors.New("bad signature")
	// ErrTooLarge means a declared or actual size exceeds the format's limits (§6).
	ErrTooLarge = errors.New("size limit exceeded")
	// ErrUnsupportedKey means a public key is not of a type the format allows for signing.
	ErrUnsupportedKey = errors.New("unsupported signing key")
)

// ParseError reports malformed input: anything that is not a well-formed, canonical encoding.
type ParseError struct {
	What string // what was being parsed, e.g. "header", "payload", "file name"
	Err  error
}

func (e *ParseError) Error() string { return "malformed " + e.What + ": " + e.Err.Error() }
func (e *ParseError) Unwrap() error { return e.Err }

func errorf(what, format string, args ...any) error {
	return &ParseError{What: what, Err: fmt.Errorf(format, args...)}
}

// UnsupportedVersionError reports a format version this implementation does not know. Readers
// refuse such bundles rather than guess (§3). It always arrives wrapped in a *ParseError.
type UnsupportedVersionError struct {
	Version uint16
}

func (e *UnsupportedVersionError) Error() string {
	return fmt.Sprintf("unsupported transfer format version %d (this build reads versions %d and %d)", e.Version, Version1, Version2)
}

// HashMismatchError reports a digest that does not match what a signed header or a file name
// commits to.
type HashMismatchError struct {
	What string // "file name", "stored payload", "payload"
	Want []byte
	Got  []byte
}

func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("%s hash mismatch: want %x, got %x", e.What, shortHex(e.Want), shortHex(e.Got))
}

func shortHex(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}
