package hsm

import (
	"fmt"
	"strings"
)

// Every error this package returns is an *Error whose Kind is one of the sentinels below
// (or a context cancellation, whose cause stays in the chain). The sentinels classify a
// failure, and errors.Is finds them through any amount of wrapping with %w; the command line
// maps them to exit codes (ErrExists is a refusal, ErrInvalid a usage error, the others HSM
// failures).
var (
	// ErrTokenNotFound reports that no token with the configured label (and serial) is present.
	ErrTokenNotFound error = newKind("token not found")
	// ErrKeyNotFound reports that no key matches the label or CKA_ID asked for.
	ErrKeyNotFound error = newKind("key not found")
	// ErrAmbiguous reports that a label or CKA_ID matches more than one token or key.
	ErrAmbiguous error = newKind("more than one match")
	// ErrExists reports that an object with the label (or CKA_ID) exists already; nothing was
	// generated.
	ErrExists error = newKind("object exists")
	// ErrPINIncorrect reports that the token refused a PIN (CKR_PIN_INCORRECT, CKR_PIN_INVALID,
	// CKR_PIN_LEN_RANGE).
	ErrPINIncorrect error = newKind("pin incorrect")
	// ErrPINLocked reports that the PIN is locked after too many wrong tries (CKR_PIN_LOCKED).
	ErrPINLocked error = newKind("pin locked")
	// ErrMechanism reports that the token offers no usable wrap path (see WrapMethod), or
	// refused a mechanism it listed.
	ErrMechanism error = newKind("no usable wrap mechanism")
	// ErrNotTrusted reports that the token refused to wrap a key marked CKA_WRAP_WITH_TRUSTED
	// because the wrapping key is not CKA_TRUSTED. Use Token.WrapTrusted with the SO PIN.
	ErrNotTrusted error = newKind("key may only be wrapped by a trusted key")
	// ErrUnsupportedKey reports a key this package cannot handle: a type or size outside
	// KeySpecs, a key the token will not wrap (not extractable), or a signing key that is not
	// a non-extractable ECDSA P-256 key.
	ErrUnsupportedKey error = newKind("unsupported key")
	// ErrSelfTest reports that the wrap self-test of Check failed.
	ErrSelfTest error = newKind("wrap self-test failed")
	// ErrInvalid reports an invalid argument or configuration (a missing label, a KEK that is
	// too small, a token opened twice).
	ErrInvalid error = newKind("invalid argument")
	// ErrClosed reports use of a Token after Close.
	ErrClosed error = newKind("token is closed")
	// ErrNoCGO reports a binary built without cgo, which cannot load a PKCS#11 module.
	ErrNoCGO error = newKind("built without cgo: pkcs11 is unavailable")
	// ErrModule reports any other failure of the PKCS#11 module or of crypto11.
	ErrModule error = newKind("pkcs11 failure")
)

// errCanceled classifies a context cancellation; the cause (context.Canceled or
// context.DeadlineExceeded) stays in the chain.
var errCanceled error = newKind("interrupted")

// kind is the type of the sentinels: a message.
type kind struct{ msg string }

func (k *kind) Error() string { return k.msg }

func newKind(msg string) error { return &kind{msg: msg} }

// Error is the error type of this package: what was being done, the PKCS#11 return value
// when the module gave one, the class of failure (one of the Err* sentinels) and the
// underlying cause. errors.Is matches both the class and anything in the cause's chain.
type Error struct {
	Op   string // what failed, e.g. "open token \"byok\"" or "wrap key \"app-key\""
	Code uint   // the PKCS#11 return value (CKR_*), or 0 when the module gave none
	Kind error  // one of the Err* sentinels of this package
	Err  error  // the underlying cause, or nil
}

// Error formats as "<op>: <kind> (<CKR name>): <cause>".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Code != 0 {
		fmt.Fprintf(&b, " (%s)", ReturnValueName(e.Code))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the class and the cause, so errors.Is and errors.As see both.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// errorf returns an *Error of the given class whose cause is formatted from format and args.
func errorf(op string, k error, format string, args ...any) error {
	return &Error{Op: op, Kind: k, Err: fmt.Errorf(format, args...)}
}

// errorOf returns an *Error of the given class with no further cause.
func errorOf(op string, k error) error {
	return &Error{Op: op, Kind: k}
}

// ReturnValueName returns the name of a PKCS#11 return value, e.g. "CKR_PIN_INCORRECT", or
// its hexadecimal value when the name is unknown.
func ReturnValueName(code uint) string {
	if n, ok := returnValueNames[code]; ok {
		return n
	}
	return fmt.Sprintf("CKR_0x%08X", code)
}
