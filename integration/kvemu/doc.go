// Package kvemu is a local Azure Key Vault emulator: an HTTPS server on loopback that
// speaks enough of the Key Vault keys data-plane API (api-version 2025-07-01, what azkeys
// v1.5.0 sends) for the unmodified azkeys client, and that really unwraps BYOK imports with
// the Key Exchange Key it holds. End-to-end tests, benchmarks and the demo use it in place
// of a vault; it holds private keys in memory (and in its state file) because it plays the
// HSM, and must never listen beyond loopback.
//
// # Protocol
//
// TLS uses the emulator's own CA (Server.CACertPEM, Config.CAFile); the certificate covers
// 127.0.0.1, ::1 and localhost, and HTTP/1.1 only is served so connection faults are real
// TCP resets. A request without a bearer token is answered as Key Vault does, with 401 and
//
//	WWW-Authenticate: Bearer authorization="https://login.kvemu.invalid/<tenant>", resource="https://vault.azure.net"
//
// (resource https://managedhsm.azure.net for a Managed HSM), which the SDK's challenge
// policy needs before it sends the real request with its body. The token must equal
// Config.Token (compared in constant time, never logged); a wrong one gets 401 Unauthorized.
// Errors have Key Vault's shape, {"error":{"code":"BadParameter","message":"..."}}.
//
// Emulated operations: CreateKey (RSA-HSM 2048/3072/4096, EC-HSM P-256/P-384/P-521/P-256K,
// oct-HSM 128/192/256 on Managed HSM only; RSA and EC software keys on premium), ImportKey
// (BYOK only), GetKey (with a version, without, and with the trailing slash azkeys sends for
// an empty version), UpdateKey, DeleteKey, the key and version lists (paged with nextLink
// and maxresults, page size Config.PageSize), GetDeletedKey, ListDeletedKeys,
// PurgeDeletedKey, RecoverDeletedKey, and on Managed HSM GetKeyAttestation. Cryptographic
// operations, backup, restore, rotation and release answer 501 NotSupported. Key names are
// case-insensitive; versions are 32 lowercase hex digits. The import operation is exclusive,
// as Azure requires of a KEK: a key with "import" has no other operation and is RSA-HSM.
//
// # BYOK import
//
// key.key_hsm is the .byok file; it is parsed with byok.ParseLenient (Azure accepts other
// tools' formatting). Its kid must name a KEK of this vault (same host and port), existing,
// with the import operation, enabled, active and not expired. The ciphertext is unwrapped
// with keywrap.UnwrapRSAAES. RSA and EC targets must be PKCS#8 and match kty and crv (crv is
// required for EC-HSM); RSA sizes are 2048, 3072 and 4096 only. Up to 7 trailing zero bytes
// after the PKCS#8 (SoftHSM 2.6.1 pads before RFC 5649) are accepted with a warning log.
// oct-HSM targets are raw 16, 24 or 32 bytes, Managed HSM only. The response carries the
// public JWK (nothing for oct-HSM, as Azure). Every refusal is 400 BadParameter; nothing is
// stored.
//
// # Throttling
//
// Per vault, per sliding Limits.Window (10 s by default), at Azure's published limits for
// HSM keys: key creation 10; other operations RSA-2048 2000, RSA-3072 500, RSA-4096 250,
// EC 2000. An import counts in the "other operations" bucket of the imported key's type and
// size (a refused import, whose size may be unknown, in the bucket of its kty, RSA as
// 2048). AES keys have their own bucket (2000), lists and unknown keys the vault bucket
// (4000). Over the limit the answer is 429 Throttled with Retry-After in seconds; refused
// requests use no quota. Stats counts 429s and, per bucket, the peak number of requests
// within one window, so a test can assert a client never exceeded a limit.
//
// # Faults
//
// Server.SetLatency adds a delay to every request; Server.InjectFault queues faults for the
// next N authenticated requests matching a method and a path pattern: an error status (500,
// 503, 429 with Retry-After), a connection reset without executing the request, a slow
// response (executed, then held), and commit-then-reset (executed, a write committed, then
// the connection reset), which shows a client an ambiguous failure after a committed write;
// a late commit (the request held for a delay before it runs, whatever the client does, so
// that a client that timed out and looks at once finds nothing, and the write lands
// later); a lie (executed, then the successful answer changed: another vault or key name in
// the kid, a malformed or oversized kid or body, other members such as kty, key_ops,
// attributes or tags, extra tags; see Lie); and a pass (executed normally, to interleave
// clean requests with faults in the queue).
//
// # Tags
//
// A key version holds at most 15 tags (names 1 to 512 characters, values at most 256), as
// in Azure; more is refused on creation, import and update with 400 BadParameter
// "Property has invalid value" and nothing is stored.
//
// # Observing
//
// Server.Stats, Server.KeyNames and Server.KeyVersions read counters and state. The same,
// and fault injection, are on the admin endpoint (plain HTTP on its own loopback port,
// Config.AdminAddr, bearer token required; routes are listed in admin.go) for tests in other
// processes.
//
// # Attestation (stand-in)
//
// A Managed HSM answers GetKeyAttestation with an attestation signed by an emulator
// "stand-in HSM vendor" CA (Server.AttestationRootPEM), not the real vendor format; see
// VerifyAttestation. A premium vault answers 400 BadParameter.
//
// # State
//
// Without Config.StatePath everything is in memory. With it, a bbolt file (schema in
// store.go) keeps keys, soft deletions, the TLS CA and certificate, the attestation CA and
// the last listen address across restarts; each write is committed before its response is
// sent. Restart on the same address to keep key identifiers (which contain the port) valid.
package kvemu
