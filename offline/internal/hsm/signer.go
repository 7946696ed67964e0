//go:build cgo

package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"
	"io"
	"sync"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// SigningKey is a station or custodian signing key: an ECDSA P-256 key pair in the token,
// non-extractable and sensitive. It implements crypto.Signer through crypto11; signatures
// are ASN.1 DER and verify with ecdsa.VerifyASN1. Sign expects a digest (e.g. SHA-256).
type SigningKey struct {
	// Label and ID are the key pair's CKA_LABEL and CKA_ID.
	Label string
	ID    []byte
	// Attributes are the private key's PKCS#11 attributes, as for Key.Attributes.
	Attributes map[string]string

	tok *Token
	pub *ecdsa.PublicKey

	mu     sync.Mutex // guards signer and gen
	signer crypto11.Signer
	gen    uint64
}

// Public returns the *ecdsa.PublicKey.
func (s *SigningKey) Public() crypto.PublicKey { return s.pub }

// Sign signs digest with the token key. If WrapTrusted logged the user out and in since the
// key was found, the key is looked up again first. Errors wrap ErrKeyNotFound or the
// token's failure.
func (s *SigningKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	op := fmt.Sprintf("sign with %q", s.Label)
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.tok.gen.Load(); g != s.gen {
		signer, err := s.tok.c11.FindKeyPair(s.ID, []byte(s.Label))
		if err != nil {
			return nil, p11Err(op, err)
		}
		if signer == nil {
			return nil, errorf(op, ErrKeyNotFound, "key pair with id %x is gone", s.ID)
		}
		s.signer, s.gen = signer, g
	}
	sig, err := s.signer.Sign(rand, digest, opts)
	if err != nil {
		return nil, p11Err(op, err)
	}
	return sig, nil
}

// GenerateSigner generates a station or custodian signing key: an ECDSA P-256 token key
// pair with CKA_LABEL label and CKA_ID id (both required), the private key CKA_PRIVATE,
// CKA_SENSITIVE, not CKA_EXTRACTABLE, usable only to sign.
//
// Errors wrap ErrInvalid (empty label or id), ErrExists (an object with the label or the id
// exists: nothing is generated) or the token's failure.
func (t *Token) GenerateSigner(ctx context.Context, label string, id []byte) (*SigningKey, error) {
	op := fmt.Sprintf("generate signing key %q", label)
	switch {
	case label == "":
		return nil, errorf("generate signing key", ErrInvalid, "label is required")
	case len(id) == 0:
		return nil, errorf(op, ErrInvalid, "id is required")
	}
	if err := t.lock(ctx, op); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	if err := t.existsLocked(op, label, id); err != nil {
		return nil, err
	}
	pubAttrs, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, errorf(op, ErrInvalid, "%w", err)
	}
	privAttrs, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, errorf(op, ErrInvalid, "%w", err)
	}
	pubAttrs.AddIfNotPresent([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false)})
	privAttrs.AddIfNotPresent([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
	})
	signer, err := t.c11.GenerateECDSAKeyPairWithAttributes(pubAttrs, privAttrs, elliptic.P256())
	if err != nil {
		return nil, p11Err(op, err)
	}
	s, err := t.signingKeyLocked(op, signer, label)
	if err != nil {
		return nil, err
	}
	t.log.Info("generated signing key", "label", label, "id", fmt.Sprintf("%x", id))
	return s, nil
}

// FindSigner finds the signing key labelled label. Errors wrap ErrKeyNotFound,
// ErrAmbiguous, or ErrUnsupportedKey if it is not an ECDSA P-256 key or is extractable or
// not sensitive (a station or custodian key must never leave the token).
func (t *Token) FindSigner(ctx context.Context, label string) (*SigningKey, error) {
	op := fmt.Sprintf("find signing key %q", label)
	if label == "" {
		return nil, errorf("find signing key", ErrInvalid, "label is required")
	}
	if err := t.lock(ctx, op); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	signers, err := t.c11.FindKeyPairs(nil, []byte(label))
	if err != nil {
		return nil, p11Err(op, err)
	}
	switch len(signers) {
	case 0:
		return nil, errorOf(op, ErrKeyNotFound)
	case 1:
	default:
		return nil, errorf(op, ErrAmbiguous, "%d key pairs carry the label", len(signers))
	}
	return t.signingKeyLocked(op, signers[0], label)
}

// signingKeyLocked checks a crypto11 signer and reads its private key's attributes.
func (t *Token) signingKeyLocked(op string, signer crypto11.Signer, label string) (*SigningKey, error) {
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errorf(op, ErrUnsupportedKey, "signing keys are ECDSA P-256, this is %T", signer.Public())
	}
	hs, err := t.findLocked([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	})
	if err != nil {
		return nil, p11Err(op, err)
	}
	if len(hs) != 1 {
		return nil, errorf(op, ErrAmbiguous, "%d private keys carry the label", len(hs))
	}
	attrs, err := t.attributesLocked(op, hs[0], pkcs11.CKO_PRIVATE_KEY)
	if err != nil {
		return nil, err
	}
	if attrs["CKA_EXTRACTABLE"] != "false" || attrs["CKA_SENSITIVE"] != "true" {
		return nil, errorf(op, ErrUnsupportedKey, "signing keys must be sensitive and non-extractable (CKA_SENSITIVE %s, CKA_EXTRACTABLE %s)",
			attrs["CKA_SENSITIVE"], attrs["CKA_EXTRACTABLE"])
	}
	id, err := t.mustAttrLocked(op, hs[0], pkcs11.CKA_ID)
	if err != nil {
		return nil, err
	}
	return &SigningKey{
		Label:      label,
		ID:         id,
		Attributes: attrs,
		tok:        t,
		pub:        pub,
		signer:     signer,
		gen:        t.gen.Load(),
	}, nil
}
