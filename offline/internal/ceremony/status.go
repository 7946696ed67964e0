package ceremony

import (
	"errors"

	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
)

// Status is what this station's ledger holds; it reads neither the HSM nor the medium.
type Status struct {
	Initialised bool
	Station     *store.Station // nil before init enrolled it
	Online      *store.Online  // nil before init confirmed it
	Custodians  []store.Custodian
	// Policy is the latest version in force, else the latest (InForce false); nil before init
	// recorded one.
	Policy *store.Policy
	// InForce says whether Policy is in force.
	InForce bool
	// Proposal is a later version than the one in force, awaiting the custodians' approval.
	Proposal *store.Policy
	// Head and Peer are the heads of this station's chain and of the online station's that
	// the ledger recorded; Pending says a write to the medium was interrupted.
	Head, Peer chain.Head
	Pending    bool
	KEKs       []store.KEK
	Keys       []store.Key
	Packages   []store.Package
}

// Status gathers what the ledger holds.
func (s *Session) Status() (*Status, error) {
	st := s.Store
	out := &Status{}
	if _, err := st.InitDone(); err == nil {
		out.Initialised = true
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var err error
	if out.Station, err = st.Station(); errors.Is(err, store.ErrNotFound) {
		out.Station = nil
	} else if err != nil {
		return nil, err
	}
	if out.Online, err = st.Online(); errors.Is(err, store.ErrNotFound) {
		out.Online = nil
	} else if err != nil {
		return nil, err
	}
	if out.Custodians, err = st.Custodians(); err != nil {
		return nil, err
	}
	ps, err := st.Policies()
	if err != nil {
		return nil, err
	}
	if len(ps) > 0 {
		in := store.InForceAll(ps)
		cur := len(ps) - 1
		for cur > 0 && !in[cur] {
			cur--
		}
		out.Policy, out.InForce = &ps[cur], in[cur]
		if last := len(ps) - 1; last > cur && in[cur] {
			out.Proposal = &ps[last]
		}
	}
	ls, err := s.Station.Load()
	if err != nil {
		return nil, err
	}
	out.Head, out.Peer, out.Pending = ls.Head, ls.Peer, ls.Pending
	if out.KEKs, err = st.KEKs(); err != nil {
		return nil, err
	}
	if out.Keys, err = st.Keys(); err != nil {
		return nil, err
	}
	if out.Packages, err = st.Packages(); err != nil {
		return nil, err
	}
	return out, nil
}
