// Package bundle implements the container of the airgap-byok transfer format, version 1: the
// fixed-size header, the station signature, the zstd-compressed payload, content IDs, key IDs,
// signatures and custodian approvals.
//
// The normative description is SPEC.md at the root of the transfer-format module; section
// numbers in comments refer to it.
//
// # Trust
//
// [Parse] reads only the fixed-size header and checks the structure; it never decompresses.
// [Bundle.VerifySignature] checks the station signature over the bundle ID, which commits to
// every header field, including the SHA-256 of the stored (compressed) payload and of the
// decoded payload. Only after the signature verifies does [Bundle.Open] hash, decompress (with
// hard limits) and return the payload. Callers must keep that order; the chain package does.
//
// # Errors
//
// Every malformed-input failure wraps a *[ParseError]. An unknown format version is an
// *[UnsupportedVersionError] (also a ParseError). Verification failures are
// [ErrBadSignature] and *[HashMismatchError]. Inputs larger than the limits wrap
// [ErrTooLarge].
package bundle
