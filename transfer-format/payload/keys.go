package payload

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// PublicKey is a signing key of a station or a custodian (§5.1).
type PublicKey struct {
	Alg  string `json:"alg"`  // "ecdsa-p256" or "ed25519"
	SPKI []byte `json:"spki"` // DER SubjectPublicKeyInfo
}

// NewPublicKey describes pub, which must be ECDSA P-256 or Ed25519.
func NewPublicKey(pub crypto.PublicKey) (PublicKey, error) {
	alg, err := bundle.AlgOf(pub)
	if err != nil {
		return PublicKey{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return PublicKey{}, err
	}
	return PublicKey{Alg: alg.String(), SPKI: der}, nil
}

// ID returns the key ID (§5.1).
func (k PublicKey) ID() bundle.ID { return bundle.KeyIDOfSPKI(k.SPKI) }

// Parse returns the crypto.PublicKey.
func (k PublicKey) Parse() (crypto.PublicKey, error) {
	pub, alg, err := bundle.ParsePublicKey(k.SPKI)
	if err != nil {
		return nil, err
	}
	if alg.String() != k.Alg {
		return nil, fmt.Errorf("key says %q but holds a %s key", k.Alg, alg)
	}
	return pub, nil
}

// Validate checks that the key parses, is in the canonical encoding of §5.1 and matches its
// algorithm name.
func (k PublicKey) Validate() error {
	if _, err := ParseSPKI(k.SPKI); err != nil {
		return err
	}
	_, err := k.Parse()
	return err
}

// ParseSPKI parses a DER SubjectPublicKeyInfo that must be in canonical form (SPEC.md §5.1,
// §7): exactly the bytes that encoding the key it holds gives again, so that no two byte
// strings carry one key and no parser's leniency decides what a payload means. It accepts
// ECDSA keys on P-256, P-384 and P-521 (the point uncompressed), Ed25519 keys, and RSA keys
// whose public exponent is at most 2^31 − 1; callers narrow the choice further.
func ParseSPKI(der []byte) (crypto.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("subject public key info: %v", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		// The bound a 32-bit reader's parser sets: the same verdict on every platform.
		if k.E > 1<<31-1 {
			return nil, errors.New("subject public key info: RSA public exponent above 2^31 - 1")
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521() {
			return nil, errors.New("subject public key info: EC curve is not P-256, P-384 or P-521")
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("subject public key info: unsupported key %T", pub)
	}
	again, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil || !bytes.Equal(again, der) {
		return nil, errors.New("subject public key info is not in canonical DER form")
	}
	return pub, nil
}

// parseTargetSPKI is ParseSPKI for the keys a target can be, RSA or EC (§7.4, §7.6).
func parseTargetSPKI(der []byte) (crypto.PublicKey, error) {
	pub, err := ParseSPKI(der)
	if err != nil {
		return nil, err
	}
	if _, ok := pub.(ed25519.PublicKey); ok {
		return nil, errors.New("subject public key info: an Ed25519 key is not an RSA or EC key")
	}
	return pub, nil
}

// KeyType names a target key type as policies and manifests spell it (§7.4).
type KeyType string

// The target key types.
const (
	RSA2048 KeyType = "RSA-2048"
	RSA3072 KeyType = "RSA-3072"
	RSA4096 KeyType = "RSA-4096"
	ECP256  KeyType = "EC-P256"
	ECP384  KeyType = "EC-P384"
	ECP521  KeyType = "EC-P521"
	AES128  KeyType = "AES-128"
	AES192  KeyType = "AES-192"
	AES256  KeyType = "AES-256"
)

// KeyTypes lists every target key type, in canonical order.
var KeyTypes = []KeyType{RSA2048, RSA3072, RSA4096, ECP256, ECP384, ECP521, AES128, AES192, AES256}

type keyTypeInfo struct {
	kty      string // Azure's kty
	size     int    // RSA modulus bits or AES key bits; 0 for EC
	crv      string // Azure's crv for EC
	strength int    // security strength in bits, NIST SP 800-57 Part 1 Table 2
}

var keyTypeInfos = map[KeyType]keyTypeInfo{
	RSA2048: {"RSA-HSM", 2048, "", 112},
	RSA3072: {"RSA-HSM", 3072, "", 128},
	// SP 800-57 lists 3072 → 128 and 7680 → 192; SP 800-56B Rev. 2 Appendix D estimates 152
	// bits for a 4096-bit modulus.
	RSA4096: {"RSA-HSM", 4096, "", 152},
	ECP256:  {"EC-HSM", 0, "P-256", 128},
	ECP384:  {"EC-HSM", 0, "P-384", 192},
	ECP521:  {"EC-HSM", 0, "P-521", 256},
	AES128:  {"oct-HSM", 128, "", 128},
	AES192:  {"oct-HSM", 192, "", 192},
	AES256:  {"oct-HSM", 256, "", 256},
}

// ParseKeyType parses a key type name such as "RSA-3072".
func ParseKeyType(s string) (KeyType, error) {
	if _, ok := keyTypeInfos[KeyType(s)]; ok {
		return KeyType(s), nil
	}
	names := make([]string, len(KeyTypes))
	for i, k := range KeyTypes {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown key type %q (one of %s)", s, strings.Join(names, ", "))
}

// Kty returns Azure's kty for the key type: RSA-HSM, EC-HSM or oct-HSM.
func (t KeyType) Kty() string { return keyTypeInfos[t].kty }

// Size returns the RSA modulus or AES key size in bits, 0 for EC.
func (t KeyType) Size() int { return keyTypeInfos[t].size }

// Curve returns Azure's curve name for EC key types, "" otherwise.
func (t KeyType) Curve() string { return keyTypeInfos[t].crv }

// Strength returns the security strength in bits (NIST SP 800-57 Part 1).
func (t KeyType) Strength() int { return keyTypeInfos[t].strength }

// IsSymmetric reports whether the key type is AES.
func (t KeyType) IsSymmetric() bool { return t.Kty() == "oct-HSM" }

// KeyTypeOf returns the key type of Azure's (kty, size, crv) triple.
func KeyTypeOf(kty string, size int, crv string) (KeyType, error) {
	for _, k := range KeyTypes {
		i := keyTypeInfos[k]
		if i.kty == kty && i.size == size && i.crv == crv {
			return k, nil
		}
	}
	return "", fmt.Errorf("unsupported key: kty %q, size %d, curve %q", kty, size, crv)
}

// KeyTypeOfPublic returns the key type of an RSA or EC public key.
func KeyTypeOfPublic(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return KeyTypeOf("RSA-HSM", k.N.BitLen(), "")
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECP256, nil
		case elliptic.P384():
			return ECP384, nil
		case elliptic.P521():
			return ECP521, nil
		}
	}
	return "", fmt.Errorf("unsupported public key %T", pub)
}

// RSAStrength returns the security strength of an RSA key of the given modulus size, or 0 if
// the size is not one Key Vault offers.
func RSAStrength(bits int) int {
	if t, err := KeyTypeOf("RSA-HSM", bits, ""); err == nil {
		return t.Strength()
	}
	return 0
}

// allowedOps are the key operations Key Vault accepts for each kty.
var allowedOps = map[string][]string{
	"RSA-HSM": {"decrypt", "encrypt", "sign", "unwrapKey", "verify", "wrapKey"},
	"EC-HSM":  {"sign", "verify"},
	"oct-HSM": {"decrypt", "encrypt", "unwrapKey", "wrapKey"},
}

// DefaultKeyOps returns the key operations given to an imported key of the key type when the
// operator names none.
func (t KeyType) DefaultKeyOps() []string { return slices.Clone(allowedOps[t.Kty()]) }

func checkKeyOps(kty string, ops []string) error {
	if len(ops) == 0 {
		return errors.New("key_ops is empty")
	}
	if !slices.IsSorted(ops) || len(slices.Compact(slices.Clone(ops))) != len(ops) {
		return errors.New("key_ops must be sorted and without duplicates")
	}
	for _, op := range ops {
		if !slices.Contains(allowedOps[kty], op) {
			return fmt.Errorf("key operation %q is not allowed for %s", op, kty)
		}
	}
	return nil
}
