package station

import (
	"errors"
	"time"
)

// The errors below tell the command line what went wrong; it maps them to exit codes and
// the operator's next step (shared/clirun). Their messages are the operator's.
var (
	// ErrOptions reports options a station cannot be opened with (no --state-dir).
	ErrOptions = errors.New("usage")
	// ErrNoLedger reports a state folder without a ledger (init has not run there).
	ErrNoLedger = errors.New("no ledger")
	// ErrUnreadable reports a medium that cannot be listed or read.
	ErrUnreadable = errors.New("bad bundle")
	// ErrWriteMedium reports a medium whose bundles cannot be read back after a write.
	ErrWriteMedium = errors.New("media")
	// ErrOtherAnchor reports an attempt to trust a second policy: a station trusts one
	// policy for its life.
	ErrOtherAnchor = errors.New("a different policy is already trusted")
)

// DisagreeError reports a medium whose chains disagree with what this station saw. Err is a
// *chain.ForkError, a *chain.RollbackError or wraps ErrForeignBundles. ByIdentity tells that
// Identity found it, comparing every bundle the station saw; otherwise CheckMedia (the own
// chain's head against the ledger's) or a restore (the target's bundles) found it.
type DisagreeError struct {
	Err        error
	ByIdentity bool
}

func (e *DisagreeError) Error() string { return e.Err.Error() }
func (e *DisagreeError) Unwrap() error { return e.Err }

// ClockError reports a write refused because this station's clock (Now) reads earlier than
// the other station's latest bundle (Peer) allows. Err wraps chain.ErrClockSkew.
type ClockError struct {
	Err       error
	Now, Peer time.Time
}

func (e *ClockError) Error() string { return e.Err.Error() }
func (e *ClockError) Unwrap() error { return e.Err }

// WriteError reports a write to the medium that failed, or whose read-back differs (Err then
// wraps a *media.ReadBackError).
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// UnwritableError reports a medium that cannot be initialized for writing.
type UnwritableError struct{ Err error }

func (e *UnwritableError) Error() string { return e.Err.Error() }
func (e *UnwritableError) Unwrap() error { return e.Err }

// PendingError reports an interrupted write that must be finished on a medium that cannot be
// written (Err wraps medialock.ErrReadOnly).
type PendingError struct{ Err error }

func (e *PendingError) Error() string { return e.Err.Error() }
func (e *PendingError) Unwrap() error { return e.Err }

// CopyError reports a copy of the medium (a backup or a restore) that differs from its
// original: a bundle read back other than written, or (Replayed) a copy that replays to other
// heads.
type CopyError struct {
	Err      error
	Replayed bool
}

func (e *CopyError) Error() string { return e.Err.Error() }
func (e *CopyError) Unwrap() error { return e.Err }

// MalformedError reports a bundle of a medium that cannot be parsed, or is not in its
// canonical encoding.
type MalformedError struct{ Err error }

func (e *MalformedError) Error() string { return e.Err.Error() }
func (e *MalformedError) Unwrap() error { return e.Err }

// ReplayError reports a replay of the medium that failed: a malformed or unreadable bundle
// (chain.Verdict "error", a *bundle.ParseError, bundle.ErrTooLarge) or a finding.
type ReplayError struct{ Err error }

func (e *ReplayError) Error() string { return e.Err.Error() }
func (e *ReplayError) Unwrap() error { return e.Err }
