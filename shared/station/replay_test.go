package station

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/logsetup"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// ceremonyStation returns a software ceremony's medium (setup, a KEK offer, a package with
// its approvals and receipt) and the offline station's view of it: a ledger that trusts its
// policy and wrote its offline chain.
func ceremonyStation(t *testing.T) (*chaintest.Ceremony, *Station) {
	t.Helper()
	c := fullCeremony(t, "m", 0)
	return c, stationOf(t, c, bundle.ChainOffline)
}

// fullCeremony returns a software ceremony (chaintest.Full, one EC-P256 package) in the
// folder name of a new temporary folder, from seed.
func fullCeremony(t *testing.T, name string, seed uint64) *chaintest.Ceremony {
	t.Helper()
	c, err := chaintest.New(chaintest.Config{Dir: filepath.Join(t.TempDir(), name), Seed: seed, FastWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Full(payload.ECP256); err != nil {
		t.Fatal(err)
	}
	return c
}

// stationOf returns station ch's view of c's medium: a ledger that trusts its policy and
// wrote chain ch.
func stationOf(t *testing.T, c *chaintest.Ceremony, ch bundle.Chain) *Station {
	t.Helper()
	db, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), ledger.Schema{Name: "test", Migrations: []ledger.Migration{{Name: "station", Apply: Migration}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := &Station{Chain: ch, DB: db, Media: c.M, Log: logsetup.Discard()}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := SetAnchor(tx, c.PolicyID); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketStation), keyHead, *c.Heads.Of(ch))
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// wrote records the ceremony's offline head as this station's.
func wrote(t *testing.T, s *Station, c *chaintest.Ceremony) {
	t.Helper()
	if err := s.DB.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketStation), keyHead, c.Heads.Offline) }); err != nil {
		t.Fatal(err)
	}
}

// more writes another key package, approved and receipted.
func more(t *testing.T, c *chaintest.Ceremony, name string) {
	t.Helper()
	var offer bundle.ID
	for _, b := range c.Written {
		if b.Header.Kind == bundle.KindKEKOffer {
			offer = b.ID()
		}
	}
	pkg, err := c.Package(offer, payload.ECP256, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Receipt(pkg); err != nil {
		t.Fatal(err)
	}
}

func stateJSON(t *testing.T, st *chain.State) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ReplayState resumes from the checkpoint of the last clean replay: it reaches the state a
// full replay reaches while reading only what was written since.
func TestReplayStateResumesFromTheCheckpoint(t *testing.T) {
	c, s := ceremonyStation(t)
	ctx := context.Background()
	first, err := s.ReplayState(ctx) // no checkpoint yet: everything
	if err != nil {
		t.Fatalf("ReplayState() = %v", err)
	}
	if cp, err := s.checkpoint(); err != nil || cp == nil || cp.Heads != first.State.Heads {
		t.Fatalf("checkpoint after a clean replay = %v, %v; want the replay's state", cp, err)
	}
	cpHeads := first.State.Heads

	more(t, c, "key-2")
	more(t, c, "key-3")
	wrote(t, s, c)
	full, err := chain.Replay(ctx, c.M, chain.Options{Anchor: c.PolicyID})
	if err != nil {
		t.Fatal(err)
	}

	// Damage a bundle the checkpoint covers: a full replay stops there, a resumed one never
	// reads it.
	old := filepath.Join(c.M.Dir(), "offline", "0000000000000")
	ents, err := os.ReadDir(old)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(old, ents[2].Name())
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-5] ^= 1
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}

	res, err := s.ReplayState(ctx)
	if err != nil {
		t.Fatalf("ReplayState() = %v, want the resumed replay to succeed", err)
	}
	if got, want := stateJSON(t, res.State), stateJSON(t, full.State); got != want {
		t.Errorf("resumed state differs from the full replay's:\n got %s\nwant %s", got, want)
	}
	if n := res.State.Counts.Offline + res.State.Counts.Online; n != uint64(len(c.Written)) {
		t.Errorf("state counts %d bundles, want %d", n, len(c.Written))
	}
	if res.State.Heads == cpHeads {
		t.Error("the resumed replay did not advance")
	}
	if st, _ := s.Load(); st.Peer != res.State.Heads.Online {
		t.Errorf("ledger peer = %+v, want %+v", st.Peer, res.State.Heads.Online)
	}
	var hm *bundle.HashMismatchError
	if _, err := s.Replay(ctx, nil); !errors.As(err, &hm) {
		t.Errorf("Replay() = %v, want the damaged bundle's hash mismatch", err)
	}
}

// Without the bundles its checkpoint ends at, ReplayState replays everything, which reports
// the rollback.
func TestReplayStateFallsBackOnARolledBackMedium(t *testing.T) {
	c, s := ceremonyStation(t)
	ctx := context.Background()
	if _, err := s.ReplayState(ctx); err != nil {
		t.Fatal(err)
	}
	h := c.Heads.Online
	e, err := c.M.Find(bundle.ChainOnline, h.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(c.M.Dir(), filepath.FromSlash(e.Path))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplayState(ctx); !errors.Is(err, chain.ErrRollback) {
		t.Errorf("ReplayState() = %v, want ErrRollback", err)
	}
}

// A replay with a finding keeps no checkpoint, so a resumed replay reports it again.
func TestNoCheckpointAfterAFinding(t *testing.T) {
	c, s := ceremonyStation(t)
	ctx := context.Background()
	var offer bundle.ID
	for _, b := range c.Written {
		if b.Header.Kind == bundle.KindKEKOffer {
			offer = b.ID()
		}
	}
	pkg, err := c.Package(offer, payload.ECP256, "key-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Receipt(pkg); err != nil { // no approvals: a finding at upload
		t.Fatal(err)
	}
	wrote(t, s, c)
	for range 2 {
		res, err := s.ReplayState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(res.Err(), chain.ErrMissingApproval) {
			t.Fatalf("ReplayState() findings = %v, want the missing approval", res.Err())
		}
		if cp, _ := s.checkpoint(); cp != nil {
			t.Fatalf("checkpoint kept after a replay with findings")
		}
	}
}

// BenchmarkReplayState measures what a command that needs only the state pays to learn it
// on a medium of about 3,000 bundles (1,000 key packages, approved and receipted), when one
// more package was written since the last replay: Replay verifies everything, ReplayState
// resumes from the checkpoint; Open is what a command pays when it opens the station with the
// medium: Identity (the stick is this ceremony's newest), then ReplayState.
func BenchmarkReplayState(b *testing.B) {
	c, err := chaintest.New(chaintest.Config{Dir: filepath.Join(b.TempDir(), "m"), FastWrite: true, Step: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Full(payload.ECP256); err != nil {
		b.Fatal(err)
	}
	var offer bundle.ID
	for _, w := range c.Written {
		if w.Header.Kind == bundle.KindKEKOffer {
			offer = w.ID()
		}
	}
	tmpl, err := c.PackagePayload(offer, payload.ECP256, "key-0")
	if err != nil {
		b.Fatal(err)
	}
	add := func(i int) {
		k := *tmpl
		k.KeyName = fmt.Sprintf("key-%d", i)
		pkg, err := c.Append(bundle.ChainOffline, &k)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Receipt(pkg); err != nil {
			b.Fatal(err)
		}
		c.Written = c.Written[:0]
	}
	for i := range 1000 {
		add(i + 1)
	}
	db, err := ledger.Open(filepath.Join(b.TempDir(), "ledger.db"), ledger.Schema{Name: "test", Migrations: []ledger.Migration{{Name: "station", Apply: Migration}}})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := &Station{Chain: bundle.ChainOffline, DB: db, Media: c.M, Log: logsetup.Discard()}
	setHead := func() {
		if err := db.Update(func(tx *bolt.Tx) error {
			if err := SetAnchor(tx, c.PolicyID); err != nil {
				return err
			}
			return putJSON(tx.Bucket(bucketStation), keyHead, c.Heads.Offline)
		}); err != nil {
			b.Fatal(err)
		}
	}
	setHead()
	ctx := context.Background()
	for _, mode := range []string{"Replay", "ReplayState", "Open"} {
		b.Run(mode, func(b *testing.B) {
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				if _, err := s.ReplayState(ctx); err != nil { // the checkpoint, as the last command left it
					b.Fatal(err)
				}
				add(1000 + b.N)
				setHead()
				cpu0 := cpuTime()
				b.StartTimer()
				var res *chain.Result
				switch mode {
				case "Replay":
					res, err = s.Replay(ctx, nil)
				case "Open":
					if err = s.Identity(); err != nil {
						b.Fatalf("Identity() = %v", err)
					}
					fallthrough
				default:
					res, err = s.ReplayState(ctx)
				}
				cpu += cpuTime() - cpu0
				if err != nil || res.Err() != nil {
					b.Fatalf("%s() = %v, %v", mode, err, res.Err())
				}
			}
			b.ReportMetric(float64(c.Heads.Offline.Seq+c.Heads.Online.Seq), "bundles")
			// The process's CPU time (user and system) in the timed part: what the wall time
			// is without waiting on a loaded machine.
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
