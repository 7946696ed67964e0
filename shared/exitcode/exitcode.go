// Package exitcode defines the process exit codes of byok-offline and byok-online and maps
// errors to them.
//
// The codes are part of the command-line interface: scripts may depend on them, so a code's
// meaning never changes once released. Callers must treat any unknown non-zero code as
// failure.
//
// Errors carry their code by wrapping one of the sentinel errors below (with %w) or by
// implementing Coder. From picks the code of the first match in the chain.
package exitcode

import (
	"context"
	"errors"
)

// Exit codes. The values are explicit, not iota: they are a public contract.
const (
	OK          = 0   // success
	Internal    = 1   // a bug or an unexpected failure
	Usage       = 2   // bad flags, arguments or configuration
	Verify      = 3   // a signature, chain, approval, policy or audit check failed
	Bundle      = 4   // a bundle or input file is missing, unreadable or malformed
	HSM         = 5   // the PKCS#11 module or token failed or refused (wrong PIN included)
	Vault       = 6   // Key Vault or the network failed
	Refused     = 7   // refused: exists already, already applied, or not allowed by policy
	Locked      = 8   // the state ledger or the media is locked by another process
	Media       = 9   // the media or state folder cannot be written (read-only, full)
	Stale       = 10  // the medium is an older copy of this ceremony's stick (behind what the station saw)
	Foreign     = 11  // the medium belongs to another ceremony
	Interrupted = 130 // interrupted by a signal
)

// Sentinel errors that select a code when wrapped.
var (
	ErrUsage       = errors.New("usage")
	ErrVerify      = errors.New("verification failed")
	ErrBundle      = errors.New("bad bundle")
	ErrHSM         = errors.New("hsm")
	ErrVault       = errors.New("key vault")
	ErrRefused     = errors.New("refused")
	ErrLocked      = errors.New("locked")
	ErrMedia       = errors.New("media")
	ErrInterrupted = errors.New("interrupted")
)

// Coder is implemented by errors that know their exit code.
type Coder interface {
	ExitCode() int
}

var sentinels = []struct {
	err  error
	code int
}{
	{ErrInterrupted, Interrupted},
	{context.Canceled, Interrupted},
	{ErrUsage, Usage},
	{ErrLocked, Locked},
	{ErrVerify, Verify},
	{ErrBundle, Bundle},
	{ErrHSM, HSM},
	{ErrVault, Vault},
	{ErrRefused, Refused},
	{ErrMedia, Media},
}

// From returns the exit code for err: OK for nil, the code of a Coder or a wrapped sentinel,
// Internal otherwise.
func From(err error) int {
	if err == nil {
		return OK
	}
	var c Coder
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return Internal
}

// Error is an error with an explicit exit code and an optional hint for the operator.
type Error struct {
	Code int
	Err  error
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ExitCode implements Coder.
func (e *Error) ExitCode() int { return e.Code }

// Wrap returns err with an explicit code and hint; nil stays nil.
func Wrap(code int, err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err, Hint: hint}
}

// Hint returns the first operator hint in err's chain, or "".
func Hint(err error) string {
	var e *Error
	for err != nil {
		if errors.As(err, &e) {
			if e.Hint != "" {
				return e.Hint
			}
			err = e.Err
			continue
		}
		return ""
	}
	return ""
}

// Name returns a short name for a code, used in JSON error output.
func Name(code int) string {
	switch code {
	case OK:
		return "ok"
	case Internal:
		return "internal"
	case Usage:
		return "usage"
	case Verify:
		return "verification_failed"
	case Bundle:
		return "bad_bundle"
	case HSM:
		return "hsm"
	case Vault:
		return "key_vault"
	case Refused:
		return "refused"
	case Locked:
		return "locked"
	case Media:
		return "media"
	case Stale:
		return "stale_medium"
	case Foreign:
		return "foreign_medium"
	case Interrupted:
		return "interrupted"
	}
	return "unknown"
}

// Help is the exit code table both binaries print in their help.
const Help = `Exit codes: 0 ok, 1 internal error, 2 usage, 3 verification failed, 4 bundle missing or
malformed, 5 HSM, 6 Key Vault or network, 7 refused, 8 locked, 9 medium not writable,
10 an older copy of the stick, 11 another ceremony's stick, 130 interrupted. Treat any other
non-zero code as failure.`
