package audit

import (
	"errors"
	"fmt"
	"strings"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
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
			return pin{}, fmt.Errorf("%w: --policy: %v", exitcode.ErrUsage, err)
		}
		return pin{id: id, short: id.Short()}, nil
	}
	short, err := bundle.ParseShort(s)
	if err != nil {
		return pin{}, fmt.Errorf("%w: --policy: %v (want the policy fingerprint, e.g. 7KQ2-M9XD-4TNV-H3PA, or its 64-digit ID)", exitcode.ErrUsage, err)
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

// resolveShort finds the medium's first policy and, if its fingerprint is short, returns its
// ID, to be pinned for the replay: the fingerprint authenticates the header, whose ID the
// replay then checks as it checks any anchor. If the first policy has another fingerprint, it
// returns the finding instead. If no policy header is found where one belongs, it returns a
// zero ID and no finding: the replay reports what is wrong there, and Run compares the
// fingerprint with the policy the replay trusted, if any.
func resolveShort(m *media.Media, short string) (bundle.ID, *Finding, error) {
	n := 0
	for e, err := range m.Entries(bundle.ChainOffline, 1, nil) {
		if err != nil || n >= maxPolicySearch {
			break
		}
		n++
		data, err := m.Read(e)
		if err != nil || len(data) < bundle.HeaderSize {
			continue
		}
		h, err := bundle.ParseHeader(data)
		if err != nil || h.Kind != bundle.KindPolicy {
			continue
		}
		id := bundle.IDOfHeader(data[:bundle.HeaderSize])
		if id.Short() == short {
			return id, nil, nil
		}
		fe := &FingerprintError{Pinned: short, Found: id}
		return bundle.ID{}, &Finding{Verdict: chain.Verdict(fe), Chain: bundle.ChainOffline.String(), Seq: h.Seq, ID: id.String(),
			Fingerprint: id.Short(), Kind: bundle.KindPolicy.String(), Path: e.Path, Message: fe.Error(), Err: fe}, nil
	}
	return bundle.ID{}, nil, nil
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
