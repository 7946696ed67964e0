// Package byok encodes and decodes the .byok file of Azure Key Vault's vendor-neutral
// "Bring Your Own Key" specification: the wrapped target key and the identifier of the Key
// Exchange Key (KEK) it is wrapped for.
//
// # Format
//
// A .byok file is one JSON object with exactly these members, in this order when canonical:
//
//	{"schema_version":"1.0.0",
//	 "header":{"kid":"<versioned KEK id>","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},
//	 "ciphertext":"<base64url>",
//	 "generator":"<text>"}
//
// kid is the KEK's versioned identifier, https://<vault host>/keys/<name>/<version> (see
// [ParseKeyID]); ciphertext is the CKM_RSA_AES_KEY_WRAP output (the RSA-OAEP part, exactly the
// KEK modulus long, then the RFC 5649 part; see package keywrap); generator names the tool
// and HSM and is informational. Nothing else is defined, and the file carries no key type:
// that travels beside it.
//
// # Canonical form
//
// [File.Marshal] emits the canonical form: members in the order above, no insignificant
// whitespace, no trailing newline, unpadded base64url, and strings escaped minimally (only
// '"', '\\' and control characters; no HTML escaping, other characters as raw UTF-8). [Parse]
// accepts exactly the bytes Marshal emits, so a parsed file re-encodes to the same bytes.
// [ParseLenient] accepts what Azure accepts from other tools: any JSON whitespace and member
// order, padded or unpadded base64url, any valid JSON string escapes.
//
// Both parsers refuse input over [MaxFileSize] bytes before parsing, and unknown, duplicate
// or missing members, values other than the fixed ones, an invalid kid, and a ciphertext
// shorter than [MinCiphertextSize] or not a multiple of 8 bytes. Every such failure wraps a
// [*ParseError]. The RSA part's length, and so the KEK size, cannot be checked from the file
// alone; check it with keywrap.SplitRSAAES where the KEK is known.
//
// See Microsoft's [BYOK specification].
//
// [BYOK specification]: https://learn.microsoft.com/azure/key-vault/keys/byok-specification
package byok
