package kvemu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Key types (JSON Web Key "kty") the emulator knows.
const (
	ktyRSA    = "RSA"
	ktyRSAHSM = "RSA-HSM"
	ktyEC     = "EC"
	ktyECHSM  = "EC-HSM"
	ktyOct    = "oct"
	ktyOctHSM = "oct-HSM"
)

// Curve names as Key Vault spells them.
const (
	crvP256  = "P-256"
	crvP384  = "P-384"
	crvP521  = "P-521"
	crvP256K = "P-256K"
)

// Key operations.
const opImport = "import"

var knownOps = []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", opImport, "export"}

var (
	rsaSizes = []int{2048, 3072, 4096}
	octSizes = []int{128, 192, 256}
	curves   = []string{crvP256, crvP384, crvP521, crvP256K}
)

// defaultOps are the operations Key Vault gives a key created or imported without key_ops.
func defaultOps(kty string) []string {
	switch baseKty(kty) {
	case ktyRSA:
		return []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
	case ktyEC:
		return []string{"sign", "verify"}
	default:
		return []string{"encrypt", "decrypt", "wrapKey", "unwrapKey"}
	}
}

// baseKty maps RSA-HSM to RSA, EC-HSM to EC and oct-HSM to oct.
func baseKty(kty string) string { return strings.TrimSuffix(kty, "-HSM") }

var keyNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

func checkName(name string) *apiError {
	if !keyNameRE.MatchString(name) {
		return badParameter("The request URI contains an invalid name: %s. Key names may contain only 0-9, a-z, A-Z and -, and be 1 to 127 characters long.", name)
	}
	return nil
}

// newVersion returns a fresh key version: 32 lowercase hex digits, as Key Vault's.
func newVersion() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate version: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// keyVersion is one version of a key: what Key Vault stores, and the private material the
// emulator holds because it plays the HSM. It is stored as JSON in the state file.
//
// Fields are changed only under Server.mu; the key material is immutable.
type keyVersion struct {
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Seq       uint64            `json:"seq"` // creation order within the vault
	Kty       string            `json:"kty"`
	Crv       string            `json:"crv,omitempty"`
	Size      int               `json:"size,omitempty"` // bits, RSA and oct
	KeyOps    []string          `json:"key_ops"`
	Enabled   bool              `json:"enabled"`
	NotBefore *int64            `json:"nbf,omitempty"`
	Expires   *int64            `json:"exp,omitempty"`
	Created   int64             `json:"created"`
	Updated   int64             `json:"updated"`
	Tags      map[string]string `json:"tags,omitempty"`
	Imported  bool              `json:"imported"`
	// Private is the key material: PKCS#8 DER for RSA, the private scalar for EC, the key
	// bytes for oct. Never logged, never returned over the API.
	Private []byte `json:"private"`

	rsa *rsa.PrivateKey // parsed Private, for RSA
	pub jsonWebKey      // public JWK without kid and key_ops
}

// load parses Private and fills the cached public key.
func (v *keyVersion) load() error {
	switch baseKty(v.Kty) {
	case ktyRSA:
		k, err := x509.ParsePKCS8PrivateKey(v.Private)
		if err != nil {
			return fmt.Errorf("parse RSA key %s/%s: %w", v.Name, v.Version, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return fmt.Errorf("key %s/%s holds a %T, want RSA", v.Name, v.Version, k)
		}
		v.rsa = rk
		v.pub = rsaJWK(&rk.PublicKey)
	case ktyEC:
		pub, err := ecPublicJWK(v.Crv, v.Private)
		if err != nil {
			return fmt.Errorf("key %s/%s: %w", v.Name, v.Version, err)
		}
		v.pub = pub
	case ktyOct:
		v.pub = jsonWebKey{}
	default:
		return fmt.Errorf("key %s/%s has unknown type %q", v.Name, v.Version, v.Kty)
	}
	v.pub.Kty = v.Kty
	return nil
}

func rsaJWK(pub *rsa.PublicKey) jsonWebKey {
	e := big32(pub.E)
	return jsonWebKey{N: pub.N.Bytes(), E: e}
}

// big32 encodes a public exponent big-endian without leading zeros, as JWK requires.
func big32(e int) []byte {
	b := []byte{byte(e >> 24), byte(e >> 16), byte(e >> 8), byte(e)}
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

func nistCurve(crv string) elliptic.Curve {
	switch crv {
	case crvP256:
		return elliptic.P256()
	case crvP384:
		return elliptic.P384()
	case crvP521:
		return elliptic.P521()
	}
	return nil
}

// ecPublicJWK derives the public JWK of the private scalar d on crv.
func ecPublicJWK(crv string, d []byte) (jsonWebKey, error) {
	if crv == crvP256K {
		x, y, err := k1PublicKey(d)
		if err != nil {
			return jsonWebKey{}, err
		}
		return jsonWebKey{Crv: crv, X: x, Y: y}, nil
	}
	c := nistCurve(crv)
	if c == nil {
		return jsonWebKey{}, fmt.Errorf("unknown curve %q", crv)
	}
	k, err := ecdsa.ParseRawPrivateKey(c, d)
	if err != nil {
		return jsonWebKey{}, fmt.Errorf("parse %s private key: %w", crv, err)
	}
	return ecdsaJWK(crv, &k.PublicKey)
}

func ecdsaJWK(crv string, pub *ecdsa.PublicKey) (jsonWebKey, error) {
	raw, err := pub.Bytes() // uncompressed point 04 || X || Y
	if err != nil {
		return jsonWebKey{}, fmt.Errorf("encode %s public key: %w", crv, err)
	}
	n := (len(raw) - 1) / 2
	return jsonWebKey{Crv: crv, X: raw[1 : 1+n], Y: raw[1+n:]}, nil
}

// curveName returns Key Vault's name of an ECDSA key's curve.
func curveName(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return crvP256
	case elliptic.P384():
		return crvP384
	case elliptic.P521():
		return crvP521
	}
	return ""
}

// generate creates fresh key material of the given type in v (Kty, Crv and Size set).
func (v *keyVersion) generate(publicExponent int) error {
	switch baseKty(v.Kty) {
	case ktyRSA:
		if publicExponent != 0 && publicExponent != 65537 {
			return badParameter("The public exponent %d is not supported; use 65537.", publicExponent)
		}
		k, err := rsa.GenerateKey(rand.Reader, v.Size)
		if err != nil {
			return fmt.Errorf("generate RSA-%d key: %w", v.Size, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return fmt.Errorf("marshal RSA key: %w", err)
		}
		v.Private = der
	case ktyEC:
		if v.Crv == crvP256K {
			d, err := k1GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			v.Private = d
			break
		}
		k, err := ecdsa.GenerateKey(nistCurve(v.Crv), rand.Reader)
		if err != nil {
			return fmt.Errorf("generate %s key: %w", v.Crv, err)
		}
		d, err := k.Bytes()
		if err != nil {
			return fmt.Errorf("encode %s key: %w", v.Crv, err)
		}
		v.Private = d
	case ktyOct:
		b := make([]byte, v.Size/8)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("generate AES key: %w", err)
		}
		v.Private = b
	}
	return v.load()
}

// checkOps validates key_ops for a key of type kty. Azure requires a Key Exchange Key to have
// the import operation alone, and only RSA-HSM keys can be KEKs.
func checkOps(kty string, ops []string) *apiError {
	for _, op := range ops {
		if !slices.Contains(knownOps, op) {
			return badParameter("Invalid key operation: %s.", op)
		}
	}
	if slices.Contains(ops, opImport) {
		if kty != ktyRSAHSM {
			return badParameter("The import operation is allowed only on RSA-HSM keys (key exchange keys).")
		}
		if len(ops) != 1 {
			return badParameter("A key exchange key must have the import operation only; it cannot be combined with other operations.")
		}
	}
	return nil
}

// b64 is a byte string encoded as unpadded base64url in JSON; decoding also accepts padding.
type b64 []byte

// MarshalJSON implements json.Marshaler.
func (b b64) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *b64) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	d, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return errors.New("invalid base64url")
	}
	*b = d
	return nil
}

// jsonWebKey is a JSON Web Key as Key Vault sends and receives it.
type jsonWebKey struct {
	KID    string   `json:"kid,omitempty"`
	Kty    string   `json:"kty,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	N      b64      `json:"n,omitempty"`
	E      b64      `json:"e,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      b64      `json:"x,omitempty"`
	Y      b64      `json:"y,omitempty"`
	// Request-only members.
	T  b64 `json:"key_hsm,omitempty"`
	D  b64 `json:"d,omitempty"`
	DP b64 `json:"dp,omitempty"`
	DQ b64 `json:"dq,omitempty"`
	P  b64 `json:"p,omitempty"`
	Q  b64 `json:"q,omitempty"`
	QI b64 `json:"qi,omitempty"`
	K  b64 `json:"k,omitempty"`
}

// keyAttributes are Key Vault's key attributes. Times are Unix seconds.
type keyAttributes struct {
	Enabled         *bool           `json:"enabled,omitempty"`
	NotBefore       *int64          `json:"nbf,omitempty"`
	Expires         *int64          `json:"exp,omitempty"`
	Created         *int64          `json:"created,omitempty"`
	Updated         *int64          `json:"updated,omitempty"`
	RecoveryLevel   string          `json:"recoveryLevel,omitempty"`
	RecoverableDays *int32          `json:"recoverableDays,omitempty"`
	Exportable      *bool           `json:"exportable,omitempty"`
	Attestation     *keyAttestation `json:"attestation,omitempty"`
}

// keyBundle is a key as Key Vault returns it; the deleted-key members are set only for
// deleted keys.
type keyBundle struct {
	Key                jsonWebKey        `json:"key"`
	Attributes         keyAttributes     `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

// keyItem is one entry of a key list.
type keyItem struct {
	KID                string            `json:"kid"`
	Attributes         keyAttributes     `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

type keyList struct {
	Value    []keyItem `json:"value"`
	NextLink *string   `json:"nextLink"`
}
