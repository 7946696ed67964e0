// Package vault is byok-online's adapter to Azure Key Vault: the few key operations the
// online station needs, over the unmodified azkeys client, with its quirks handled here once.
//
// # What it does not do for the caller
//
// Every method sends exactly one request (plus the authentication challenge the SDK makes on
// a client's first call): the SDK's retry policy is off for every call. ImportKey and
// CreateKey are not idempotent, and a retried PUT after a lost response creates a second key
// version (FIELD-NOTES.md); retries, waits for Retry-After and reconciliation belong to the
// caller, which knows what a retry means (package upload).
//
// # Errors
//
// Failures are *Error values whose Kind is one of the sentinels below, checked with
// errors.Is: ErrNotFound (404), ErrConflict (409), ErrThrottled (429, with RetryAfter),
// ErrServer (5xx and 408: the request may or may not have taken effect), ErrTransport (no
// response: reset, timeout), ErrUnauthorized (401), ErrRefused (every other 4xx: a
// definitive refusal), ErrConnect (no connection: refused, unknown host, a failed TLS
// handshake) and ErrAuth (the credential gave no token, or the SDK did not accept Key Vault's
// authentication challenge). [Ambiguous] tells the two kinds after which a write may have
// happened; [NothingDone] the three after which nothing was done and a retry cannot help.
// The command line reports every *Error as a Key Vault failure. Messages carry Key
// Vault's error code and message, never a token or key material.
//
// # Hostile answers
//
// Every byte Key Vault returns may be hostile. A response body longer than MaxAnswerBytes is
// refused as it is read (ErrTransport wrapping ErrAnswerTooLarge: ambiguous, as the request
// may have taken effect). A key whose public part does not parse is returned with PublicErr
// set, the rest of what Key Vault claimed kept, so that the caller can say what the vault
// holds; comparing the answer with the request is the caller's (package upload).
//
// # Clients
//
// [Azure] builds its azkeys client on first use (so commands that never reach Azure never
// build a credential): azidentity's default credential chain, or a static bearer token from
// a file, over TLS trusting the system roots plus an optional CA file. The fake in package
// vaultfake implements [Vault] for unit tests.
package vault

import (
	"context"
	"crypto"
	"time"
)

// Vault is one Key Vault or Managed HSM, as byok-online uses it.
type Vault interface {
	// URL returns the vault URL, https://<host>[:<port>].
	URL() string
	// CreateKey creates a new key (or a new version of an existing one) in the HSM.
	CreateKey(ctx context.Context, name string, p CreateParams) (*Key, error)
	// GetKey returns a key version; an empty version means the latest.
	GetKey(ctx context.Context, name, version string) (*Key, error)
	// ImportKey imports a BYOK transfer blob as a new version of the named key.
	ImportKey(ctx context.Context, name string, p ImportParams) (*Key, error)
	// KeyVersions lists every version of the named key; a missing key is ErrNotFound.
	KeyVersions(ctx context.Context, name string) ([]Version, error)
	// KeyAttestation returns the attestation of a key version (Managed HSM only).
	KeyAttestation(ctx context.Context, name, version string) (*Attestation, error)
}

// Key is a key version as Key Vault describes it: its public part and attributes.
type Key struct {
	KID    string // versioned key identifier
	Kty    string // RSA-HSM, EC-HSM, oct-HSM (or the software types)
	Size   int    // RSA modulus bits (0 if unknown)
	Curve  string // EC curve name, "P-256"...
	KeyOps []string
	N, E   []byte           // RSA public key, as Key Vault sent them
	Public crypto.PublicKey // *rsa.PublicKey or *ecdsa.PublicKey; nil for oct keys
	// PublicErr says why Public is nil although Key Vault sent key material (or no key at
	// all): the answer does not describe a usable key.
	PublicErr error
	Enabled   bool
	// NotBefore, Expires and Created are zero when Key Vault did not send them.
	NotBefore, Expires, Created time.Time
	Tags                        map[string]string
}

// Version is one entry of a key's version list.
type Version struct {
	KID     string
	Version string
	Enabled bool
	Created time.Time
	Tags    map[string]string
}

// CreateParams describe a key to create.
type CreateParams struct {
	Kty     string // RSA-HSM for a KEK
	Size    int
	KeyOps  []string
	Expires time.Time // zero for none
	Tags    map[string]string
}

// ImportParams describe a BYOK import.
type ImportParams struct {
	Kty       string // RSA-HSM, EC-HSM or oct-HSM
	Curve     string // EC-HSM only
	KeyOps    []string
	BYOK      []byte // the .byok file; sent as key.key_hsm
	Enabled   bool
	NotBefore time.Time // zero for none
	Expires   time.Time // zero for none
	Tags      map[string]string
}

// Attestation is a Managed HSM key attestation as Key Vault returns it.
type Attestation struct {
	CertificatePEM []byte // the certificate chain, PEM, leaf first
	PrivateKey     []byte // the attestation of the private key
	PublicKey      []byte // the attestation of the public key (RSA, EC)
	Version        string
}
