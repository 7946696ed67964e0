package byok

import "errors"

// Reasons a .byok file or key identifier is refused. Parse errors wrap one of them inside a
// *ParseError; New wraps them directly.
var (
	// ErrTooLarge reports input over MaxFileSize bytes.
	ErrTooLarge = errors.New("file too large")

	// ErrSyntax reports input that is not a single JSON object of the expected shape: bad
	// JSON, invalid UTF-8, a member of the wrong JSON type, or data after the object.
	ErrSyntax = errors.New("invalid json")

	// ErrMissingMember reports a required member that is absent.
	ErrMissingMember = errors.New("missing member")

	// ErrUnknownMember reports a member the specification does not define.
	ErrUnknownMember = errors.New("unknown member")

	// ErrDuplicateMember reports a member that appears twice in the same object.
	ErrDuplicateMember = errors.New("duplicate member")

	// ErrUnsupported reports a schema_version, alg or enc other than the fixed values.
	ErrUnsupported = errors.New("unsupported value")

	// ErrKeyID reports a kid that is not a versioned Key Vault key identifier.
	ErrKeyID = errors.New("invalid key identifier")

	// ErrCiphertext reports a ciphertext that is not base64url or has an impossible length.
	ErrCiphertext = errors.New("invalid ciphertext")

	// ErrGenerator reports a generator that is not valid UTF-8.
	ErrGenerator = errors.New("invalid generator")

	// ErrNonCanonical reports input that Parse refuses only because it is not in canonical
	// form; ParseLenient may accept it.
	ErrNonCanonical = errors.New("not in canonical form")
)

// ParseError reports malformed input to Parse, ParseLenient or ParseKeyID. Err wraps one of
// the sentinel errors of this package; Field names the member concerned ("header.kid"; "kid"
// for ParseKeyID), and is empty when the failure concerns the input as a whole.
type ParseError struct {
	Field string
	Err   error
}

// Error returns "byok: <field>: <reason>".
func (e *ParseError) Error() string {
	if e.Field == "" {
		return "byok: " + e.Err.Error()
	}
	return "byok: " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *ParseError) Unwrap() error { return e.Err }
