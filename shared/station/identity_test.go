package station

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// copyMedium copies the medium folder of c to a new folder and returns it.
func copyMedium(t *testing.T, c *chaintest.Ceremony) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(c.M.Dir())); err != nil {
		t.Fatal(err)
	}
	return dst
}

// onMedium points s at the medium in dir.
func onMedium(t *testing.T, s *Station, dir string) {
	t.Helper()
	m, err := media.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s.Media = m
}

// A replay keeps what it verified; an older copy of the medium is then stale (not a fork),
// another ceremony's medium is foreign, and one with another bundle at a seq the station saw
// is a fork.
func TestIdentityTellsStaleForeignAndForkedMediaApart(t *testing.T) {
	c, s := ceremonyStation(t)
	ctx := context.Background()
	if _, err := s.Replay(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Identity(); err != nil {
		t.Fatalf("Identity() on the medium just verified = %v", err)
	}
	older := copyMedium(t, c)
	more(t, c, "key-2")
	wrote(t, s, c)
	if _, err := s.Replay(ctx, nil); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Load()
	if st.Peer != c.Heads.Online {
		t.Fatalf("ledger peer = %+v, want the verified online head %+v", st.Peer, c.Heads.Online)
	}
	current := s.Media

	// The older copy: behind on both chains, agreeing where it has bundles.
	onMedium(t, s, older)
	var stale *StaleError
	err := s.Identity()
	if !errors.As(err, &stale) || !errors.Is(err, ErrStaleMedium) {
		t.Fatalf("Identity() on an older copy = %v, want a *StaleError", err)
	}
	if want := "this stick is an older copy: the station has written offline seq"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q lacks %q", err, want)
	}
	if _, err := s.Replay(ctx, nil); !errors.Is(err, chain.ErrRollback) {
		t.Errorf("Replay() on the older copy = %v, want a rollback", err)
	}

	// A fork: the copy names another bundle at a seq the station verified.
	forked := copyMedium(t, c)
	e, err := current.Find(bundle.ChainOnline, c.Heads.Online.Seq)
	if err != nil {
		t.Fatal(err)
	}
	other := e.ID
	other[0] ^= 1
	if err := os.Rename(filepath.Join(forked, e.Path), filepath.Join(forked, media.Path(bundle.ChainOnline, e.Seq, other))); err != nil {
		t.Fatal(err)
	}
	onMedium(t, s, forked)
	err = s.Identity()
	var de *DisagreeError
	if !errors.Is(err, chain.ErrFork) || !errors.As(err, &de) || !de.ByIdentity || errors.Is(err, ErrStaleMedium) {
		t.Errorf("Identity() on a forked copy = %v, want a fork in a *DisagreeError found by Identity", err)
	}

	// Another ceremony's medium.
	o := fullCeremony(t, "other", 7)
	s.Media = o.M
	if err := s.Identity(); !errors.Is(err, ErrForeignMedium) {
		t.Errorf("Identity() on another ceremony's medium = %v, want ErrForeignMedium", err)
	}
}

// The archive holds every bundle of both chains, byte for byte, after the replays and the
// appends that saw them.
func TestArchiveHoldsWhatTheStationVerified(t *testing.T) {
	c, s := ceremonyStation(t)
	if _, err := s.Replay(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ch := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		want := uint64(1)
		for b, err := range s.Archived(ch) {
			if err != nil {
				t.Fatal(err)
			}
			if b.Header.Seq != want {
				t.Fatalf("archive %s: seq %d, want %d", ch, b.Header.Seq, want)
			}
			data, err := os.ReadFile(c.File(b))
			if err != nil || string(data) != string(b.Marshal()) {
				t.Fatalf("archive %s seq %d differs from the medium's file (%v)", ch, b.Header.Seq, err)
			}
			want++
			n++
		}
	}
	if n != len(c.Written) {
		t.Errorf("archive holds %d bundles, want %d", n, len(c.Written))
	}
}

// ReplayState does not trust a checkpoint on a medium that lost bundles it skips: a listing
// with gaps before the checkpoint's heads makes it replay everything, which stops. The same
// when the listing it checks is the one Identity took (as every open with a medium runs it).
func TestReplayStateChecksWhatItSkips(t *testing.T) {
	for _, identity := range []bool{false, true} {
		t.Run(fmt.Sprintf("listed by Identity %v", identity), func(t *testing.T) {
			c, s := ceremonyStation(t)
			ctx := context.Background()
			if _, err := s.ReplayState(ctx); err != nil {
				t.Fatal(err)
			}
			for _, seq := range []uint64{2, 4} {
				e, err := c.M.Find(bundle.ChainOffline, seq)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(filepath.Join(c.M.Dir(), filepath.FromSlash(e.Path))); err != nil {
					t.Fatal(err)
				}
			}
			if identity {
				if err := s.Identity(); err != nil {
					t.Fatalf("Identity() with offline seq 2 and 4 gone = %v, want nil (the rest agrees)", err)
				}
			}
			if _, err := s.ReplayState(ctx); err == nil {
				t.Fatal("ReplayState() on a medium without offline seq 2 and 4 = nil, want the replay's stop")
			}
		})
	}
}

// The listing prefix that holds checks: one bundle at each seq from 1, each the archived one.
func TestListingPrefix(t *testing.T) {
	type entry struct {
		seq      uint64
		archived bool
	}
	for _, tt := range []struct {
		name    string
		entries []entry
		want    uint64
	}{
		{"whole", []entry{{1, true}, {2, true}, {3, true}}, 3},
		{"empty", nil, 0},
		{"a gap", []entry{{1, true}, {3, true}, {4, true}}, 1},
		{"no first", []entry{{2, true}}, 0},
		{"a second bundle at a seq", []entry{{1, true}, {2, true}, {2, false}, {3, true}}, 1},
		{"a second archived name at a seq", []entry{{1, true}, {2, true}, {2, true}}, 1},
		{"another bundle", []entry{{1, true}, {2, false}, {3, true}}, 1},
		{"beyond the archive", []entry{{1, true}, {2, true}, {3, false}}, 2},
	} {
		var p prefix
		for _, e := range tt.entries {
			p.see(e.seq, e.archived)
		}
		if p.n != tt.want {
			t.Errorf("%s: prefix %d, want %d", tt.name, p.n, tt.want)
		}
	}
}

// holds checks what ReplayState skips against the listing Identity took of the same medium
// (every open with a medium runs Identity, under the lock), without listing it again: a file
// removed after that listing is not seen until Identity lists again.
func TestHoldsReusesIdentitysListing(t *testing.T) {
	c, s := ceremonyStation(t)
	if _, err := s.ReplayState(context.Background()); err != nil {
		t.Fatal(err)
	}
	cp, err := s.checkpoint()
	if err != nil || cp == nil {
		t.Fatalf("checkpoint() = %v, %v", cp, err)
	}
	if err := s.Identity(); err != nil {
		t.Fatal(err)
	}
	e, err := c.M.Find(bundle.ChainOffline, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(c.M.Dir(), filepath.FromSlash(e.Path))); err != nil {
		t.Fatal(err)
	}
	if !s.holds(cp.Heads) {
		t.Error("holds() after Identity listed the medium = false, want true (it uses that listing)")
	}
	if err := s.Identity(); err != nil {
		t.Fatal(err)
	}
	if s.holds(cp.Heads) {
		t.Error("holds() after Identity listed the medium without offline seq 2 = true, want false")
	}
}
