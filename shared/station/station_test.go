package station

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
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
	pos := chain.Position{Chain: bundle.ChainOnline, Head: chain.Head{Seq: 1, ID: func() bundle.ID { st, _ := s.Load(); return st.Head.ID }()}, Policy: bundle.ID{1}, Version: bundle.Version1}
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

// receipts returns n rejected receipts, payloads any online bundle after the enrollment may
// carry.
func receipts(n int) []Item {
	var items []Item
	for i := range n {
		items = append(items, Item{Payload: &payload.Receipt{Package: bundle.ID{byte(i + 1)}, Vault: "https://v.vault.azure.net", Outcome: payload.OutcomeRejected, Error: "refused"}})
	}
	return items
}

// appendBatchCrashing appends three receipts after the enrollment in one journal cycle and
// turns a crash at point (a station point, or a media point "media-<name>@<n>") into a
// return.
func appendBatchCrashing(t *testing.T, s *Station, key ed25519.PrivateKey, point string, applied *int) (crashed bool) {
	t.Helper()
	hits := map[string]int{}
	stop := func(p string) {
		hits[p]++
		if fmt.Sprintf("%s@%d", p, hits[p]) == point {
			panic(crash{p})
		}
	}
	s.Hook = stop
	media.Hook = func(p string) { stop("media-" + p) }
	defer func() {
		s.Hook, media.Hook = nil, nil
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			crashed = true
		}
	}()
	pos, err := s.Position(bundle.ID{1})
	if err != nil {
		t.Fatal(err)
	}
	items := receipts(3)
	for i := range items {
		items[i].Apply = func(*bolt.Tx, *bundle.Bundle) error { *applied++; return nil }
	}
	bs, err := s.AppendBatch(context.Background(), pos, items, key, time.Unix(1_800_000_100, 0), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bs {
		if b.Header.Seq != pos.Head.Seq+1+uint64(i) || (i > 0 && b.Header.Prev != bs[i-1].ID()) {
			t.Fatalf("bundle %d: seq %d prev %s, want a chain after head %d", i, b.Header.Seq, b.Header.Prev.Short(), pos.Head.Seq)
		}
	}
	return false
}

func TestAppendBatchConvergesAfterCrashAtEveryPoint(t *testing.T) {
	for _, point := range []string{
		"pending-recorded@1", "media-written@1", "committed@1",
		"media-tmp-written@1", "media-renamed@2", "media-tmp-written@3", "media-renamed@3", "media-synced@1", "media-synced@3",
	} {
		t.Run(point, func(t *testing.T) {
			s, key := newStation(t)
			n := 0
			appendCrashing(t, s, key, "none", &n) // the enrollment
			applied := 0
			if !appendBatchCrashing(t, s, key, point, &applied) {
				t.Fatalf("no crash at %s", point)
			}
			if err := s.Recover(func(*bolt.Tx, *bundle.Bundle) error { applied++; return nil }); err != nil {
				t.Fatalf("Recover() = %v", err)
			}
			if applied != 3 {
				t.Errorf("ledger changes applied %d times, want exactly 3 (one per bundle)", applied)
			}
			st, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if st.Pending || st.Head.Seq != 4 {
				t.Errorf("after Recover: pending %v, head seq %d; want false, 4", st.Pending, st.Head.Seq)
			}
			if err := s.CheckMedia(); err != nil {
				t.Errorf("CheckMedia() = %v: ledger and medium disagree", err)
			}
			for seq := uint64(1); seq <= 4; seq++ {
				if _, err := s.Media.Find(bundle.ChainOnline, seq); err != nil {
					t.Errorf("seq %d: %v", seq, err)
				}
			}
			if err := s.Recover(func(*bolt.Tx, *bundle.Bundle) error { applied++; return nil }); err != nil || applied != 3 {
				t.Errorf("second Recover() = %v, applied %d", err, applied)
			}
		})
	}
}

// A batch is one journal cycle: one pending record and one commit for all its bundles, and
// every file written and synced.
func TestAppendBatchIsOneJournalCycle(t *testing.T) {
	s, key := newStation(t)
	n := 0
	appendCrashing(t, s, key, "none", &n)
	var points []string
	s.Hook = func(p string) { points = append(points, p) }
	media.Hook = func(p string) { points = append(points, "media-"+p) }
	defer func() { s.Hook, media.Hook = nil, nil }()
	pos, err := s.Position(bundle.ID{1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendBatch(context.Background(), pos, receipts(3), key, time.Unix(1_800_000_100, 0), time.Hour); err != nil {
		t.Fatal(err)
	}
	want := []string{"pending-recorded",
		"media-tmp-written", "media-renamed", "media-tmp-written", "media-renamed", "media-tmp-written", "media-renamed",
		"media-synced", "media-synced", "media-synced", "media-written", "committed"}
	if !slices.Equal(points, want) {
		t.Errorf("AppendBatch() passed %v, want %v", points, want)
	}
	if bs, err := s.AppendBatch(context.Background(), pos, nil, key, time.Now(), time.Hour); bs != nil || err != nil {
		t.Errorf("AppendBatch(no items) = %v, %v; want nothing", bs, err)
	}
}
