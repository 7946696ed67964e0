package clirun

import (
	"errors"
	"fmt"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/medialock"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// sharedRule gives the errors of the shared domain packages (station, ledger, medialock)
// their exit codes and hints. Sentinels that a package wraps with %w and extends in the
// message compete by urgency (Sentinel); typed errors and whole-error sentinels are explicit.
func sharedRule(err error) (exitcode.Class, bool) {
	switch e := err.(type) {
	case *station.DisagreeError:
		return exitcode.Class{Code: exitcode.Verify, Hint: disagreeHint(e)}, true
	case *station.ClockError:
		return exitcode.Class{Code: exitcode.Verify, Hint: fmt.Sprintf("the two stations' clocks disagree: this one reads %s, the other station made its bundle at %s; set the wrong clock right and run the command again (nothing was written)",
			e.Now.UTC().Format(time.RFC3339), e.Peer.Format(time.RFC3339))}, true
	case *station.WriteError:
		var rb *media.ReadBackError
		if errors.As(e.Err, &rb) {
			return exitcode.Class{Code: exitcode.Media, Hint: "the medium did not return what was written: use another stick"}, true
		}
		return exitcode.Class{Code: exitcode.Media, Hint: "check that the stick is writable, not full and still plugged in"}, true
	case *station.UnwritableError:
		return exitcode.Class{Code: exitcode.Media}, true
	case *station.PendingError:
		return exitcode.Class{Code: exitcode.Media, Hint: "an interrupted write must be finished on this medium first: make the stick writable and run the command again"}, true
	case *station.CopyError:
		if e.Replayed {
			return exitcode.Class{Code: exitcode.Media, Hint: "use another stick"}, true
		}
		return exitcode.Class{Code: exitcode.Media, Hint: "the copy differs from the original: use another stick"}, true
	case *station.MalformedError:
		return exitcode.Class{Code: exitcode.Bundle}, true
	case *station.ToolsetError:
		return exitcode.Class{Code: exitcode.Refused, Hint: "install a release whose SHA-256 the policy lists (verify-release checks it; version --json prints this binary's), or have the custodians approve a policy amendment that lists this one (byok-offline policy amend --allow-toolset); nothing was written"}, true
	case *station.ReplayError:
		// Malformed or unreadable bundles are 4, findings 3; a code the failure carries
		// itself (a callback's) wins.
		var pe *bundle.ParseError
		if errors.As(e.Err, &pe) || errors.Is(e.Err, bundle.ErrTooLarge) || chain.Verdict(e.Err) == "error" {
			return exitcode.Class{Code: exitcode.Bundle, Fallback: true}, true
		}
		return exitcode.Class{Code: exitcode.Verify, Fallback: true}, true
	case *ledger.SchemaError:
		return exitcode.Class{Code: exitcode.Usage, Sentinel: true}, true
	}
	for _, s := range []struct {
		err   error
		class exitcode.Class
	}{
		{station.ErrOptions, exitcode.Class{Code: exitcode.Usage, Sentinel: true}},
		{station.ErrNoLedger, exitcode.Class{Code: exitcode.Usage, Hint: "run init first, or pass the --state-dir that init used"}},
		{station.ErrUnreadable, exitcode.Class{Code: exitcode.Bundle, Sentinel: true}},
		{station.ErrWriteMedium, exitcode.Class{Code: exitcode.Media, Sentinel: true}},
		{station.ErrOtherAnchor, exitcode.Class{Code: exitcode.Refused, Hint: "a station trusts one policy for its life; use a new state folder for a new ceremony"}},
		{ledger.ErrLocked, exitcode.Class{Code: exitcode.Locked, Hint: "another byok command of this station is still running: let it finish, then run this one again (a command that takes --media waits for it with --wait DURATION)"}},
		{ledger.ErrStateFolder, exitcode.Class{Code: exitcode.Media, Sentinel: true}},
		{medialock.ErrLocked, exitcode.Class{Code: exitcode.Locked, Sentinel: true}},
		{medialock.ErrReadOnly, exitcode.Class{Code: exitcode.Media, Sentinel: true}},
	} {
		if errors.Is(err, s.err) {
			return s.class, true
		}
	}
	return exitcode.Class{}, false
}

// disagreeHint is the next step for a medium whose chains disagree with the station's.
func disagreeHint(e *station.DisagreeError) string {
	var rb *chain.RollbackError
	switch {
	case e.ByIdentity && errors.Is(e.Err, station.ErrForeignBundles):
		return "another station wrote to this medium's chains: do not use it, investigate"
	case e.ByIdentity:
		return "another station wrote to this medium's chains, or it was tampered with: do not use it, investigate"
	case errors.As(e.Err, &rb):
		return "is this the right stick? it must hold everything both stations wrote"
	}
	return ""
}
