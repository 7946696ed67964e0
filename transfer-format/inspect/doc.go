// Package inspect renders a transfer bundle (SPEC.md §4, §7) for people and tools: its
// header, its station signature and whether that verified, and its decoded payload, as
// indented JSON. Both binaries expose it as their inspect command.
//
// # Trust
//
// [Bundle] follows the reading order of SPEC.md §9.2: it parses the fixed-size header and
// decompresses and decodes the payload only after the station signature has verified with a
// key the caller supplied. For forensic use, [Options].Unverified decodes the payload anyway,
// and the rendering says that its content is not authenticated. "verified" means only that
// the signature was made by the key the header names; whether that key may sign the bundle,
// and anything else that needs other bundles, is for a replay (package chain) to decide.
//
// # What is shown
//
// Every header field, with IDs in hex and in their short form (§4.4) and times in RFC 3339
// UTC; the signature's algorithm, signer and value; and the payload with bytes rendered for
// their meaning: signing keys as their algorithm, key ID and base64 DER SubjectPublicKeyInfo;
// RSA and EC public keys as their key type, base64 SPKI and the SHA-256 of the SPKI (what
// "openssl pkey -pubin -outform DER | sha256sum" prints); approval signatures with whether
// each verified with a key the caller supplied. A bundle holds no secret, but the .byok
// ciphertext is a wrapped key and belongs in neither a terminal nor a log: a key package shows
// the .byok's members, size and SHA-256, and only the length of its ciphertext.
//
// [Rendering.JSON] is ASCII only: text from the medium (a generator string, a tag) is escaped
// rather than written raw, so it cannot drive a terminal.
//
// # Errors
//
// Bundle returns an error, wrapping a *bundle.ParseError, only when data is not a bundle at
// all (the header or the length is malformed, the version unknown, the size over the limit).
// A signature that does not verify, or a payload that does not open, is part of the
// rendering; [Rendering.Err] returns it as an error that wraps [ErrNoKey],
// bundle.ErrBadSignature, *bundle.HashMismatchError or *bundle.ParseError.
package inspect
