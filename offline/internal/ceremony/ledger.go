package ceremony

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"

	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// HasLedger reports whether stateDir holds a ledger (not "": an empty name holds none).
func HasLedger(stateDir string) bool {
	if stateDir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(stateDir, station.LedgerFile))
	return err == nil
}

// StationRecord returns this station's record, or nil before init enrolled it.
func (s *Session) StationRecord() (*store.Station, error) {
	st, err := s.Store.Station()
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return st, err
}

// KnownKeys returns the signing keys the ledger knows, by key ID: the stations' and the
// custodians' of every policy version, this station's and the online station's.
func (s *Session) KnownKeys() (map[bundle.ID]crypto.PublicKey, error) {
	keys := map[bundle.ID]crypto.PublicKey{}
	pols, err := s.Store.Policies()
	if err != nil {
		return nil, err
	}
	add := func(k payload.PublicKey) {
		if pub, err := k.Parse(); err == nil {
			keys[k.ID()] = pub
		}
	}
	for _, p := range pols {
		add(p.Policy.OfflineStation)
		add(p.Policy.OnlineStation)
		for _, c := range p.Policy.Custodians {
			add(c.Key)
		}
	}
	if st, err := s.Store.Station(); err == nil {
		add(st.Key)
	}
	if on, err := s.Store.Online(); err == nil {
		add(on.Key)
	}
	return keys, nil
}

// Timeline replays the medium against the ledger, calling onBundle with every verified bundle
// of both chains in the order they happened. A medium one bundle ahead of the ledger (an
// interrupted write that the next command that writes finishes) is a complete timeline, not
// a failure: it is logged and the error is nil. The result is nil only if the replay could
// not start.
func (s *Session) Timeline(ctx context.Context, onBundle func(*chain.Verified) error) (*chain.Result, error) {
	res, err := s.Replay(ctx, onBundle)
	if ls, lerr := s.Station.Load(); lerr == nil && ls.Pending && errors.Is(err, station.ErrForeignBundles) {
		s.Log.Warn("the medium holds a bundle whose write was interrupted; the next package, approve, kek accept or sync records it")
		err = nil
	}
	return res, err
}
