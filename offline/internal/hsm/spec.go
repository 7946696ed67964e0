package hsm

import (
	"fmt"
	"strconv"
	"strings"
)

// KeyType is the algorithm family of a target key.
type KeyType string

// Key types. The values are the ones used in KeySpec.String and in JSON.
const (
	RSA KeyType = "rsa"
	EC  KeyType = "ec"
	AES KeyType = "aes"
)

// KeySpec says what a target key is: its type, its size in bits and, for EC, its curve.
// For EC keys Bits is the curve's field size (256, 384, 521).
type KeySpec struct {
	Type  KeyType `json:"type"`
	Bits  int     `json:"bits"`
	Curve string  `json:"curve,omitempty"` // "P-256", "P-384" or "P-521" for EC; empty otherwise
}

// The target key specs Azure Key Vault accepts for BYOK (AES on Managed HSM only).
var (
	RSA2048 = KeySpec{Type: RSA, Bits: 2048}
	RSA3072 = KeySpec{Type: RSA, Bits: 3072}
	RSA4096 = KeySpec{Type: RSA, Bits: 4096}
	ECP256  = KeySpec{Type: EC, Bits: 256, Curve: "P-256"}
	ECP384  = KeySpec{Type: EC, Bits: 384, Curve: "P-384"}
	ECP521  = KeySpec{Type: EC, Bits: 521, Curve: "P-521"}
	AES128  = KeySpec{Type: AES, Bits: 128}
	AES192  = KeySpec{Type: AES, Bits: 192}
	AES256  = KeySpec{Type: AES, Bits: 256}
)

// KeySpecs returns every spec GenerateTarget accepts, in a stable order.
func KeySpecs() []KeySpec {
	return []KeySpec{RSA2048, RSA3072, RSA4096, ECP256, ECP384, ECP521, AES128, AES192, AES256}
}

// String returns the spec's name: "rsa-2048", "ec-p256", "aes-256".
func (s KeySpec) String() string {
	if s.Type == EC {
		return "ec-" + strings.ToLower(strings.ReplaceAll(s.Curve, "-", ""))
	}
	return string(s.Type) + "-" + strconv.Itoa(s.Bits)
}

// Valid reports whether s is one of KeySpecs.
func (s KeySpec) Valid() bool {
	for _, v := range KeySpecs() {
		if s == v {
			return true
		}
	}
	return false
}

// ParseKeySpec parses the name of a spec as KeySpec.String writes it ("rsa-3072",
// "ec-p384", "aes-256"); "ec-p-384" is accepted too. It returns an error wrapping ErrInvalid
// for any other string.
func ParseKeySpec(name string) (KeySpec, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.Replace(n, "ec-p-", "ec-p", 1)
	for _, s := range KeySpecs() {
		if s.String() == n {
			return s, nil
		}
	}
	return KeySpec{}, errorf("parse key spec", ErrInvalid, "%q is not one of rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384, ec-p521, aes-128, aes-192, aes-256", name)
}

// curveOIDs are the DER encodings of the named-curve OIDs that CKA_EC_PARAMS holds.
var curveOIDs = map[string][]byte{
	"P-256": {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}, // 1.2.840.10045.3.1.7
	"P-384": {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22},                   // 1.3.132.0.34
	"P-521": {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23},                   // 1.3.132.0.35
}

// curveByParams returns the curve name for a CKA_EC_PARAMS value, or "".
func curveByParams(params []byte) string {
	for name, oid := range curveOIDs {
		if string(oid) == string(params) {
			return name
		}
	}
	return ""
}

// ecSpec returns the EC spec for a curve name.
func ecSpec(curve string) (KeySpec, bool) {
	for _, s := range []KeySpec{ECP256, ECP384, ECP521} {
		if s.Curve == curve {
			return s, true
		}
	}
	return KeySpec{}, false
}

// MechanismName returns the PKCS#11 name of a mechanism type, e.g. "CKM_AES_KEY_WRAP_PAD",
// including PKCS#11 v3.0 names that miekg/pkcs11 lacks (CKM_AES_KEY_WRAP_KWP = 0x210B), or
// "CKM_0x…" for an unknown or vendor-defined type.
func MechanismName(m uint) string {
	if n, ok := mechanismNames[m]; ok {
		return n
	}
	if m&0x80000000 != 0 {
		return fmt.Sprintf("CKM_VENDOR_0x%08X", m)
	}
	return fmt.Sprintf("CKM_0x%08X", m)
}

// attributeName returns the name of an attribute type.
func attributeName(a uint) string {
	if n, ok := attributeNames[a]; ok {
		return n
	}
	return fmt.Sprintf("CKA_0x%08X", a)
}

// keyTypeName returns the name of a key type.
func keyTypeName(k uint) string {
	if n, ok := keyTypeNames[k]; ok {
		return n
	}
	return fmt.Sprintf("CKK_0x%08X", k)
}

// className returns the name of an object class.
func className(c uint) string {
	if n, ok := classNames[c]; ok {
		return n
	}
	return fmt.Sprintf("CKO_0x%08X", c)
}

// flagName is one bit of a flags word and its name.
type flagName struct {
	bit  uint
	name string
}

// mechanismFlagNames name the bits of CK_MECHANISM_INFO.flags.
var mechanismFlagNames = []flagName{
	{0x00000001, "CKF_HW"},
	{0x00000100, "CKF_ENCRYPT"},
	{0x00000200, "CKF_DECRYPT"},
	{0x00000400, "CKF_DIGEST"},
	{0x00000800, "CKF_SIGN"},
	{0x00001000, "CKF_SIGN_RECOVER"},
	{0x00002000, "CKF_VERIFY"},
	{0x00004000, "CKF_VERIFY_RECOVER"},
	{0x00008000, "CKF_GENERATE"},
	{0x00010000, "CKF_GENERATE_KEY_PAIR"},
	{0x00020000, "CKF_WRAP"},
	{0x00040000, "CKF_UNWRAP"},
	{0x00080000, "CKF_DERIVE"},
	{0x00100000, "CKF_EC_F_P"},
	{0x00200000, "CKF_EC_F_2M"},
	{0x00400000, "CKF_EC_ECPARAMETERS"},
	{0x00800000, "CKF_EC_NAMEDCURVE"},
	{0x01000000, "CKF_EC_UNCOMPRESS"},
	{0x02000000, "CKF_EC_COMPRESS"},
	{0x80000000, "CKF_EXTENSION"},
}

// tokenFlagNames name the bits of CK_TOKEN_INFO.flags.
var tokenFlagNames = []flagName{
	{0x00000001, "CKF_RNG"},
	{0x00000002, "CKF_WRITE_PROTECTED"},
	{0x00000004, "CKF_LOGIN_REQUIRED"},
	{0x00000008, "CKF_USER_PIN_INITIALIZED"},
	{0x00000020, "CKF_RESTORE_KEY_NOT_NEEDED"},
	{0x00000040, "CKF_CLOCK_ON_TOKEN"},
	{0x00000100, "CKF_PROTECTED_AUTHENTICATION_PATH"},
	{0x00000200, "CKF_DUAL_CRYPTO_OPERATIONS"},
	{0x00000400, "CKF_TOKEN_INITIALIZED"},
	{0x00000800, "CKF_SECONDARY_AUTHENTICATION"},
	{0x00010000, "CKF_USER_PIN_COUNT_LOW"},
	{0x00020000, "CKF_USER_PIN_FINAL_TRY"},
	{0x00040000, "CKF_USER_PIN_LOCKED"},
	{0x00080000, "CKF_USER_PIN_TO_BE_CHANGED"},
	{0x00100000, "CKF_SO_PIN_COUNT_LOW"},
	{0x00200000, "CKF_SO_PIN_FINAL_TRY"},
	{0x00400000, "CKF_SO_PIN_LOCKED"},
	{0x00800000, "CKF_SO_PIN_TO_BE_CHANGED"},
	{0x01000000, "CKF_ERROR_STATE"},
}

// slotFlagNames name the bits of CK_SLOT_INFO.flags.
var slotFlagNames = []flagName{
	{0x00000001, "CKF_TOKEN_PRESENT"},
	{0x00000002, "CKF_REMOVABLE_DEVICE"},
	{0x00000004, "CKF_HW_SLOT"},
}

// flagNames lists the names of the bits set in flags, and "0x…" for the remaining bits.
func flagNames(flags uint, names []flagName) []string {
	out := []string{}
	for _, f := range names {
		if flags&f.bit != 0 {
			out = append(out, f.name)
			flags &^= f.bit
		}
	}
	if flags != 0 {
		out = append(out, fmt.Sprintf("0x%08X", flags))
	}
	return out
}
