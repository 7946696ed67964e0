//go:build cgo

package hsm

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"

	"github.com/miekg/pkcs11"
)

// This file is the one adapter between PKCS#11 return values (from miekg/pkcs11 and from
// crypto11, which wraps them) and this package's errors. Nothing else inspects codes.

// p11Code returns the PKCS#11 return value in err's chain, if there is one.
func p11Code(err error) (uint, bool) {
	var pe pkcs11.Error
	if errors.As(err, &pe) {
		return uint(pe), true
	}
	return 0, false
}

// isCode reports whether err carries the PKCS#11 return value code.
func isCode(err error, code uint) bool {
	c, ok := p11Code(err)
	return ok && c == code
}

// kindOf classifies a PKCS#11 return value.
func kindOf(code uint) error {
	switch code {
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE:
		return ErrPINIncorrect
	case pkcs11.CKR_PIN_LOCKED:
		return ErrPINLocked
	case pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_SLOT_ID_INVALID,
		pkcs11.CKR_DEVICE_REMOVED:
		return ErrTokenNotFound
	case pkcs11.CKR_MECHANISM_INVALID, pkcs11.CKR_MECHANISM_PARAM_INVALID:
		return ErrMechanism
	case pkcs11.CKR_KEY_UNEXTRACTABLE, pkcs11.CKR_KEY_NOT_WRAPPABLE, pkcs11.CKR_KEY_TYPE_INCONSISTENT,
		pkcs11.CKR_KEY_SIZE_RANGE, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED:
		return ErrUnsupportedKey
	case pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID:
		return ErrKeyNotFound
	}
	return ErrModule
}

// p11Err translates an error from miekg/pkcs11 or crypto11 into an *Error for op. An error
// that is already an *Error passes unchanged; context errors are classified as interrupted;
// errors without a PKCS#11 code (crypto11's own) become ErrModule.
func p11Err(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Op: op, Kind: errCanceled, Err: err}
	}
	code, ok := p11Code(err)
	if !ok {
		return &Error{Op: op, Kind: ErrModule, Err: err}
	}
	out := &Error{Op: op, Code: code, Kind: kindOf(code)}
	if err != pkcs11.Error(code) {
		// crypto11 adds context ("failed to log into long term session"); keep it.
		out.Err = err
	}
	return out
}

// wrapKeyErr translates a C_WrapKey failure of the target key. SoftHSM answers
// CKR_KEY_NOT_WRAPPABLE, and other tokens CKR_KEY_FUNCTION_NOT_PERMITTED, when the key is
// CKA_WRAP_WITH_TRUSTED and the wrapping key is not CKA_TRUSTED: that is ErrNotTrusted.
func wrapKeyErr(op string, err error, wrapWithTrusted bool) error {
	if wrapWithTrusted && (isCode(err, pkcs11.CKR_KEY_NOT_WRAPPABLE) || isCode(err, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED)) {
		code, _ := p11Code(err)
		return &Error{Op: op, Code: code, Kind: ErrNotTrusted}
	}
	return p11Err(op, err)
}

// canceled returns an interrupted *Error if ctx is done.
func canceled(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Kind: errCanceled, Err: err}
	}
	return nil
}

// ulong decodes a CK_ULONG attribute value (native byte order, 4 or 8 bytes).
func ulong(b []byte) (uint, bool) {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b)), true
	case 4:
		return uint(binary.NativeEndian.Uint32(b)), true
	}
	return 0, false
}

// boolAttr decodes a CK_BBOOL attribute value.
func boolAttr(b []byte) (bool, bool) {
	if len(b) != 1 {
		return false, false
	}
	return b[0] != 0, true
}

// attrKind says how to print an attribute's value.
type attrKind int

const (
	attrBool attrKind = iota
	attrULong
	attrString
	attrBytes
	attrClass
	attrKeyType
	attrMechanism
	attrECParams
)

// provenanceAttr is an attribute reported in Key.Attributes.
type provenanceAttr struct {
	typ  uint
	kind attrKind
}

// provenance lists the attributes reported for each object class.
var provenance = map[uint][]provenanceAttr{
	pkcs11.CKO_PRIVATE_KEY: {
		{pkcs11.CKA_CLASS, attrClass}, {pkcs11.CKA_KEY_TYPE, attrKeyType},
		{pkcs11.CKA_LABEL, attrString}, {pkcs11.CKA_ID, attrBytes},
		{pkcs11.CKA_TOKEN, attrBool}, {pkcs11.CKA_PRIVATE, attrBool},
		{pkcs11.CKA_MODIFIABLE, attrBool}, {pkcs11.CKA_COPYABLE, attrBool}, {pkcs11.CKA_DESTROYABLE, attrBool},
		{pkcs11.CKA_LOCAL, attrBool}, {pkcs11.CKA_KEY_GEN_MECHANISM, attrMechanism},
		{pkcs11.CKA_SENSITIVE, attrBool}, {pkcs11.CKA_ALWAYS_SENSITIVE, attrBool},
		{pkcs11.CKA_EXTRACTABLE, attrBool}, {pkcs11.CKA_NEVER_EXTRACTABLE, attrBool},
		{pkcs11.CKA_WRAP_WITH_TRUSTED, attrBool}, {pkcs11.CKA_ALWAYS_AUTHENTICATE, attrBool},
		{pkcs11.CKA_SIGN, attrBool}, {pkcs11.CKA_DECRYPT, attrBool}, {pkcs11.CKA_UNWRAP, attrBool},
		{pkcs11.CKA_DERIVE, attrBool}, {pkcs11.CKA_EC_PARAMS, attrECParams},
	},
	pkcs11.CKO_SECRET_KEY: {
		{pkcs11.CKA_CLASS, attrClass}, {pkcs11.CKA_KEY_TYPE, attrKeyType},
		{pkcs11.CKA_LABEL, attrString}, {pkcs11.CKA_ID, attrBytes},
		{pkcs11.CKA_TOKEN, attrBool}, {pkcs11.CKA_PRIVATE, attrBool},
		{pkcs11.CKA_MODIFIABLE, attrBool}, {pkcs11.CKA_COPYABLE, attrBool}, {pkcs11.CKA_DESTROYABLE, attrBool},
		{pkcs11.CKA_LOCAL, attrBool}, {pkcs11.CKA_KEY_GEN_MECHANISM, attrMechanism},
		{pkcs11.CKA_SENSITIVE, attrBool}, {pkcs11.CKA_ALWAYS_SENSITIVE, attrBool},
		{pkcs11.CKA_EXTRACTABLE, attrBool}, {pkcs11.CKA_NEVER_EXTRACTABLE, attrBool},
		{pkcs11.CKA_WRAP_WITH_TRUSTED, attrBool}, {pkcs11.CKA_TRUSTED, attrBool},
		{pkcs11.CKA_ENCRYPT, attrBool}, {pkcs11.CKA_DECRYPT, attrBool},
		{pkcs11.CKA_WRAP, attrBool}, {pkcs11.CKA_UNWRAP, attrBool},
		{pkcs11.CKA_SIGN, attrBool}, {pkcs11.CKA_VERIFY, attrBool}, {pkcs11.CKA_DERIVE, attrBool},
		{pkcs11.CKA_VALUE_LEN, attrULong}, {pkcs11.CKA_CHECK_VALUE, attrBytes},
	},
}

// formatAttr prints an attribute value for a person.
func formatAttr(kind attrKind, v []byte) string {
	switch kind {
	case attrBool:
		if b, ok := boolAttr(v); ok {
			if b {
				return "true"
			}
			return "false"
		}
	case attrULong:
		if n, ok := ulong(v); ok {
			return strconv.FormatUint(uint64(n), 10)
		}
	case attrString:
		return string(v)
	case attrClass:
		if n, ok := ulong(v); ok {
			return className(n)
		}
	case attrKeyType:
		if n, ok := ulong(v); ok {
			return keyTypeName(n)
		}
	case attrMechanism:
		if n, ok := ulong(v); ok {
			if n == pkcs11.CK_UNAVAILABLE_INFORMATION {
				return "unavailable"
			}
			return MechanismName(n)
		}
	case attrECParams:
		if c := curveByParams(v); c != "" {
			return c
		}
	}
	return hex.EncodeToString(v)
}
