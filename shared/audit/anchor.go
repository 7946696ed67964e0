package audit

import (
	"errors"
	"fmt"
	"strings"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// FingerprintError reports a medium whose first policy does not have the fingerprint the
// auditor expects. It is an untrusted-policy verdict: errors.Is(err, chain.ErrUntrusted).
type FingerprintError struct {
	Pinned string    // what the auditor gave: a short fingerprint or a hex ID
	Found  bundle.ID // the medium's first policy; zero if it has none
}

func (e *FingerprintError) Error() string {
	if e.Found.IsZero() {
		return fmt.Sprintf("the medium holds no verified policy, but %s is pinned", e.Pinned)
	}
	return fmt.Sprintf("the medium's first policy is %s, but %s is pinned", e.Found.Short(), e.Pinned)
}

// Is makes the error an untrusted-policy verdict.
func (e *FingerprintError) Is(t error) bool { return t == chain.ErrUntrusted }

// CheckpointAnchorError reports a checkpoint made for another trust anchor than the one the
// audit uses. It is an untrusted-policy verdict: errors.Is(err, chain.ErrUntrusted).
type CheckpointAnchorError struct {
	Checkpoint bundle.ID // the checkpoint's anchor
	Want       string    // the anchor in question
	What       string    // where it comes from: "is pinned", "is the medium's first policy"
}

func (e *CheckpointAnchorError) Error() string {
	return fmt.Sprintf("the checkpoint was made for policy %s, but %s %s", e.Checkpoint.Short(), e.Want, e.What)
}

// Is makes the error an untrusted-policy verdict.
func (e *CheckpointAnchorError) Is(t error) bool { return t == chain.ErrUntrusted }

// pin is the policy the auditor expects: a full ID, or the short fingerprint people compare.
type pin struct {
	id    bundle.ID
	short string
}

// parsePin parses --policy: 64 hex digits (any case), or a short fingerprint as a person types
// it.
func parsePin(s string) (pin, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return pin{}, nil
	}
	if len(s) == 64 {
		id, err := bundle.ParseID(strings.ToLower(s))
		if err != nil {
			return pin{}, fmt.Errorf("%w: --policy: %v", ErrOptions, err)
		}
		return pin{id: id, short: id.Short()}, nil
	}
	short, err := bundle.ParseShort(s)
	if err != nil {
		return pin{}, fmt.Errorf("%w: --policy: %v (want the policy fingerprint, e.g. 7KQ2-M9XD-4TNV-H3PA, or its 64-digit ID)", ErrOptions, err)
	}
	return pin{short: short}, nil
}

func (p pin) isZero() bool { return p.short == "" }

// matches reports whether id is the pinned policy.
func (p pin) matches(id bundle.ID) bool {
	if !p.id.IsZero() {
		return p.id == id
	}
	return id.Short() == p.short
}

func (p pin) String() string {
	if !p.id.IsZero() {
		return p.id.String()
	}
	return p.short
}

// maxPolicySearch bounds how many bundles at the start of the offline chain resolveShort
// reads: the first policy follows the enrollment, so it is the second bundle of an honest
// chain.
const maxPolicySearch = 4

// firstPolicy finds the header of the medium's first policy without verifying anything: the
// caller compares its ID with what it pins, and the replay checks it as it checks any anchor.
// ok is false if no policy header is where one belongs; the replay then reports what is there.
func firstPolicy(m *media.Media) (id bundle.ID, e media.Entry, ok bool) {
	n := 0
	for e, err := range m.Entries(bundle.ChainOffline, 1, nil) {
		if err != nil || n >= maxPolicySearch {
			break
		}
		n++
		data, err := m.Read(e)
		if err != nil {
			continue
		}
		// Only a well-formed bundle under its own name is compared with the pin: a damaged
		// one is left to the replay, which reports it as what it is (malformed, hash
		// mismatch) rather than as another policy (SPEC §9.8: malformed wins).
		b, err := bundle.Parse(data)
		if err != nil || b.ID() != e.ID {
			return bundle.ID{}, media.Entry{}, false
		}
		if b.Header.Kind != bundle.KindPolicy || b.Header.Seq != e.Seq {
			continue
		}
		return b.ID(), e, true
	}
	return bundle.ID{}, media.Entry{}, false
}

// resolveShort returns the ID of the medium's first policy if its fingerprint is short, to be
// pinned for the replay: the fingerprint authenticates the header, whose ID the replay then
// checks. If the first policy has another fingerprint, it returns the finding instead. If no
// policy header is found, it returns a zero ID and no finding, and Run compares the fingerprint
// with the policy the replay trusted, if any.
func resolveShort(m *media.Media, short string) (bundle.ID, *Finding) {
	id, e, ok := firstPolicy(m)
	switch {
	case !ok:
		return bundle.ID{}, nil
	case id.Short() == short:
		return id, nil
	}
	return bundle.ID{}, untrustedFinding(&FingerprintError{Pinned: short, Found: id}, id, e)
}

// untrustedFinding is the finding that the first policy, at e, is not the one pinned.
func untrustedFinding(err error, id bundle.ID, e media.Entry) *Finding {
	return &Finding{Verdict: chain.Verdict(err), Chain: bundle.ChainOffline.String(), Seq: e.Seq, ID: id.String(),
		Fingerprint: id.Short(), Kind: bundle.KindPolicy.String(), Path: e.Path, Message: err.Error(), Stopped: true, Err: err}
}

// checkHeads checks that the medium still holds the bundles a checkpoint ends at: a missing
// one is a rollback, a different one a fork. Everything before them was verified by the audit
// that wrote the checkpoint and is chained to them by their previous IDs.
func checkHeads(m *media.Media, heads chain.Heads) *Finding {
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		h := *heads.Of(c)
		if h.Seq == 0 {
			continue
		}
		var err error
		e, ferr := m.Find(c, h.Seq)
		var dup *media.DuplicateError
		switch {
		case errors.Is(ferr, media.ErrNotFound):
			found := uint64(0)
			if last, ok, _ := m.Head(c); ok {
				found = last.Seq
			}
			err = &chain.RollbackError{Chain: c, Remembered: h.Seq, Found: found, Reason: "the medium no longer holds the bundle the checkpoint ends at"}
		case errors.As(ferr, &dup):
			other := dup.IDs[0]
			if other == h.ID {
				other = dup.IDs[1]
			}
			err = &chain.ForkError{Chain: c, Seq: h.Seq, A: h.ID, B: other, Reason: "two bundles where the checkpoint ends"}
		case ferr != nil:
			err = fmt.Errorf("find %s seq %d: %w", c, h.Seq, ferr)
		default:
			data, rerr := m.Read(e)
			switch {
			case rerr != nil:
				err = fmt.Errorf("read %s: %w", e.Path, rerr)
			case len(data) < bundle.HeaderSize || bundle.IDOfHeader(data[:bundle.HeaderSize]) != h.ID:
				got := e.ID
				if len(data) >= bundle.HeaderSize {
					got = bundle.IDOfHeader(data[:bundle.HeaderSize])
				}
				err = &chain.ForkError{Chain: c, Seq: h.Seq, A: h.ID, B: got, Reason: "not the bundle the checkpoint ends at"}
			}
		}
		if err != nil {
			return &Finding{Verdict: chain.Verdict(err), Chain: c.String(), Seq: h.Seq, ID: h.ID.String(), Fingerprint: h.ID.Short(),
				Path: media.Path(c, h.Seq, h.ID), Message: err.Error(), Stopped: true, Err: err}
		}
	}
	return nil
}
