package clirun

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/medialock"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// TestSharedRules pins the exit code and hint of each shared domain error, as the operator
// sees them (the script tests pin many of them end to end).
func TestSharedRules(t *testing.T) {
	fork := &chain.ForkError{Chain: bundle.ChainOnline, Seq: 4, Reason: "r"}
	rollback := &chain.RollbackError{Chain: bundle.ChainOffline, Remembered: 5, Found: 3}
	foreign := fmt.Errorf("%w (offline chain seq 6)", station.ErrForeignBundles)
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.FixedZone("x", 3600))
	peer := time.Date(2026, 12, 6, 9, 10, 0, 0, time.UTC)
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantHint string
	}{
		{"fork by identity", &station.DisagreeError{Err: fork, ByIdentity: true}, exitcode.Verify, "another station wrote to this medium's chains, or it was tampered with: do not use it, investigate"},
		{"foreign bundles by identity", &station.DisagreeError{Err: foreign, ByIdentity: true}, exitcode.Verify, "another station wrote to this medium's chains: do not use it, investigate"},
		{"rollback", &station.DisagreeError{Err: rollback}, exitcode.Verify, "is this the right stick? it must hold everything both stations wrote"},
		{"fork on the medium", &station.DisagreeError{Err: fork}, exitcode.Verify, ""},
		{"foreign bundles on the medium", &station.DisagreeError{Err: foreign}, exitcode.Verify, ""},
		{"clock", &station.ClockError{Err: chain.ErrClockSkew, Now: now, Peer: peer}, exitcode.Verify,
			"the two stations' clocks disagree: this one reads 2026-12-06T08:00:00Z, the other station made its bundle at 2026-12-06T09:10:00Z; set the wrong clock right and run the command again (nothing was written)"},
		{"write", &station.WriteError{Err: errors.New("write to the medium: no space")}, exitcode.Media, "check that the stick is writable, not full and still plugged in"},
		{"read back", &station.WriteError{Err: &media.ReadBackError{Path: "p"}}, exitcode.Media, "the medium did not return what was written: use another stick"},
		{"unwritable", &station.UnwritableError{Err: fs.ErrPermission}, exitcode.Media, ""},
		{"pending", &station.PendingError{Err: medialock.ErrReadOnly}, exitcode.Media, "an interrupted write must be finished on this medium first: make the stick writable and run the command again"},
		{"copy differs", &station.CopyError{Err: &media.ReadBackError{Path: "p"}}, exitcode.Media, "the copy differs from the original: use another stick"},
		{"copy replays", &station.CopyError{Err: errors.New("x"), Replayed: true}, exitcode.Media, "use another stick"},
		{"malformed", &station.MalformedError{Err: errors.New("x")}, exitcode.Bundle, ""},
		{"replay finding", station.VerifyErr(fork), exitcode.Verify, ""},
		{"replay malformed", station.VerifyErr(&bundle.ParseError{What: "header", Err: errors.New("x")}), exitcode.Bundle, ""},
		{"replay too large", station.VerifyErr(bundle.ErrTooLarge), exitcode.Bundle, ""},
		{"replay of unknown failure", station.VerifyErr(errors.New("x")), exitcode.Bundle, ""},
		{"replay keeps an inner code", station.VerifyErr(exitcode.Wrap(exitcode.HSM, errors.New("x"), "")), exitcode.HSM, ""},
		{"replay beats a sentinel", station.VerifyErr(fmt.Errorf("%w: x", medialock.ErrReadOnly)), exitcode.Bundle, ""},
		{"options", fmt.Errorf("%w: --state-dir is required", station.ErrOptions), exitcode.Usage, ""},
		{"no ledger", fmt.Errorf("%w in /x", station.ErrNoLedger), exitcode.Usage, "run init first, or pass the --state-dir that init used"},
		{"unreadable", fmt.Errorf("%w: list the medium: x", station.ErrUnreadable), exitcode.Bundle, ""},
		{"read back fails", fmt.Errorf("%w: read back p: x", station.ErrWriteMedium), exitcode.Media, ""},
		{"other anchor", station.ErrOtherAnchor, exitcode.Refused, "a station trusts one policy for its life; use a new state folder for a new ceremony"},
		{"ledger locked", fmt.Errorf("p: %w", ledger.ErrLocked), exitcode.Locked, "another byok command of this station is still running: let it finish, then run this one again (a command that takes --media waits for it with --wait DURATION)"},
		{"state folder", fmt.Errorf("%w: x", ledger.ErrStateFolder), exitcode.Media, ""},
		{"other schema", &ledger.SchemaError{Found: "a", Want: "b"}, exitcode.Usage, ""},
		{"medium locked", &medialock.LockedError{}, exitcode.Locked, "another byok command is using this medium: let it finish, or run this command again with --wait DURATION (e.g. --wait 10m) to wait for it"},
		{"medium locked after a wait", &medialock.LockedError{Waited: time.Second}, exitcode.Locked, "the other command is still running: let it finish, then run this one again (or with a longer --wait)"},
		{"read-only", fmt.Errorf("d: %w", medialock.ErrReadOnly), exitcode.Media, "the stick is write-protected or mounted read-only: slide its write-protect switch off, or remount it read-write (mount -o remount,rw), and run the command again; commands that only read it, such as audit, work on it as it is"},
		{"interrupted while locked", fmt.Errorf("%w: %w", medialock.ErrLocked, context.Canceled), exitcode.Interrupted, ""},
		{"stale", &station.StaleError{}, exitcode.Stale, "bring the newest stick of this ceremony; nothing was written to this one"},
		{"not a medium", fmt.Errorf("x: %w", media.ErrNotMedia), exitcode.Bundle, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hint := Classify(tt.err)
			if code != tt.wantCode || hint != tt.wantHint {
				t.Errorf("Classify(%v) = %d, %q, want %d, %q", tt.err, code, hint, tt.wantCode, tt.wantHint)
			}
		})
	}
}
