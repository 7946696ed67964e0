package station

import (
	"context"
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/fstest"
	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/logsetup"
	"github.com/airgap-byok/airgap-byok/shared/medialock"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
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
				Write:  true, Create: true, Log: logsetup.Discard(),
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

			opts.Create = false
			if _, _, err := Open(opts, nil); !errors.Is(err, medialock.ErrReadOnly) || exitcode.From(err) != exitcode.Media {
				t.Errorf("Open(Write) on a read-only medium = %v (exit %d), want ErrReadOnly, exit %d", err, exitcode.From(err), exitcode.Media)
			}
			opts.LedgerOnly = true
			s, release, err = Open(opts, func(*bolt.Tx, *bundle.Bundle) error { applied++; return nil })
			if pending {
				if err == nil || exitcode.From(err) != exitcode.Media || exitcode.Hint(err) == "" {
					t.Errorf("Open(LedgerOnly) with a write pending on a read-only medium = %v (exit %d), want exit %d and what to do", err, exitcode.From(err), exitcode.Media)
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
