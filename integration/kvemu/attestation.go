package kvemu

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Key attestation is a stand-in. Azure Managed HSM returns blobs in the HSM vendor's
// format (Marvell LiquidSecurity) with a certificate chain to the vendor's root; the
// emulator cannot produce those. It returns instead, in the same KeyAttestation members:
//
//   - certificatePemFile: the PEM chain "stand-in HSM device" certificate, then the
//     "stand-in HSM vendor root" certificate (AttestationRootPEM).
//   - privateKeyAttestation (every key) and publicKeyAttestation (RSA and EC keys): a JWS
//     compact serialization, ES256 signed by the device key, whose payload is an
//     AttestationStatement in JSON.
//
// VerifyAttestation checks both. Code that verifies real Azure attestations must not accept
// this format.

// AttestationFormat names the stand-in attestation format.
const AttestationFormat = "kvemu-attestation-v1"

// AttestationStatement is what the stand-in HSM vouches for about one key version.
type AttestationStatement struct {
	Format string `json:"format"` // AttestationFormat
	Part   string `json:"part"`   // "private" or "public"
	KID    string `json:"kid"`
	Kty    string `json:"kty"`
	Crv    string `json:"crv,omitempty"`
	// KeySize is the size in bits of RSA and AES keys.
	KeySize int `json:"key_size,omitempty"`
	// Origin is "generated" (made in the HSM) or "imported" (BYOK).
	Origin string `json:"origin"`
	// Extractable is always false: key material never leaves the HSM in the clear.
	Extractable bool `json:"extractable"`
	// N, E (RSA) and X, Y (EC) are the public key, unpadded base64url as in a JWK.
	N string `json:"n,omitempty"`
	E string `json:"e,omitempty"`
	X string `json:"x,omitempty"`
	Y string `json:"y,omitempty"`
}

// keyAttestation is KeyAttestation on the wire.
type keyAttestation struct {
	CertificatePEMFile    b64    `json:"certificatePemFile,omitempty"`
	PrivateKeyAttestation b64    `json:"privateKeyAttestation,omitempty"`
	PublicKeyAttestation  b64    `json:"publicKeyAttestation,omitempty"`
	Version               string `json:"version,omitempty"`
}

var jwsHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"` + AttestationFormat + `"}`))

// attest builds the attestation of v, whose key identifier is kid.
func attest(device, root *certKey, v *keyVersion, kid string) (*keyAttestation, error) {
	st := AttestationStatement{
		Format: AttestationFormat, KID: kid, Kty: v.Kty, Crv: v.Crv, KeySize: v.Size,
		Origin: "generated",
		N:      enc(v.pub.N), E: enc(v.pub.E), X: enc(v.pub.X), Y: enc(v.pub.Y),
	}
	if v.Imported {
		st.Origin = "imported"
	}
	att := &keyAttestation{
		CertificatePEMFile: append(device.certPEM(), root.certPEM()...),
		Version:            "1.0",
	}
	st.Part = "private"
	blob, err := signStatement(device.key, st)
	if err != nil {
		return nil, err
	}
	att.PrivateKeyAttestation = blob
	if baseKty(v.Kty) != ktyOct {
		st.Part = "public"
		if att.PublicKeyAttestation, err = signStatement(device.key, st); err != nil {
			return nil, err
		}
	}
	return att, nil
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func signStatement(key *ecdsa.PrivateKey, st AttestationStatement) ([]byte, error) {
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode attestation: %w", err)
	}
	signingInput := jwsHeader + "." + enc(payload)
	digest := sha256.Sum256([]byte(signingInput))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("sign attestation: %w", err)
	}
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	return []byte(signingInput + "." + enc(sig)), nil
}

// ErrAttestation is wrapped by every VerifyAttestation failure.
var ErrAttestation = errors.New("attestation verification failed")

// VerifyAttestation verifies a stand-in attestation blob: the certificate chain in certPEM
// (leaf first) must lead to one of roots, and blob must be signed by the leaf. It returns
// the attested statement, or an error wrapping ErrAttestation.
func VerifyAttestation(certPEM, blob []byte, roots *x509.CertPool) (*AttestationStatement, error) {
	var certs []*x509.Certificate
	for rest := certPEM; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: parse certificate: %v", ErrAttestation, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no certificate", ErrAttestation)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("%w: certificate chain: %v", ErrAttestation, err)
	}
	pub, ok := certs[0].PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: device key is %T, want ECDSA", ErrAttestation, certs[0].PublicKey)
	}
	parts := strings.Split(string(blob), ".")
	if len(parts) != 3 || parts[0] != jwsHeader {
		return nil, fmt.Errorf("%w: not a %s JWS", ErrAttestation, AttestationFormat)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, fmt.Errorf("%w: malformed signature", ErrAttestation)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return nil, fmt.Errorf("%w: bad signature", ErrAttestation)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: malformed payload", ErrAttestation)
	}
	var st AttestationStatement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("%w: decode statement: %v", ErrAttestation, err)
	}
	if st.Format != AttestationFormat {
		return nil, fmt.Errorf("%w: format %q", ErrAttestation, st.Format)
	}
	return &st, nil
}
