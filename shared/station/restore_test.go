package station

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
)

// wroteOwn records the bundles of c written since n as s's own (as its commits would have).
func wroteOwn(t *testing.T, s *Station, c *chaintest.Ceremony, n int) {
	t.Helper()
	var mine []*bundle.Bundle
	for _, b := range c.Written[n:] {
		if b.Header.Chain == s.Chain {
			mine = append(mine, b)
		}
	}
	if err := s.DB.Update(func(tx *bolt.Tx) error {
		if err := archivePut(tx, mine); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketStation), keyHead, *c.Heads.Of(s.Chain))
	}); err != nil {
		t.Fatal(err)
	}
}

// files returns the bundle files of a medium folder, by path, with their bytes.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ch := range []string{"offline", "online"} {
		err := filepath.WalkDir(filepath.Join(dir, ch), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = string(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// The stick is lost after each station wrote something the other did not see: restored by
// one station, then completed by the other, it holds every bundle, byte for byte, and
// replays to both stations' heads.
func TestRestoreOnBothStationsRebuildsTheLog(t *testing.T) {
	c, off := ceremonyStation(t)
	on := stationOf(t, c, bundle.ChainOnline)
	ctx := context.Background()
	for _, s := range []*Station{off, on} {
		if _, err := s.Replay(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	n, seen := len(c.Written), c.Heads.Offline.Seq // what the online station verified
	more(t, c, "key-2")                            // an offline package and its approval, and an online receipt
	wroteOwn(t, off, c, n)
	wroteOwn(t, on, c, n)
	want := files(t, c.M.Dir())

	dir := t.TempDir()
	off.Media, on.Media = nil, nil
	w, done, err := off.Restore(ctx, dir, nil)
	if err != nil {
		t.Fatalf("offline Restore() = %v", err)
	}
	done()
	if w.Bundles != len(c.Written)-1 || w.Heads.Offline != c.Heads.Offline || w.Heads.Online.Seq != c.Heads.Online.Seq-1 {
		t.Errorf("offline Restore() = %+v, want every bundle but the online receipt it never saw", w)
	}
	w, done, err = on.Restore(ctx, dir, nil)
	if err != nil {
		t.Fatalf("online Restore() after the offline one = %v", err)
	}
	done()
	if present := int(seen + c.Heads.Online.Seq - 1); w.Bundles != 1 || w.Present != present || w.Heads != c.Heads {
		t.Errorf("online Restore() = %+v, want the one receipt added to the %d it holds, heads %+v", w, present, c.Heads)
	}
	got := files(t, dir)
	if len(got) != len(want) {
		t.Fatalf("restored %d bundle files, want %d", len(got), len(want))
	}
	for p, data := range want {
		if got[p] != data {
			t.Errorf("restored %s differs from the original", p)
		}
	}
	onMedium(t, off, dir)
	res, err := chain.Replay(ctx, off.Media, chain.Options{Anchor: c.PolicyID})
	if err != nil || len(res.Findings) != 0 || res.State.Heads != c.Heads {
		t.Errorf("replay of the restored medium: %v, findings %v, heads %+v", err, res.Findings, res.State.Heads)
	}
}

// Restore and Copy write nothing to another ceremony's medium or into a folder that is not
// empty; Copy makes a byte-identical, verified copy.
func TestRestoreAndCopyRefusals(t *testing.T) {
	c, s := ceremonyStation(t)
	ctx := context.Background()
	res, err := s.Replay(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := fullCeremony(t, "other", 7)
	before := files(t, o.M.Dir())
	src := s.Media
	if _, _, err := s.Restore(ctx, o.M.Dir(), nil); !errors.Is(err, ErrForeignMedium) {
		t.Errorf("Restore() onto another ceremony's medium = %v, want ErrForeignMedium", err)
	}
	if after := files(t, o.M.Dir()); len(after) != len(before) {
		t.Errorf("Restore() wrote to another ceremony's medium: %d files, had %d", len(after), len(before))
	}
	s.Media = src
	if _, _, err := s.Copy(ctx, o.M.Dir(), res.State.Heads); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Copy() into a medium = %v, want ErrNotEmpty", err)
	}
	if _, _, err := s.Copy(ctx, filepath.Join(t.TempDir(), "missing"), res.State.Heads); !errors.Is(err, ErrNoFolder) {
		t.Errorf("Copy() into a missing folder = %v, want ErrNoFolder", err)
	}
	dst := t.TempDir()
	w, _, err := s.Copy(ctx, dst, res.State.Heads)
	if err != nil {
		t.Fatalf("Copy() = %v", err)
	}
	if w.Bundles != len(c.Written) || w.Heads != c.Heads {
		t.Errorf("Copy() = %+v, want %d bundles, heads %+v", w, len(c.Written), c.Heads)
	}
	want, got := files(t, c.M.Dir()), files(t, dst)
	for p, data := range want {
		if got[p] != data {
			t.Errorf("copy of %s differs", p)
		}
	}
}

// A backup made with Copy mid-ceremony, the original lost later: both stations restore onto
// the backup what was written since, and it becomes the original, byte for byte.
func TestRestoreCompletesABackup(t *testing.T) {
	c, off := ceremonyStation(t)
	on := stationOf(t, c, bundle.ChainOnline)
	ctx := context.Background()
	res, err := off.Replay(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := on.Replay(ctx, nil); err != nil {
		t.Fatal(err)
	}
	backup := t.TempDir()
	if _, _, err := off.Copy(ctx, backup, res.State.Heads); err != nil {
		t.Fatal(err)
	}
	n := len(c.Written)
	more(t, c, "key-2")
	wroteOwn(t, off, c, n)
	wroteOwn(t, on, c, n)
	if _, err := on.Replay(ctx, nil); err != nil { // the online station saw the new package
		t.Fatal(err)
	}
	want := files(t, c.M.Dir())

	onMedium(t, off, backup)
	if err := off.Identity(); !errors.Is(err, ErrStaleMedium) {
		t.Fatalf("Identity() on the backup = %v, want stale", err)
	}
	for _, s := range []*Station{off, on} {
		_, done, err := s.Restore(ctx, backup, nil)
		if err != nil {
			t.Fatalf("%s Restore() onto the backup = %v", s.Chain, err)
		}
		done()
	}
	got := files(t, backup)
	if len(got) != len(want) {
		t.Fatalf("the completed backup holds %d bundle files, want %d", len(got), len(want))
	}
	for p, data := range want {
		if got[p] != data {
			t.Errorf("%s differs from the original", p)
		}
	}
}
