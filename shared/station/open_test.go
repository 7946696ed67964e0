package station

import (
	"context"
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/shared/fstest"
	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/logsetup"
	"github.com/airgap-byok/airgap-byok/shared/medialock"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
)

// A command that writes only its ledger (LedgerOnly) works on a read-only medium unless an
// interrupted write waits to be finished there; a command that writes bundles never does.
func TestOpenLedgerOnlyOnAReadOnlyMedium(t *testing.T) {
	for _, pending := range []bool{false, true} {
		name := map[bool]string{false: "nothing-pending", true: "write-pending"}[pending]
		t.Run(name, func(t *testing.T) {
			opts := OpenOptions{
				Chain: bundle.ChainOnline, StateDir: t.TempDir(), MediaDir: t.TempDir(),
				Schema: ledger.Schema{Name: "test", Migrations: []ledger.Migration{{Name: "station", Apply: Migration}}},
				Write:  true, Create: true, InitMedium: true, Log: logsetup.Discard(),
			}
			s, release, err := Open(opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, key := newStation(t)
			applied := 0
			if pending {
				if !appendCrashing(t, s, key, "pending-recorded", &applied) {
					t.Fatal("no crash")
				}
			} else {
				pos, err := s.Position(bundle.ID{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Append(context.Background(), pos, enrollment(t, key), key, time.Unix(1_800_000_000, 0), time.Hour, nil); err != nil {
					t.Fatal(err)
				}
			}
			release()
			fstest.ReadOnly(t, opts.MediaDir)

			opts.Create, opts.InitMedium = false, false
			if _, _, err := Open(opts, nil); !errors.Is(err, medialock.ErrReadOnly) {
				t.Errorf("Open(Write) on a read-only medium = %v, want ErrReadOnly", err)
			}
			opts.LedgerOnly = true
			s, release, err = Open(opts, func(*bolt.Tx, *bundle.Bundle) error { applied++; return nil })
			if pending {
				var pe *PendingError
				if !errors.As(err, &pe) || !errors.Is(err, medialock.ErrReadOnly) {
					t.Errorf("Open(LedgerOnly) with a write pending on a read-only medium = %v, want a *PendingError", err)
				}
				if err == nil {
					release()
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(LedgerOnly) on a read-only medium, nothing pending = %v", err)
			}
			defer release()
			if err := s.CheckMedia(); err != nil {
				t.Errorf("CheckMedia() = %v", err)
			}
		})
	}
}

// A bundle the replay would report as clock skew is refused before anything is written: one
// created more than the tolerance before the other station's bundle it builds on.
func TestAppendRefusesAClockBehindThePeer(t *testing.T) {
	s, key := newStation(t)
	peer := chain.Head{Seq: 3, ID: bundle.ID{3}, Created: 1_800_000_600}
	pos := chain.Position{Chain: s.Chain, Peer: peer}
	for _, tt := range []struct {
		known   bool
		skew    time.Duration
		now     int64
		refused bool
	}{
		{false, 0, 1_800_000_000, false},             // no policy known: nothing to check against
		{true, 5 * time.Minute, 1_800_000_000, true}, // 10 minutes behind, 5 allowed
		{true, 10 * time.Minute, 1_800_000_000, false},
		{true, 0, 1_800_000_600, false},
	} {
		s.skewKnown = false
		if tt.known {
			s.SetMaxSkew(tt.skew)
		}
		_, err := s.Append(context.Background(), pos, enrollment(t, key), key, time.Unix(tt.now, 0), time.Hour, nil)
		var ce *ClockError
		if got := errors.Is(err, chain.ErrClockSkew); got != tt.refused || (tt.refused && (!errors.As(err, &ce) || !ce.Now.Equal(time.Unix(tt.now, 0)) || ce.Peer.Unix() != peer.Created)) {
			t.Errorf("Append at %d, peer at %d, skew %s (known %v) = %v, want refused %v", tt.now, peer.Created, tt.skew, tt.known, err, tt.refused)
		}
		if tt.refused {
			if h, ok, _ := s.Media.Head(s.Chain); ok {
				t.Errorf("a refused append wrote seq %d", h.Seq)
			}
			if st, _ := s.Load(); st.Pending {
				t.Error("a refused append left a pending write")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		// Start over: the next case appends at the same position.
		s, key = newStation(t)
	}
}
