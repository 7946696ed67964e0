package hsm

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"

	"github.com/airgap-byok/airgap-byok/shared/secret"
)

// Config says which token to open and how to log in to it.
type Config struct {
	// Module is the path of the PKCS#11 module (required).
	Module string
	// TokenLabel is the label of the token (required).
	TokenLabel string
	// TokenSerial is the token's serial number (optional). Give it when several tokens share
	// a label; Open refuses an ambiguous label.
	TokenSerial string
	// PIN is the user PIN (required). It is handed to the module and never logged or shown
	// in errors.
	PIN secret.Value
	// Logger receives the package's log lines; nil discards them.
	Logger *slog.Logger
}

// validate returns an error wrapping ErrInvalid naming the first missing field.
func (c Config) validate() error {
	switch {
	case c.Module == "":
		return errorf("open token", ErrInvalid, "hsm config: module is required")
	case c.TokenLabel == "":
		return errorf("open token", ErrInvalid, "hsm config: token label is required")
	case c.PIN.Empty():
		return errorf("open token", ErrInvalid, "hsm config: pin is required")
	}
	return nil
}

// TargetOptions are the choices GenerateTarget leaves to the caller.
type TargetOptions struct {
	// WrapWithTrusted sets CKA_WRAP_WITH_TRUSTED on the key: the token then wraps it only
	// with a CKA_TRUSTED key, which only the security officer can mark (see WrapTrusted).
	// It cannot be cleared afterwards.
	WrapWithTrusted bool
}

// KeyRef selects an existing target key by CKA_LABEL, CKA_ID or both (both must match).
type KeyRef struct {
	Label string
	ID    []byte
}

// String describes the reference for messages, e.g. `label "app-key"` or `id 01ab…`.
func (r KeyRef) String() string {
	switch {
	case r.Label != "" && len(r.ID) > 0:
		return fmt.Sprintf("label %q id %x", r.Label, r.ID)
	case r.Label != "":
		return fmt.Sprintf("label %q", r.Label)
	}
	return fmt.Sprintf("id %x", r.ID)
}

// CheckValueSource says where Key.CheckValue came from.
type CheckValueSource string

const (
	// CheckValueAttribute: the token's CKA_CHECK_VALUE attribute.
	CheckValueAttribute CheckValueSource = "CKA_CHECK_VALUE"
	// CheckValueComputed: the first 3 bytes of AES-ECB of a zero block, computed by the token
	// with C_Encrypt because it sets no CKA_CHECK_VALUE. This is the same value PKCS#11
	// defines for CKA_CHECK_VALUE of AES keys.
	CheckValueComputed CheckValueSource = "AES-ECB(zero block)[:3]"
)

// Key is a target key in the token: a private key with its public key, or an AES key.
// Keys are returned by GenerateTarget and FindTarget and belong to the Token that made them.
type Key struct {
	Label string  `json:"label"`
	ID    []byte  `json:"id"`
	Spec  KeySpec `json:"spec"`
	// Public is the public key (*rsa.PublicKey or *ecdsa.PublicKey); nil for AES keys.
	Public crypto.PublicKey `json:"-"`
	// CheckValue is the AES key check value (3 bytes); nil for RSA and EC keys.
	CheckValue       []byte           `json:"check_value,omitempty"`
	CheckValueSource CheckValueSource `json:"check_value_source,omitempty"`
	// WrapWithTrusted reports CKA_WRAP_WITH_TRUSTED: the key can only be wrapped by
	// WrapTrusted.
	WrapWithTrusted bool `json:"wrap_with_trusted"`
	// Attributes are the key's PKCS#11 attributes for provenance, by name, in a form a person
	// can read: "true"/"false", names for classes, key types and mechanisms, hex for bytes,
	// "unavailable" when the token does not have the attribute, "sensitive" when it refuses
	// to reveal it.
	Attributes map[string]string `json:"attributes"`

	tok     *Token
	session bool   // a session object (the self-test's throwaway keys)
	class   uint   // CKO_PRIVATE_KEY or CKO_SECRET_KEY
	handle  uint   // the private or secret key object
	gen     uint64 // the Token's login generation the handle is valid for
}

// LogValue logs the key's label, ID and spec.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("label", k.Label),
		slog.String("id", hex.EncodeToString(k.ID)),
		slog.String("spec", k.Spec.String()),
	)
}

// Wrapped is a target key wrapped for an Azure KEK, with the provenance of the wrap.
//
// Its String, Format and LogValue methods never print Ciphertext, and it is left out of JSON:
// write it to a .byok file explicitly.
type Wrapped struct {
	// Ciphertext is RSA-OAEP(KEK, ephemeral AES key) || RFC 5649(ephemeral AES key, target):
	// exactly what the "ciphertext" field of Azure's .byok file holds (before base64url).
	Ciphertext []byte `json:"-"`
	// RSAPartLen is the length of the RSA-OAEP part: the KEK modulus length in bytes.
	RSAPartLen int `json:"rsa_part_len"`
	// Method is the wrap path and mechanisms used.
	Method WrapMethod `json:"method"`
	// Trusted reports that the wrap went through WrapTrusted (an SO-marked wrapping key).
	Trusted bool `json:"trusted"`
	// EphemeralCreated reports that the path created an ephemeral AES key object (two-step).
	// The one-shot path never exposes one.
	EphemeralCreated bool `json:"ephemeral_created"`
	// EphemeralDestroyed is true only if C_DestroyObject of the ephemeral AES key succeeded.
	EphemeralDestroyed bool `json:"ephemeral_destroyed"`
	// KEKDestroyed is true only if C_DestroyObject of the imported KEK object succeeded.
	KEKDestroyed bool `json:"kek_destroyed"`
	// ZeroPaddingExpected reports that the token is known to append 1 to 7 zero bytes to the
	// PKCS#8 before wrapping (SoftHSM before 2.7, RSA and EC keys only).
	ZeroPaddingExpected bool `json:"zero_padding_expected"`
}

// String summarises the wrap without the ciphertext.
func (w Wrapped) String() string {
	return fmt.Sprintf("wrapped key: %d bytes (rsa part %d), %s, ephemeral destroyed %t, kek destroyed %t",
		len(w.Ciphertext), w.RSAPartLen, w.Method.Path, w.EphemeralDestroyed, w.KEKDestroyed)
}

// Format prints String for every verb, so that %v, %+v, %#v and %x never reveal the
// ciphertext.
func (w Wrapped) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, w.String()) }

// LogValue logs the size, a SHA-256 prefix of the ciphertext and the provenance.
func (w Wrapped) LogValue() slog.Value {
	sum := sha256.Sum256(w.Ciphertext)
	return slog.GroupValue(
		slog.Int("bytes", len(w.Ciphertext)),
		slog.String("sha256_prefix", hex.EncodeToString(sum[:8])),
		slog.String("path", string(w.Method.Path)),
		slog.Bool("trusted", w.Trusted),
		slog.Bool("ephemeral_destroyed", w.EphemeralDestroyed),
		slog.Bool("kek_destroyed", w.KEKDestroyed),
	)
}

// CheckReport is what Check finds out about a token.
type CheckReport struct {
	Info       Info        `json:"info"`
	Mechanisms []Mechanism `json:"mechanisms"`
	// Wrap is the chosen wrap path; nil when the token offers none (see WrapError).
	Wrap      *WrapMethod `json:"wrap,omitempty"`
	WrapError string      `json:"wrap_error,omitempty"`
	// SelfTest has one entry per throwaway target key (RSA-2048, EC P-256, AES-256).
	SelfTest []SelfTestResult `json:"self_test"`
	// ZeroPadding reports that wrapped RSA and EC keys carry trailing zero bytes after the
	// PKCS#8: known for this product (ZeroPaddingKnown) or seen in the self-test
	// (ZeroPaddingObserved). ZeroPaddingNote says it in a sentence.
	ZeroPadding         bool   `json:"zero_padding"`
	ZeroPaddingKnown    bool   `json:"zero_padding_known"`
	ZeroPaddingObserved bool   `json:"zero_padding_observed"`
	ZeroPaddingNote     string `json:"zero_padding_note"`
	// OK reports that a wrap path exists and every self-test passed.
	OK bool `json:"ok"`
}

// SelfTestResult is the outcome of wrapping one throwaway key and unwrapping it in Go.
type SelfTestResult struct {
	Spec KeySpec `json:"spec"`
	OK   bool    `json:"ok"`
	// WrappedBytes is the length of the ciphertext.
	WrappedBytes int `json:"wrapped_bytes"`
	// TrailingZeros is the number of zero bytes after the PKCS#8 DER (RSA and EC keys).
	TrailingZeros int `json:"trailing_zeros"`
	// Detail says what was checked, or what failed.
	Detail string `json:"detail"`
}
