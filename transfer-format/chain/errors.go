package chain

import (
	"errors"
	"fmt"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// Verdict classes. Every error the replay reports wraps exactly one of these (or one of the
// bundle package's: *bundle.ParseError, *bundle.UnsupportedVersionError, bundle.ErrBadSignature,
// *bundle.HashMismatchError). Check them with errors.Is.
var (
	// ErrChainBreak: a missing bundle, a wrong previous ID, a bundle out of order, a reference
	// to a bundle that is not there.
	ErrChainBreak = errors.New("chain break")
	// ErrFork: two different bundles claim the same place in a chain.
	ErrFork = errors.New("fork")
	// ErrRollback: the medium is behind what a station already saw.
	ErrRollback = errors.New("rollback")
	// ErrReplay: something already used is used again.
	ErrReplay = errors.New("replay")
	// ErrExpired: a bundle was acted on after it expired.
	ErrExpired = errors.New("expired")
	// ErrClockSkew: a station's clock disagrees with the other's beyond the policy's tolerance.
	ErrClockSkew = errors.New("clock skew")
	// ErrUnknownSigner: a bundle is signed by a key the policy in force does not name for it.
	ErrUnknownSigner = errors.New("unknown signer")
	// ErrUntrusted: the policy on the medium is not the one the caller pinned.
	ErrUntrusted = errors.New("untrusted policy")
	// ErrMissingApproval: fewer custodian approvals than the threshold.
	ErrMissingApproval = errors.New("missing approval")
	// ErrPolicyViolation: a bundle breaks a rule of the policy in force.
	ErrPolicyViolation = errors.New("policy violation")
	// ErrKeyMismatch: the key Key Vault holds is not the key the HSM wrapped.
	ErrKeyMismatch = errors.New("public key mismatch")
)

// ChainBreakError reports a broken link.
type ChainBreakError struct {
	Chain    bundle.Chain
	Seq      uint64
	WantPrev bundle.ID // zero if not about the previous ID
	GotPrev  bundle.ID
	Reason   string
}

func (e *ChainBreakError) Error() string {
	if !e.WantPrev.IsZero() || !e.GotPrev.IsZero() {
		return fmt.Sprintf("%s chain broken at seq %d: previous ID is %s, want %s", e.Chain, e.Seq, e.GotPrev.Short(), e.WantPrev.Short())
	}
	return fmt.Sprintf("%s chain broken at seq %d: %s", e.Chain, e.Seq, e.Reason)
}
func (e *ChainBreakError) Is(t error) bool { return t == ErrChainBreak }

// ForkError reports two bundles for one place.
type ForkError struct {
	Chain  bundle.Chain
	Seq    uint64
	A, B   bundle.ID
	Reason string
}

func (e *ForkError) Error() string {
	return fmt.Sprintf("%s chain forked at seq %d: %s and %s (%s)", e.Chain, e.Seq, e.A.Short(), e.B.Short(), e.Reason)
}
func (e *ForkError) Is(t error) bool { return t == ErrFork }

// RollbackError reports a medium behind a remembered head.
type RollbackError struct {
	Chain      bundle.Chain
	Remembered uint64 // sequence number seen before
	Found      uint64 // sequence number on the medium
	Reason     string
}

func (e *RollbackError) Error() string {
	return fmt.Sprintf("%s chain rolled back: %s (seen seq %d, now %d)", e.Chain, e.Reason, e.Remembered, e.Found)
}
func (e *RollbackError) Is(t error) bool { return t == ErrRollback }

// ReplayError reports a second use.
type ReplayError struct {
	ID     bundle.ID
	Reason string
}

func (e *ReplayError) Error() string   { return fmt.Sprintf("replay of %s: %s", e.ID.Short(), e.Reason) }
func (e *ReplayError) Is(t error) bool { return t == ErrReplay }

// ExpiredError reports a use after expiry.
type ExpiredError struct {
	ID      bundle.ID // the expired bundle
	What    string
	Expires time.Time
	At      time.Time // when it was used
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("%s %s expired at %s, used at %s", e.What, e.ID.Short(), e.Expires.Format(time.RFC3339), e.At.Format(time.RFC3339))
}
func (e *ExpiredError) Is(t error) bool { return t == ErrExpired }

// ClockSkewError reports times that cannot both be right.
type ClockSkewError struct {
	Chain  bundle.Chain
	Seq    uint64
	Skew   time.Duration
	Max    time.Duration
	Reason string
}

func (e *ClockSkewError) Error() string {
	return fmt.Sprintf("%s chain seq %d: %s by %s (tolerance %s)", e.Chain, e.Seq, e.Reason, e.Skew, e.Max)
}
func (e *ClockSkewError) Is(t error) bool { return t == ErrClockSkew }

// SignerError reports a signer the policy does not name.
type SignerError struct {
	Chain  bundle.Chain
	Seq    uint64
	Signer bundle.ID
	Want   bundle.ID // zero if no key is allowed
	Reason string    // set for custodian signatures
}

func (e *SignerError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("%s chain seq %d: %s %s", e.Chain, e.Seq, e.Reason, e.Signer.Short())
	}
	if e.Want.IsZero() {
		return fmt.Sprintf("%s chain seq %d is signed by %s, and no policy is in force", e.Chain, e.Seq, e.Signer.Short())
	}
	return fmt.Sprintf("%s chain seq %d is signed by %s, the policy names %s", e.Chain, e.Seq, e.Signer.Short(), e.Want.Short())
}
func (e *SignerError) Is(t error) bool { return t == ErrUnknownSigner }

// UntrustedError reports a policy other than the pinned one.
type UntrustedError struct {
	Pinned, Found bundle.ID
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("the medium's first policy is %s, but %s is pinned", e.Found.Short(), e.Pinned.Short())
}
func (e *UntrustedError) Is(t error) bool { return t == ErrUntrusted }

// ApprovalError reports too few approvals.
type ApprovalError struct {
	Target     bundle.ID
	Have, Need int
	Reason     string
}

func (e *ApprovalError) Error() string {
	return fmt.Sprintf("%s has %d of %d required approvals%s", e.Target.Short(), e.Have, e.Need, e.Reason)
}
func (e *ApprovalError) Is(t error) bool { return t == ErrMissingApproval }

// PolicyError reports a broken policy rule.
type PolicyError struct {
	Rule   string // short name of the rule, e.g. "vault", "kek-strength"
	Detail string
}

func (e *PolicyError) Error() string   { return fmt.Sprintf("policy %s: %s", e.Rule, e.Detail) }
func (e *PolicyError) Is(t error) bool { return t == ErrPolicyViolation }

// KeyMismatchError reports a key in Key Vault that is not the packaged key.
type KeyMismatchError struct {
	Package bundle.ID
	KID     string
	Reason  string
}

func (e *KeyMismatchError) Error() string {
	return fmt.Sprintf("key %s from package %s: %s", e.KID, e.Package.Short(), e.Reason)
}
func (e *KeyMismatchError) Is(t error) bool { return t == ErrKeyMismatch }

// Verdict returns the name of the verdict class of err, as test vectors spell it: "success",
// "not a medium" (media.Open refused the folder), "malformed", "unsupported version", "bad signature", "hash mismatch", "chain break", "fork",
// "rollback", "replay", "expired", "clock skew", "unknown signer", "untrusted",
// "missing approval", "policy violation", "key mismatch", "too large"; or "error" for anything
// else (I/O).
func Verdict(err error) string {
	var uv *bundle.UnsupportedVersionError
	var hm *bundle.HashMismatchError
	var pe *bundle.ParseError
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, media.ErrNotMedia):
		return "not a medium"
	case errors.As(err, &uv):
		return "unsupported version"
	case errors.Is(err, bundle.ErrTooLarge):
		return "too large"
	case errors.As(err, &pe):
		return "malformed"
	case errors.Is(err, bundle.ErrBadSignature):
		return "bad signature"
	case errors.As(err, &hm):
		return "hash mismatch"
	}
	for _, c := range []struct {
		err  error
		name string
	}{
		{ErrChainBreak, "chain break"}, {ErrFork, "fork"}, {ErrRollback, "rollback"},
		{ErrReplay, "replay"}, {ErrExpired, "expired"}, {ErrClockSkew, "clock skew"},
		{ErrUnknownSigner, "unknown signer"}, {ErrUntrusted, "untrusted"},
		{ErrMissingApproval, "missing approval"}, {ErrPolicyViolation, "policy violation"},
		{ErrKeyMismatch, "key mismatch"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "error"
}
