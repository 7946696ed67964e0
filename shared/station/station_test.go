package station

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/logsetup"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

type crash struct{ point string }

func newStation(t *testing.T) (*Station, ed25519.PrivateKey) {
	t.Helper()
	db, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), ledger.Schema{Name: "test", Migrations: []ledger.Migration{{Name: "station", Apply: Migration}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m, err := media.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	return &Station{Chain: bundle.ChainOnline, DB: db, Media: m, Log: logsetup.Discard()}, key
}

func enrollment(t *testing.T, key ed25519.PrivateKey) *payload.Enrollment {
	pk, err := payload.NewPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &payload.Enrollment{Station: "online", Name: "online-1", Key: pk, Software: "test"}
}

// appendCrashing runs Append and turns a crash at point into a return.
func appendCrashing(t *testing.T, s *Station, key ed25519.PrivateKey, point string, applied *int) (crashed bool) {
	t.Helper()
	s.Hook = func(p string) {
		if p == point {
			panic(crash{p})
		}
	}
	defer func() {
		s.Hook = nil
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			crashed = true
		}
	}()
	pos, err := s.Position(bundle.ID{})
	if err != nil {
		t.Fatal(err)
	}
	count := func(*bolt.Tx, *bundle.Bundle) error { *applied++; return nil }
	if _, err := s.Append(context.Background(), pos, enrollment(t, key), key, time.Unix(1_800_000_000, 0), time.Hour, count); err != nil {
		t.Fatal(err)
	}
	return false
}

func TestAppendConvergesAfterCrashAtEveryPoint(t *testing.T) {
	for _, point := range []string{"pending-recorded", "media-written", "committed"} {
		t.Run(point, func(t *testing.T) {
			s, key := newStation(t)
			applied := 0
			if !appendCrashing(t, s, key, point, &applied) {
				t.Fatalf("no crash at %s", point)
			}
			if err := s.Recover(func(*bolt.Tx, *bundle.Bundle) error { applied++; return nil }); err != nil {
				t.Fatalf("Recover() = %v", err)
			}
			if applied != 1 {
				t.Errorf("ledger changes applied %d times, want exactly 1", applied)
			}
			st, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if st.Pending || st.Head.Seq != 1 {
				t.Errorf("after Recover: pending %v, head seq %d; want false, 1", st.Pending, st.Head.Seq)
			}
			if err := s.CheckMedia(); err != nil {
				t.Errorf("CheckMedia() = %v: ledger and medium disagree", err)
			}
			// A second Recover is a no-op.
			if err := s.Recover(func(*bolt.Tx, *bundle.Bundle) error { applied++; return nil }); err != nil || applied != 1 {
				t.Errorf("second Recover() = %v, applied %d", err, applied)
			}
		})
	}
}

func TestCheckMediaDetectsRollbackAndForeignBundles(t *testing.T) {
	s, key := newStation(t)
	n := 0
	appendCrashing(t, s, key, "none", &n)
	// Another medium, empty: a rollback.
	other, err := media.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	orig := s.Media
	s.Media = other
	if err := s.CheckMedia(); !errors.Is(err, chain.ErrRollback) {
		t.Errorf("CheckMedia(empty medium) = %v, want ErrRollback", err)
	}
	s.Media = orig
	// A bundle the ledger did not write.
	pos := chain.Position{Chain: bundle.ChainOnline, Head: chain.Head{Seq: 1, ID: func() bundle.ID { st, _ := s.Load(); return st.Head.ID }()}, Policy: bundle.ID{1}}
	d, err := chain.Draft(pos, &payload.Receipt{Package: bundle.ID{2}, Vault: "https://v.vault.azure.net", Outcome: payload.OutcomeRejected, Error: "x"}, time.Unix(1_800_000_100, 0), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Seal(d, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := orig.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckMedia(); !errors.Is(err, ErrForeignBundles) {
		t.Errorf("CheckMedia(extra bundle) = %v, want ErrForeignBundles", err)
	}
}
