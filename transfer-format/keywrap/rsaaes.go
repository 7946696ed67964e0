package keywrap

import (
	"crypto/rsa"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
)

// aesKeySize is the size of the ephemeral AES key: Azure's BYOK specification requires
// AES-256.
const aesKeySize = 32

// minModulusBytes is the smallest RSA modulus, in bytes, that can carry an AES-256 key in
// RSA-OAEP with SHA-1 (RFC 8017 section 7.1.1: mLen <= k - 2*hLen - 2). Go's crypto/rsa
// refuses keys below 1024 bits anyway; Azure accepts only 2048, 3072 and 4096.
const minModulusBytes = aesKeySize + 2*sha1.Size + 2

// WrapRSAAES wraps target for the RSA key-encryption key kek as CKM_RSA_AES_KEY_WRAP does:
// it draws a fresh AES-256 key from rand, encrypts it with RSA-OAEP (SHA-1, MGF1-SHA-1, empty
// label), and appends target wrapped with that key by RFC 5649. The result is kek.Size()
// bytes of RSA part followed by the RFC 5649 part.
//
// rand provides both the AES key and the OAEP seed, so a deterministic reader gives a
// deterministic result (for test vectors); use crypto/rand.Reader otherwise. It returns an
// error wrapping ErrRSAKey if kek is unusable and ErrLength if target is empty or too long.
func WrapRSAAES(rand io.Reader, kek *rsa.PublicKey, target []byte) ([]byte, error) {
	if err := checkPublicKey(kek); err != nil {
		return nil, err
	}
	if len(target) == 0 {
		return nil, fmt.Errorf("%w: target is empty", ErrLength)
	}
	aesKey := make([]byte, aesKeySize)
	defer clear(aesKey)
	if _, err := io.ReadFull(rand, aesKey); err != nil {
		return nil, fmt.Errorf("keywrap: read random aes key: %w", err)
	}
	kwpPart, err := WrapPad(aesKey, target)
	if err != nil {
		return nil, err
	}
	rsaPart, err := rsa.EncryptOAEP(sha1.New(), rand, kek, aesKey, nil)
	if err != nil {
		return nil, fmt.Errorf("keywrap: rsa-oaep encrypt: %w", err)
	}
	out := make([]byte, 0, len(rsaPart)+len(kwpPart))
	out = append(out, rsaPart...)
	return append(out, kwpPart...), nil
}

// UnwrapRSAAES reverses WrapRSAAES with the RSA private key kek and returns the target.
//
// It returns an error wrapping ErrRSAKey if kek is unusable, ErrLength if ciphertext cannot be
// split at kek's modulus length (see SplitRSAAES), and ErrUnwrap, alone, if either part fails
// to decrypt or its integrity check, or if the RSA part does not hold an AES-256 key.
func UnwrapRSAAES(kek *rsa.PrivateKey, ciphertext []byte) ([]byte, error) {
	if kek == nil {
		return nil, fmt.Errorf("%w: key is nil", ErrRSAKey)
	}
	if err := checkPublicKey(&kek.PublicKey); err != nil {
		return nil, err
	}
	rsaPart, kwpPart, err := SplitRSAAES(kek.Size(), ciphertext)
	if err != nil {
		return nil, err
	}
	aesKey, err := rsa.DecryptOAEP(sha1.New(), nil, kek, rsaPart, nil)
	if err != nil {
		if errors.Is(err, rsa.ErrDecryption) {
			return nil, ErrUnwrap
		}
		// Not a property of the ciphertext: the private key itself is unusable.
		return nil, fmt.Errorf("%w: rsa-oaep decrypt: %v", ErrRSAKey, err)
	}
	defer clear(aesKey)
	if len(aesKey) != aesKeySize {
		return nil, ErrUnwrap
	}
	target, err := UnwrapPad(aesKey, kwpPart)
	if err != nil {
		// The AES key is well-sized and kwpPart passed SplitRSAAES, so this is ErrUnwrap;
		// return it alone rather than trust that reasoning.
		return nil, ErrUnwrap
	}
	return target, nil
}

// SplitRSAAES splits a CKM_RSA_AES_KEY_WRAP ciphertext at modulusBytes, the KEK modulus length
// in bytes, into the RSA-OAEP part and the RFC 5649 part. Both alias ciphertext.
//
// It returns an error wrapping ErrLength if modulusBytes is not positive or if the remainder is
// shorter than 16 bytes or not a multiple of 8.
func SplitRSAAES(modulusBytes int, ciphertext []byte) (rsaPart, kwpPart []byte, err error) {
	if modulusBytes <= 0 {
		return nil, nil, fmt.Errorf("%w: modulus length %d is not positive", ErrLength, modulusBytes)
	}
	if len(ciphertext) < modulusBytes+16 || (len(ciphertext)-modulusBytes)%8 != 0 {
		return nil, nil, fmt.Errorf("%w: ciphertext is %d bytes, want %d (modulus) plus a multiple of 8 of at least 16",
			ErrLength, len(ciphertext), modulusBytes)
	}
	return ciphertext[:modulusBytes:modulusBytes], ciphertext[modulusBytes:], nil
}

// checkPublicKey returns an error wrapping ErrRSAKey if pub cannot carry an AES-256 key.
func checkPublicKey(pub *rsa.PublicKey) error {
	if pub == nil || pub.N == nil {
		return fmt.Errorf("%w: key is nil", ErrRSAKey)
	}
	if pub.Size() < minModulusBytes {
		return fmt.Errorf("%w: modulus is %d bits, too small for rsa-oaep of an aes-256 key", ErrRSAKey, pub.N.BitLen())
	}
	return nil
}
