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
// Internal otherwise. It knows no domain error; see Classify.
func From(err error) int {
	code, _ := Classify(err)
	return code
}

// A Class is what the command line makes of one kind of domain error: its exit code and the
// operator's next step.
//
// A Class with Sentinel set competes like a wrapped sentinel: when no error of the chain
// carries an explicit code, the most urgent code of the chain wins (interrupted, usage,
// locked, verify, bundle, HSM, Key Vault, refused, medium). A Class without it is explicit,
// like an *Error: the outermost explicit code of the chain wins. A Class with Fallback set is
// explicit unless another explicit code is in the chain, inside it or outside.
type Class struct {
	Code     int
	Hint     string
	Sentinel bool
	Fallback bool
}

// A Rule classifies one error of a chain (not what it wraps: Classify walks the chain) that
// a domain package returns; ok is false for an error the rule does not know. The CLI layers
// hold the rules, so that domain packages need not know exit codes.
type Rule func(err error) (c Class, ok bool)

// Classify returns err's exit code and operator hint: OK for nil; else the outermost explicit
// code of err's chain (an *Error, a Coder, or an explicit Class of a rule); else a Fallback
// Class's code; else the most
// urgent sentinel code (a wrapped sentinel above, or a Sentinel Class); else Internal. The
// hint is the first non-empty one of the chain, from the outside in.
func Classify(err error, rules ...Rule) (code int, hint string) {
	if err == nil {
		return OK, ""
	}
	code, fallback := -1, -1
	found := map[int]bool{}
	walk(err, func(e error) {
		var c Class
		ok := false
		if x, isErr := e.(*Error); isErr {
			c, ok = Class{Code: x.Code, Hint: x.Hint}, true
		} else if x, isCoder := e.(Coder); isCoder {
			c, ok = Class{Code: x.ExitCode()}, true
		} else {
			for _, r := range rules {
				if c, ok = r(e); ok {
					break
				}
			}
		}
		if !ok {
			return
		}
		if hint == "" {
			hint = c.Hint
		}
		switch {
		case c.Sentinel:
			found[c.Code] = true
		case c.Fallback:
			if fallback < 0 {
				fallback = c.Code
			}
		case code < 0:
			code = c.Code
		}
	})
	if code >= 0 {
		return code, hint
	}
	if fallback >= 0 {
		return fallback, hint
	}
	for _, s := range sentinels {
		if found[s.code] || errors.Is(err, s.err) {
			return s.code, hint
		}
	}
	if found[Stale] {
		return Stale, hint
	}
	if found[Foreign] {
		return Foreign, hint
	}
	return Internal, hint
}

// walk calls f on every error of err's chain, depth first, in the order errors.As visits them.
func walk(err error, f func(error)) {
	for err != nil {
		f(err)
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e, f)
			}
			return
		default:
			return
		}
	}
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

// Hint returns the first operator hint in err's chain, or "". It knows no domain error; see
// Classify.
func Hint(err error) string {
	_, hint := Classify(err)
	return hint
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
