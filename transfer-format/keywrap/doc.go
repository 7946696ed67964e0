// Package keywrap implements, in software, the key wrapping that Azure Key Vault's
// "Bring Your Own Key" (BYOK) specification uses: PKCS#11's CKM_RSA_AES_KEY_WRAP, built from
// RSA-OAEP and AES Key Wrap with Padding ([RFC 5649]).
//
// # Not for production keys
//
// This package exists to verify packages, to let the local Key Vault emulator unwrap what it
// receives, and to build test fixtures. Production target keys are wrapped inside the HSM and
// never exist in this process's memory; do not use WrapRSAAES on them.
//
// # Format
//
// A CKM_RSA_AES_KEY_WRAP ciphertext, exactly as Azure's BYOK specification defines it, is
//
//	RSA-OAEP(KEK public key, K) || AES-KWP(K, target)
//
// where K is a fresh AES-256 key, RSA-OAEP uses SHA-1 for both the hash and MGF1 with an empty
// label, and AES-KWP is RFC 5649 (alternative initial value A65959A6 followed by the 32-bit
// big-endian plaintext length). The RSA part comes first and is exactly as long as the KEK
// modulus (256, 384 or 512 bytes for the KEK sizes Azure accepts); the RFC 5649 part is a
// multiple of 8 bytes and at least 16.
//
// # Errors
//
// Failures of integrity or authenticity (a wrong key, a flipped bit, a truncated block) are
// reported as [ErrUnwrap] alone, without saying which check failed. Arguments that no valid
// input can have (a key of the wrong size, a length that is not a multiple of 8) are reported
// with [ErrKeySize], [ErrLength] or [ErrRSAKey] instead, and never as ErrUnwrap.
//
// [RFC 5649]: https://www.rfc-editor.org/rfc/rfc5649
package keywrap
