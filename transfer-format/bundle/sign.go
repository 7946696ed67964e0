package bundle

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// KeyID returns the key ID of a public key: SHA-256 over a domain string and the key's DER
// SubjectPublicKeyInfo (§5.1). It fails for key types the format cannot sign with.
func KeyID(pub crypto.PublicKey) (ID, error) {
	if _, err := AlgOf(pub); err != nil {
		return ID{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ID{}, fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	return KeyIDOfSPKI(der), nil
}

// KeyIDOfSPKI returns the key ID of a DER SubjectPublicKeyInfo without parsing it.
func KeyIDOfSPKI(spki []byte) ID { return hashWithDomain(domainKeyID, spki) }

// AlgOf returns the signature algorithm for a public key: ECDSA P-256 or Ed25519.
func AlgOf(pub crypto.PublicKey) (Alg, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return 0, fmt.Errorf("%w: ECDSA keys must use P-256", ErrUnsupportedKey)
		}
		return AlgECDSAP256, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return 0, fmt.Errorf("%w: Ed25519 key of %d bytes", ErrUnsupportedKey, len(k))
		}
		return AlgEd25519, nil
	}
	return 0, fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}

// ParsePublicKey parses a DER SubjectPublicKeyInfo holding a key the format can verify with.
func ParsePublicKey(spki []byte) (crypto.PublicKey, Alg, error) {
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, 0, errorf("public key", "%v", err)
	}
	alg, err := AlgOf(pub)
	if err != nil {
		return nil, 0, &ParseError{What: "public key", Err: err}
	}
	return pub, alg, nil
}

// SignatureMessage returns the message a station signs for bundle id of format version v
// (§5.2).
func SignatureMessage(v uint16, id ID) []byte { return message(domainsOf(v).signature, id) }

// ApprovalMessage returns the message a custodian signs to approve bundle id in an approval
// bundle of format version v (§5.3): the version of the bundle that carries the signature,
// not that of the approved bundle.
func ApprovalMessage(v uint16, id ID) []byte { return message(domainsOf(v).approval, id) }

func message(domain string, id ID) []byte {
	m := make([]byte, 0, len(domain)+1+len(id))
	m = append(m, domain...)
	m = append(m, 0)
	return append(m, id[:]...)
}

// Sign signs msg with signer and returns the 64-byte signature of §5.2. For ECDSA the signer
// receives SHA-256(msg) and may return ASN.1 DER (as crypto11 and crypto/ecdsa do); the result
// is converted to r||s with s in the lower half of the group order.
func Sign(signer crypto.Signer, rand io.Reader, msg []byte) ([SignatureSize]byte, error) {
	var out [SignatureSize]byte
	alg, err := AlgOf(signer.Public())
	if err != nil {
		return out, err
	}
	switch alg {
	case AlgEd25519:
		sig, err := signer.Sign(rand, msg, crypto.Hash(0))
		if err != nil {
			return out, fmt.Errorf("ed25519 sign: %w", err)
		}
		if len(sig) != ed25519.SignatureSize {
			return out, fmt.Errorf("ed25519 sign: signature of %d bytes", len(sig))
		}
		copy(out[:], sig)
	case AlgECDSAP256:
		digest := sha256.Sum256(msg)
		der, err := signer.Sign(rand, digest[:], crypto.SHA256)
		if err != nil {
			return out, fmt.Errorf("ecdsa sign: %w", err)
		}
		var rs struct{ R, S *big.Int }
		rest, err := asn1.Unmarshal(der, &rs)
		if err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil {
			return out, errors.New("ecdsa sign: signer returned a malformed ASN.1 signature")
		}
		n := elliptic.P256().Params().N
		s := rs.S
		if s.Cmp(halfOrder) > 0 {
			s = new(big.Int).Sub(n, s)
		}
		if rs.R.Sign() <= 0 || rs.R.Cmp(n) >= 0 || s.Sign() <= 0 {
			return out, errors.New("ecdsa sign: signer returned an out-of-range signature")
		}
		rs.R.FillBytes(out[:32])
		s.FillBytes(out[32:])
	}
	return out, nil
}

var halfOrder = new(big.Int).Rsh(elliptic.P256().Params().N, 1)

// Verify checks a 64-byte signature of §5.2 over msg. It returns ErrBadSignature if the
// signature does not verify or is not in canonical form (ECDSA with high S).
func Verify(pub crypto.PublicKey, msg []byte, sig [SignatureSize]byte) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig[:]) {
			return nil
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return ErrUnsupportedKey
		}
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		if s.Cmp(halfOrder) > 0 {
			return ErrBadSignature
		}
		digest := sha256.Sum256(msg)
		if ecdsa.Verify(k, digest[:], r, s) {
			return nil
		}
	default:
		return ErrUnsupportedKey
	}
	return ErrBadSignature
}

// Approve returns a custodian's approval signature over bundle id, for an approval bundle of
// format version v (§5.3).
func Approve(custodian crypto.Signer, rand io.Reader, v uint16, id ID) ([SignatureSize]byte, error) {
	return Sign(custodian, rand, ApprovalMessage(v, id))
}

// VerifyApproval checks a custodian's approval signature over bundle id, carried by an
// approval bundle of format version v.
func VerifyApproval(custodian crypto.PublicKey, v uint16, id ID, sig [SignatureSize]byte) error {
	return Verify(custodian, ApprovalMessage(v, id), sig)
}
