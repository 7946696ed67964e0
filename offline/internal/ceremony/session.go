// Package ceremony is what the offline station does in a BYOK ceremony, apart from how an
// operator asks for it: the session that opens the ledger and the medium, and the steps that
// build on it. The command line (offline/internal/cli) parses flags, prompts and prints; it
// maps this package's errors to exit codes and hints.
package ceremony

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/logsetup"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
)

// Errors of a session.
var (
	// ErrNotInitialised reports a ledger on which init has not finished.
	ErrNotInitialised = errors.New("this station is not initialised")
	// ErrNoPolicy reports a medium on which no policy is in force.
	ErrNoPolicy = errors.New("no policy is in force on the medium")
)

// ReplayError reports a replay of the medium against the ledger that failed; Err is the
// station's error (see station.Replay).
type ReplayError struct{ Err error }

func (e *ReplayError) Error() string { return e.Err.Error() }
func (e *ReplayError) Unwrap() error { return e.Err }

func replayErr(err error) error {
	if err == nil {
		return nil
	}
	return &ReplayError{Err: err}
}

// Access is how a session uses the medium.
type Access int

const (
	ReadMedium  Access = iota // reads it (and may write its ledger)
	LedgerOnly                // writes only its ledger, but finishes an interrupted write first
	WriteMedium               // writes bundles to it
)

// Options say what a session opens.
type Options struct {
	StateDir string
	Media    string // the medium's folder; "" opens the ledger alone
	Access   Access
	Create   bool          // allow a new ledger and a new medium (init)
	Wait     time.Duration // how long to wait for another process's lock on the medium
	Context  context.Context
	Log      *slog.Logger
	Now      func() time.Time // the clock (nil: time.Now)
}

// Session is an open ledger, and the medium when Options.Media names one. OpenInForce fills
// the station record, the replay's result and the policy in force.
type Session struct {
	Station *station.Station
	Store   *store.Store
	Log     *slog.Logger
	Now     func() time.Time // the clock

	Self   *store.Station      // this station's record (OpenInForce)
	Result *chain.Result       // the replay of the medium (OpenInForce)
	Policy *chain.PolicyRecord // the policy in force (OpenInForce)

	release func() error
}

// Open opens the ledger and, if o.Media is set, the medium. LedgerOnly and WriteMedium take
// the medium's write lock and finish an interrupted append (LedgerOnly opens a read-only
// medium for reading when nothing is pending).
func Open(o Options) (*Session, error) {
	if o.Log == nil {
		o.Log = logsetup.Discard()
	}
	st, release, err := station.Open(station.OpenOptions{
		Chain: bundle.ChainOffline, StateDir: o.StateDir, MediaDir: o.Media, Schema: store.Schema(),
		Write: o.Access != ReadMedium, LedgerOnly: o.Access == LedgerOnly, Create: o.Create, InitMedium: o.Create, Log: o.Log,
		Wait: o.Wait, Context: o.Context,
	}, store.RecordOwn)
	if err != nil {
		return nil, err
	}
	return &Session{Station: st, Store: store.New(st.DB), Log: o.Log, Now: o.Now, release: release}, nil
}

// OpenInForce opens a session for writing to the medium, requires an initialised station,
// replays the medium (warning about findings that did not stop it) and fills Self, Result
// and Policy.
func OpenInForce(ctx context.Context, o Options) (*Session, error) {
	o.Access = WriteMedium
	s, err := Open(o)
	if err != nil {
		return nil, err
	}
	if err := s.inForce(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Session) inForce(ctx context.Context) error {
	self, _, err := s.RequireInit()
	if err != nil {
		return err
	}
	res, err := s.Replay(ctx, nil)
	if err != nil {
		return err
	}
	s.WarnFindings(res)
	cur := res.State.Current()
	if cur == nil {
		return ErrNoPolicy
	}
	s.Self, s.Result, s.Policy = self, res, cur
	return nil
}

// now reads the session's clock.
func (s *Session) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// Close releases the ledger and the medium.
func (s *Session) Close() error {
	if s == nil || s.release == nil {
		return nil
	}
	return s.release()
}

// Replay verifies the medium against the ledger (station.Replay); a failure is a
// *ReplayError.
func (s *Session) Replay(ctx context.Context, onBundle func(*chain.Verified) error) (*chain.Result, error) {
	res, err := s.Station.Replay(ctx, onBundle)
	return res, replayErr(err)
}

// ReplayAndFinish is Replay for steps that write: it warns about the findings that did not
// stop the replay and then, the medium being known to hold this station's chain, finishes
// the plain .byok copies an interrupted package did not write (EnsureByokCopies).
func (s *Session) ReplayAndFinish(ctx context.Context, onBundle func(*chain.Verified) error) (*chain.Result, error) {
	res, err := s.Replay(ctx, onBundle)
	if err != nil {
		return nil, err
	}
	s.WarnFindings(res)
	if err := s.EnsureByokCopies(); err != nil {
		return nil, err
	}
	return res, nil
}

// ReplayState is Replay for steps that need only the state: it resumes from the ledger's
// checkpoint (station.ReplayState).
func (s *Session) ReplayState(ctx context.Context) (*chain.Result, error) {
	res, err := s.Station.ReplayState(ctx)
	return res, replayErr(err)
}

// RequireInit returns the station record and the policy in force, or ErrNotInitialised.
func (s *Session) RequireInit() (*store.Station, *store.Policy, error) {
	if _, err := s.Store.InitDone(); errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotInitialised
	} else if err != nil {
		return nil, nil, err
	}
	st, err := s.Store.Station()
	if err != nil {
		return nil, nil, err
	}
	pol, err := s.Store.CurrentPolicy()
	if err != nil {
		return nil, nil, err
	}
	return st, pol, nil
}

// WarnFindings logs the replay's findings that did not stop it.
func (s *Session) WarnFindings(res *chain.Result) {
	for _, f := range res.Findings {
		s.Log.Warn("finding on the medium", "verdict", chain.Verdict(f.Err), "chain", f.Chain.String(), "seq", f.Seq, "finding", f.Err.Error())
	}
}
