package station

// A medium's identity, read from its listing against what this station saw (SPEC.md §8.4).
//
// A medium is this ceremony's when the bundles it names at the places this station knows
// (every bundle it wrote or verified, kept in its archive, and its two heads) are the ones the
// station knows there. Then it is either current (it holds at least everything the station
// knows) or an older copy (stale: behind on a chain, with nothing that disagrees). A medium
// whose first bundles are all other than this station's belongs to another ceremony; one that
// agrees at some places and not at others has a forked history. The listing is cheap (names
// only, no bundle read): names are claims, so a check that passes here is followed by a
// replay, and one that refuses refuses in all three cases before anything is written.

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
)

// ErrStaleMedium means the medium is an older copy of this ceremony's stick.
var ErrStaleMedium = errors.New("this stick is an older copy")

// ErrForeignMedium means the medium belongs to another ceremony.
var ErrForeignMedium = errors.New("this stick belongs to another ceremony")

// StaleError reports a medium behind what this station wrote or verified, whose history
// agrees with what it saw.
type StaleError struct {
	Chain   bundle.Chain
	Own     bool   // the chain is this station's own
	Station uint64 // the seq the station wrote or verified
	Medium  uint64 // the highest seq the medium holds
}

func (e *StaleError) Error() string {
	did := "verified"
	if e.Own {
		did = "written"
	}
	return fmt.Sprintf("this stick is an older copy: the station has %s %s seq %d, the stick holds up to %d; use the newest stick, or restore one",
		did, e.Chain, e.Station, e.Medium)
}

func (e *StaleError) Is(t error) bool { return t == ErrStaleMedium }

// ForeignError reports a medium of another ceremony: its first bundle of a chain is not
// the one this station knows.
type ForeignError struct {
	Chain          bundle.Chain
	Station, Found bundle.ID
}

func (e *ForeignError) Error() string {
	return fmt.Sprintf("this stick belongs to another ceremony: its %s chain begins with bundle %s, this ceremony's with %s", e.Chain, e.Found.Short(), e.Station.Short())
}

func (e *ForeignError) Is(t error) bool { return t == ErrForeignMedium }

// Identity compares the medium's listing with what the station knows (see the top of this
// file). It returns nil for a medium of this ceremony that holds at least everything the
// station knows (or where it cannot tell: a ledger that knows nothing yet), a *ForeignError,
// a *StaleError, or a *DisagreeError: a *chain.ForkError, or this station's own bundles
// beyond its head that are not its pending write as ErrForeignBundles. It reads only names.
func (s *Station) Identity() error {
	st, err := s.Load()
	if err != nil {
		return err
	}
	pending := map[bundle.ID]bool{}
	var fork *chain.ForkError
	var foreign *ForeignError
	agreed := false
	heads := map[bundle.Chain]uint64{}
	matched := map[bundle.Chain]uint64{}
	err = s.DB.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketStation).Get(keyPending); v != nil {
			if bs, err := parsePending(v); err == nil {
				for _, b := range bs {
					pending[b.ID()] = true
				}
			}
		}
		ab := tx.Bucket(bucketArchive)
		for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
			known := st.Peer
			if c == s.Chain {
				known = st.Head
			}
			var p prefix
			for e, err := range s.Media.Entries(c, 1, nil) {
				if err != nil {
					return fmt.Errorf("%w: list the medium: %v", ErrUnreadable, err)
				}
				heads[c] = max(heads[c], e.Seq)
				id, ok := archivedID(ab, c, e.Seq)
				p.see(e.Seq, ok && id == e.ID)
				if !ok && e.Seq == known.Seq {
					id, ok = known.ID, true
				}
				switch {
				case ok && id == e.ID:
					agreed = true
				case ok:
					if e.Seq == 1 && foreign == nil {
						foreign = &ForeignError{Chain: c, Station: id, Found: e.ID}
					}
					if fork == nil {
						fork = &chain.ForkError{Chain: c, Seq: e.Seq, A: id, B: e.ID, Reason: "the stick holds another bundle where this station saw one"}
					}
				case c == s.Chain && known.Seq > 0 && e.Seq > known.Seq && !pending[e.ID] && fork == nil:
					// (A ledger that has written nothing yet is init's to judge.)
					fork = &chain.ForkError{Chain: c, Seq: e.Seq, B: e.ID, Reason: "the stick holds a bundle of this station's chain that this station did not write"}
				}
			}
			matched[c] = p.n
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.listed = listing{m: s.Media, matched: matched}
	switch {
	case foreign != nil && !agreed:
		return foreign
	case fork != nil:
		if fork.A.IsZero() {
			return &DisagreeError{Err: fmt.Errorf("%w (%s chain seq %d)", ErrForeignBundles, fork.Chain, fork.Seq), ByIdentity: true}
		}
		return &DisagreeError{Err: fork, ByIdentity: true}
	}
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		known, own := st.Peer, false
		if c == s.Chain {
			known, own = st.Head, true
		}
		if heads[c] < known.Seq {
			return &StaleError{Chain: c, Own: own, Station: known.Seq, Medium: heads[c]}
		}
	}
	return nil
}
