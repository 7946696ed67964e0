//go:build !cgo

package hsm

import (
	"context"
	"crypto"
	"crypto/rsa"
	"io"

	"github.com/airgap-byok/airgap-byok/shared/secret"
)

// This file stands in for the PKCS#11 implementation when cgo is disabled: miekg/pkcs11
// loads the module with dlopen, which needs cgo. Every operation fails with ErrNoCGO. The
// method set matches the cgo build, so code on top of this package compiles either way.

// Token is an open PKCS#11 token; without cgo none can be opened.
type Token struct{}

// SigningKey is a station or custodian signing key; without cgo none exists.
type SigningKey struct {
	Label      string
	ID         []byte
	Attributes map[string]string
}

func noCGO(op string) error { return errorOf(op, ErrNoCGO) }

// Open fails with ErrNoCGO: rebuild with CGO_ENABLED=1.
func Open(_ context.Context, cfg Config) (*Token, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return nil, noCGO("open token")
}

// Close does nothing.
func (t *Token) Close() error { return nil }

// Label returns "".
func (t *Token) Label() string { return "" }

// Serial returns "".
func (t *Token) Serial() string { return "" }

// Info fails with ErrNoCGO.
func (t *Token) Info(context.Context) (Info, error) { return Info{}, noCGO("token info") }

// Mechanisms fails with ErrNoCGO.
func (t *Token) Mechanisms(context.Context) ([]Mechanism, error) {
	return nil, noCGO("list mechanisms")
}

// WrapMethod fails with ErrNoCGO.
func (t *Token) WrapMethod(context.Context) (WrapMethod, error) {
	return WrapMethod{}, noCGO("choose wrap method")
}

// Check fails with ErrNoCGO.
func (t *Token) Check(context.Context) (CheckReport, error) {
	return CheckReport{}, noCGO("check token")
}

// FindTarget fails with ErrNoCGO.
func (t *Token) FindTarget(context.Context, KeyRef) (*Key, error) {
	return nil, noCGO("find target key")
}

// GenerateTarget fails with ErrNoCGO.
func (t *Token) GenerateTarget(context.Context, KeySpec, string, TargetOptions) (*Key, error) {
	return nil, noCGO("generate target key")
}

// Wrap fails with ErrNoCGO.
func (t *Token) Wrap(context.Context, *Key, *rsa.PublicKey) (*Wrapped, error) {
	return nil, noCGO("wrap key")
}

// WrapTrusted fails with ErrNoCGO.
func (t *Token) WrapTrusted(context.Context, *Key, *rsa.PublicKey, secret.Value) (*Wrapped, error) {
	return nil, noCGO("wrap key with trusted")
}

// GenerateSigner fails with ErrNoCGO.
func (t *Token) GenerateSigner(context.Context, string, []byte) (*SigningKey, error) {
	return nil, noCGO("generate signing key")
}

// FindSigner fails with ErrNoCGO.
func (t *Token) FindSigner(context.Context, string) (*SigningKey, error) {
	return nil, noCGO("find signing key")
}

// Public returns nil.
func (s *SigningKey) Public() crypto.PublicKey { return nil }

// Sign fails with ErrNoCGO.
func (s *SigningKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, noCGO("sign")
}

// cgoEnabled tells the tests which build they run in.
const cgoEnabled = false

// TokenLabels fails with ErrNoCGO.
func TokenLabels(context.Context, string) ([]string, error) { return nil, noCGO("list tokens") }
