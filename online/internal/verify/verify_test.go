package verify_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/online/internal/store/storetest"
	"github.com/airgap-byok/airgap-byok/online/internal/verify"
	"github.com/airgap-byok/airgap-byok/shared/logsetup"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// fixture is an online station (ledger and journal) on a chaintest medium, whose online
// bundles the station writes itself, so that its ledger knows them.
type fixture struct {
	c   *chaintest.Ceremony
	st  *station.Station
	s   *store.Store
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	c, err := chaintest.New(chaintest.Config{Dir: t.TempDir(), Start: start, Step: time.Second, AllowWeakerKEK: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := storetest.Open(t)
	f := &fixture{c: c, s: s, st: &station.Station{Chain: bundle.ChainOnline, DB: s.DB, Media: c.M, Log: logsetup.Discard()}, now: time.Now()}
	pk, _ := payload.NewPublicKey(c.OnlineKey.Public())
	f.online(t, bundle.ID{}, &payload.Enrollment{Station: "online", Name: "online", Key: pk, Software: "test"}, store.ApplyOwn)
	pko, _ := payload.NewPublicKey(c.OfflineKey.Public())
	if _, err := c.Append(bundle.ChainOffline, &payload.Enrollment{Station: "offline", Name: "offline", Key: pko, Software: "test"}); err != nil {
		t.Fatal(err)
	}
	p := c.NewPolicy()
	pb, err := c.Append(bundle.ChainOffline, p)
	if err != nil {
		t.Fatal(err)
	}
	c.Policy, c.PolicyID = p, pb.ID()
	if _, err := c.Approve(pb.ID(), bundle.KindPolicy, 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.DB.Update(func(tx *bolt.Tx) error { return station.SetAnchor(tx, pb.ID()) }); err != nil {
		t.Fatal(err)
	}
	return f
}

// online appends v to the online chain through the station journal, as byok-online does,
// and tells the ceremony.
func (f *fixture) online(t *testing.T, policy bundle.ID, v any, apply station.Apply) *bundle.Bundle {
	t.Helper()
	pos, err := f.st.Position(policy)
	if err != nil {
		t.Fatal(err)
	}
	pos.Peer = f.c.Heads.Offline
	b, err := f.st.Append(context.Background(), pos, v, ed25519.PrivateKey(f.c.OnlineKey), f.c.Clock, 24*time.Hour, apply)
	if err != nil {
		t.Fatal(err)
	}
	f.c.Clock = f.c.Clock.Add(time.Second)
	f.c.Heads.Online = chain.Head{Seq: b.Header.Seq, ID: b.ID(), Created: b.Header.Created}
	return b
}

// offer offers the ceremony's KEK; without the ledger change when unrecorded.
func (f *fixture) offer(t *testing.T, version string, recorded bool) bundle.ID {
	t.Helper()
	o := f.c.OfferPayload(version)
	apply := store.ApplyOwn
	if !recorded {
		apply = nil
	}
	b := f.online(t, f.c.PolicyID, o, apply)
	f.c.RegisterOffer(b.ID(), o)
	return b.ID()
}

func (f *fixture) run(t *testing.T) (*verify.Report, error) {
	t.Helper()
	return verify.Run(context.Background(), verify.Options{Station: f.st, Store: f.s, Now: f.now, Log: logsetup.Discard()})
}

func pkgByName(rep *verify.Report, name string) *verify.Package {
	for _, p := range rep.Packages {
		if p.KeyName == name {
			return p
		}
	}
	return nil
}

func TestPackagesAreJudged(t *testing.T) {
	f := newFixture(t)
	off := f.offer(t, "00000000000000000000000000000001", true)
	ready, _ := f.c.Package(off, payload.ECP256, "ready")
	f.c.Approve(ready.ID(), bundle.KindKeyPackage, 0, 1)
	half, _ := f.c.Package(off, payload.ECP256, "half")
	f.c.Approve(half.ID(), bundle.KindKeyPackage, 2)
	old, _ := f.c.Package(off, payload.ECP256, "old", chaintest.Mutate(func(d *bundle.Draft) { d.Expires = d.Created + 1 }))
	f.c.Approve(old.ID(), bundle.KindKeyPackage, 0, 1)
	done, _ := f.c.Package(off, payload.RSA2048, "done")
	f.c.Approve(done.ID(), bundle.KindKeyPackage, 0, 1)
	rc, err := f.c.ReceiptPayload(done)
	if err != nil {
		t.Fatal(err)
	}
	f.online(t, f.c.PolicyID, rc, store.ApplyOwn)

	rep, err := f.run(t)
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if len(rep.Findings) != 0 || rep.Err() != nil {
		t.Fatalf("findings: %+v", rep.Findings)
	}
	if rep.Policy == nil || rep.Policy.ID != f.c.PolicyID || rep.Policy.Threshold != 2 || !rep.Complete {
		t.Errorf("report policy %+v, complete %v", rep.Policy, rep.Complete)
	}
	if n := len(rep.Bundles); uint64(n) != rep.Heads.Offline.Seq+rep.Heads.Online.Seq {
		t.Errorf("%d bundles reported, heads %d + %d", n, rep.Heads.Offline.Seq, rep.Heads.Online.Seq)
	}
	tests := []struct {
		name                                       string
		outstanding, approved, expired, uploadable bool
		approvals                                  int
	}{
		{"ready", true, true, false, true, 2},
		{"half", true, false, false, false, 1},
		{"old", true, true, true, false, 2},
		{"done", false, false, false, false, 0},
	}
	for _, tt := range tests {
		p := pkgByName(rep, tt.name)
		if p == nil {
			t.Errorf("package %s missing", tt.name)
			continue
		}
		if p.Outstanding != tt.outstanding || p.Approved != tt.approved || p.Expired != tt.expired || p.Uploadable != tt.uploadable || p.Approvals != tt.approvals || !p.KEKOffered {
			t.Errorf("package %s = %+v", tt.name, p)
		}
		if !p.Uploadable && len(p.Reasons) == 0 {
			t.Errorf("package %s is not uploadable and says no reason", tt.name)
		}
		if p.Manifest() == nil || p.Manifest().KeyName != tt.name {
			t.Errorf("package %s has no manifest", tt.name)
		}
	}
	if u := pkgByName(rep, "done").Upload; u == nil || u.State != store.StateImported {
		t.Errorf("done's ledger record = %+v", u)
	}
}

func TestPackageWithAKEKThisStationDidNotRecordIsAFinding(t *testing.T) {
	f := newFixture(t)
	off := f.offer(t, "00000000000000000000000000000001", false)
	p, _ := f.c.Package(off, payload.ECP256, "key-1")
	f.c.Approve(p.ID(), bundle.KindKeyPackage, 0, 1)
	rep, err := f.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || !rep.Findings[0].Blocking || rep.Findings[0].Verdict != "policy violation" {
		t.Fatalf("findings = %+v", rep.Findings)
	}
	var fe *verify.FindingError
	if err := rep.Err(); !errors.Is(err, chain.ErrPolicyViolation) || !errors.As(err, &fe) {
		t.Errorf("Err() = %v", err)
	}
	if pkg := pkgByName(rep, "key-1"); pkg.Uploadable || pkg.KEKOffered {
		t.Errorf("package = %+v", pkg)
	}
}

func TestRunStopsOnATamperedMedium(t *testing.T) {
	f := newFixture(t)
	// A bundle on the online chain the ledger did not write, in the version the station
	// writes.
	f.c.Version = bundle.Version
	o := f.c.OfferPayload("00000000000000000000000000000009")
	if _, err := f.c.Append(bundle.ChainOnline, o); err != nil {
		t.Fatal(err)
	}
	_, err := f.run(t)
	var de *station.DisagreeError
	if !errors.Is(err, station.ErrForeignBundles) || !errors.As(err, &de) {
		t.Fatalf("Run() = %v, want ErrForeignBundles with exit 3", err)
	}
}

func TestRunNeedsAnAnchor(t *testing.T) {
	f := newFixture(t)
	if err := f.s.DB.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("station")).Delete([]byte("anchor")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.run(t); !errors.Is(err, station.ErrNoAnchor) {
		t.Fatalf("Run() = %v, want ErrNoAnchor", err)
	}
}
