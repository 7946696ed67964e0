package hsm

import (
	"fmt"
	"strings"
)

// Version is a PKCS#11 version: cryptoki, library, hardware or firmware.
type Version struct {
	Major uint8 `json:"major"`
	Minor uint8 `json:"minor"`
}

// String returns "major.minor".
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// less reports whether v is older than w.
func (v Version) less(w Version) bool {
	return v.Major < w.Major || v.Major == w.Major && v.Minor < w.Minor
}

// Info describes the PKCS#11 module, the slot and the token a Token is open on.
type Info struct {
	Library LibraryInfo `json:"library"`
	Slot    SlotInfo    `json:"slot"`
	Token   TokenInfo   `json:"token"`
}

// LibraryInfo is the module's CK_INFO.
type LibraryInfo struct {
	Path            string  `json:"path"`
	CryptokiVersion Version `json:"cryptoki_version"`
	Manufacturer    string  `json:"manufacturer"`
	Description     string  `json:"description"`
	Version         Version `json:"version"`
}

// SlotInfo is the slot's CK_SLOT_INFO. Slot IDs are assigned by the module and may change
// between runs (SoftHSM reassigns them); select tokens by label and serial.
type SlotInfo struct {
	ID              uint     `json:"id"`
	Description     string   `json:"description"`
	Manufacturer    string   `json:"manufacturer"`
	Flags           []string `json:"flags"`
	HardwareVersion Version  `json:"hardware_version"`
	FirmwareVersion Version  `json:"firmware_version"`
}

// TokenInfo is the token's CK_TOKEN_INFO.
type TokenInfo struct {
	Label           string   `json:"label"`
	Manufacturer    string   `json:"manufacturer"`
	Model           string   `json:"model"`
	Serial          string   `json:"serial"`
	HardwareVersion Version  `json:"hardware_version"`
	FirmwareVersion Version  `json:"firmware_version"`
	Flags           []string `json:"flags"`
	FlagBits        uint     `json:"flag_bits"`
}

// Mechanism is one entry of the token's mechanism list with its CK_MECHANISM_INFO.
type Mechanism struct {
	Type       uint     `json:"type"`
	Name       string   `json:"name"`
	MinKeySize uint     `json:"min_key_size"`
	MaxKeySize uint     `json:"max_key_size"`
	Flags      []string `json:"flags"`
	FlagBits   uint     `json:"flag_bits"`
}

// Can reports whether the mechanism has every bit of flag set (e.g. CKF_WRAP = 0x20000).
func (m Mechanism) Can(flag uint) bool { return m.FlagBits&flag == flag }

// Mechanism types and flags the wrap path selection needs. They are PKCS#11 numbers, kept
// here so that the selection is plain Go and testable without a module.
const (
	ckmRSAPKCSOAEP    = 0x00000009
	ckmRSAAESKeyWrap  = 0x00001054
	ckmAESKeyGen      = 0x00001080
	ckmAESKeyWrapPad  = 0x0000210A // SoftHSM's RFC 5649 mechanism (PKCS#11 v2.40 draft number)
	ckmAESKeyWrapKWP  = 0x0000210B // PKCS#11 v3.0 RFC 5649 mechanism (Luna, nShield, YubiHSM)
	ckfGenerate       = 0x00008000
	ckfWrap           = 0x00020000
	ephemeralAESBytes = 32 // Azure's BYOK specification: the ephemeral AES key is AES-256
)

// WrapPath is how a token wraps a target key for Azure.
type WrapPath string

const (
	// PathOneShot is one C_WrapKey with CKM_RSA_AES_KEY_WRAP (0x1054): the token makes the
	// ephemeral AES key internally and never exposes it as an object.
	PathOneShot WrapPath = "one-shot"
	// PathTwoStep is the equivalent sequence for tokens without CKM_RSA_AES_KEY_WRAP: a
	// session AES-256 key (sensitive, extractable), RFC 5649 of the target with it, then
	// CKM_RSA_PKCS_OAEP (SHA-1, MGF1-SHA-1) of the AES key with the KEK, RSA part first, and
	// the AES key destroyed. The bytes are the same as the one-shot path's.
	PathTwoStep WrapPath = "two-step"
)

// WrapMethod is the wrap path chosen for a token and the mechanisms it uses.
type WrapMethod struct {
	Path WrapPath `json:"path"`
	// KeyWrapMechanism is CKM_RSA_AES_KEY_WRAP for the one-shot path, or the RFC 5649
	// mechanism (0x210B preferred over 0x210A) for the two-step path.
	KeyWrapMechanism uint `json:"key_wrap_mechanism"`
	// Mechanisms names the mechanisms in the order Wrap calls them.
	Mechanisms []string `json:"mechanisms"`
}

// String describes the method, e.g. "two-step: CKM_AES_KEY_GEN, CKM_AES_KEY_WRAP_PAD (0x210A), CKM_RSA_PKCS_OAEP".
func (m WrapMethod) String() string {
	return fmt.Sprintf("%s: %s (key wrap 0x%X)", m.Path, strings.Join(m.Mechanisms, ", "), m.KeyWrapMechanism)
}

// ChooseWrapMethod selects the wrap path from a token's mechanism list: the one-shot
// CKM_RSA_AES_KEY_WRAP when it is listed with CKF_WRAP; otherwise the two-step path, which
// needs CKM_AES_KEY_GEN with CKF_GENERATE, an RFC 5649 mechanism with CKF_WRAP
// (CKM_AES_KEY_WRAP_KWP 0x210B preferred over CKM_AES_KEY_WRAP_PAD 0x210A) and
// CKM_RSA_PKCS_OAEP with CKF_WRAP. It returns an error wrapping ErrMechanism, naming what is
// missing, when neither path is available.
func ChooseWrapMethod(mechs []Mechanism) (WrapMethod, error) {
	has := func(typ, flag uint) bool {
		for _, m := range mechs {
			if m.Type == typ && m.Can(flag) {
				return true
			}
		}
		return false
	}
	if has(ckmRSAAESKeyWrap, ckfWrap) {
		return WrapMethod{
			Path:             PathOneShot,
			KeyWrapMechanism: ckmRSAAESKeyWrap,
			Mechanisms:       []string{MechanismName(ckmRSAAESKeyWrap)},
		}, nil
	}
	var missing []string
	if !has(ckmAESKeyGen, ckfGenerate) {
		missing = append(missing, "CKM_AES_KEY_GEN with CKF_GENERATE")
	}
	kwp := uint(0)
	switch {
	case has(ckmAESKeyWrapKWP, ckfWrap):
		kwp = ckmAESKeyWrapKWP
	case has(ckmAESKeyWrapPad, ckfWrap):
		kwp = ckmAESKeyWrapPad
	default:
		missing = append(missing, "CKM_AES_KEY_WRAP_KWP (0x210B) or CKM_AES_KEY_WRAP_PAD (0x210A) with CKF_WRAP")
	}
	if !has(ckmRSAPKCSOAEP, ckfWrap) {
		missing = append(missing, "CKM_RSA_PKCS_OAEP with CKF_WRAP")
	}
	if len(missing) > 0 {
		return WrapMethod{}, errorf("choose wrap method", ErrMechanism,
			"the token lists no CKM_RSA_AES_KEY_WRAP (0x1054) with CKF_WRAP, and the two-step path lacks %s",
			strings.Join(missing, "; "))
	}
	return WrapMethod{
		Path:             PathTwoStep,
		KeyWrapMechanism: kwp,
		Mechanisms:       []string{MechanismName(ckmAESKeyGen), MechanismName(kwp), MechanismName(ckmRSAPKCSOAEP)},
	}, nil
}

// padsToEight reports whether the token is known to zero-pad a private key to a multiple of
// 8 bytes before RFC 5649 wrapping, so that the unwrapped PKCS#8 carries 1 to 7 trailing
// zero bytes: SoftHSM before 2.7 (Debian bookworm ships 2.6.1). It goes by the library's
// manufacturer and version, or the token's manufacturer and firmware version.
func padsToEight(info Info) bool {
	fixed := Version{Major: 2, Minor: 7}
	lib := strings.TrimSpace(info.Library.Manufacturer)
	tok := strings.TrimSpace(info.Token.Manufacturer)
	switch {
	case strings.EqualFold(lib, "SoftHSM"):
		return info.Library.Version.less(fixed)
	case strings.EqualFold(tok, "SoftHSM project"):
		return info.Token.FirmwareVersion.less(fixed)
	}
	return false
}

// zeroPaddingNote is the sentence Check reports about zero padding.
func zeroPaddingNote(known, observed bool, info Info) string {
	product := strings.TrimSpace(info.Library.Manufacturer + " " + info.Library.Version.String())
	switch {
	case known && observed:
		return fmt.Sprintf("%s zero-pads RSA and EC keys to a multiple of 8 bytes before RFC 5649, "+
			"so the key Azure unwraps is PKCS#8 followed by 1 to 7 zero bytes (seen in the self-test); "+
			"OpenSSL and Go accept it, Azure's acceptance is not verified: prefer an HSM without this bug (SoftHSM 2.7 or later) for production keys", product)
	case known:
		return fmt.Sprintf("%s is known to zero-pad RSA and EC keys to a multiple of 8 bytes before RFC 5649 "+
			"(1 to 7 trailing zero bytes after the PKCS#8); the self-test keys happened to need none or were not checked", product)
	case observed:
		return "the token appended zero bytes to a wrapped RSA or EC key (seen in the self-test): " +
			"the key Azure unwraps is PKCS#8 followed by zero bytes, which Azure may refuse"
	}
	return "wrapped keys are exactly the PKCS#8 encoding: no trailing zero padding"
}
