package keywrap

import "errors"

var (
	// ErrUnwrap reports that a ciphertext failed an integrity or authenticity check. It does
	// not say which check failed.
	ErrUnwrap = errors.New("keywrap: unwrap failed")

	// ErrKeySize reports an AES key-encryption key that is not 16, 24 or 32 bytes long.
	ErrKeySize = errors.New("keywrap: invalid aes key size")

	// ErrLength reports an input whose length no valid input can have.
	ErrLength = errors.New("keywrap: invalid length")

	// ErrRSAKey reports an RSA key that is missing or too small for the mechanism.
	ErrRSAKey = errors.New("keywrap: invalid rsa key")

	// ErrDER reports bytes that do not start with a well-formed DER element.
	ErrDER = errors.New("keywrap: malformed der")
)
