package ceremony_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

func TestPackageState(t *testing.T) {
	imported := store.Receipt{Outcome: payload.OutcomeImported}
	rejected := store.Receipt{Outcome: payload.OutcomeRejected}
	mismatch := store.Receipt{Outcome: payload.OutcomePublicKeyMismatch}
	wrongKey := store.Receipt{Outcome: payload.OutcomeImported, KeyMismatch: true}
	tests := []struct {
		name string
		rs   []store.Receipt
		want string
	}{
		{"none", nil, store.PackageOutstanding},
		{"imported", []store.Receipt{imported}, store.PackageImported},
		{"rejected", []store.Receipt{rejected}, store.PackageRejected},
		{"rejected then imported", []store.Receipt{rejected, imported}, store.PackageImported},
		{"mismatch reported", []store.Receipt{mismatch}, store.PackageMismatch},
		{"mismatch found", []store.Receipt{rejected, wrongKey}, store.PackageMismatch},
	}
	for _, tt := range tests {
		if got := ceremony.PackageState(tt.rs); got != tt.want {
			t.Errorf("%s: ceremony.PackageState = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestSync: a sync records the receipts on the medium and the state they give each package,
// counts only what is new, and reports a key in Key Vault that is not the packaged one.
func TestSync(t *testing.T) {
	s := newCustodians(t)
	s.takeKEK(onlinetest.DefaultVault)
	web, db := s.pkg(onlinetest.DefaultVault, "web"), s.pkg(onlinetest.DefaultVault, "db")
	s.approve([]string{"alice", "bob"}, web, db)
	on := s.online()
	defer on.Close()
	for _, outcome := range []string{payload.OutcomeRejected, payload.OutcomeImported} {
		if _, err := on.Receipt(web, outcome); err != nil {
			t.Fatal(err)
		}
	}
	sync := func() (*ceremony.SyncReport, map[bundle.ID]store.Package) {
		t.Helper()
		rep := s.sync()
		pkgs := map[bundle.ID]store.Package{}
		for _, p := range rep.Packages {
			pkgs[p.ID] = p
		}
		return rep, pkgs
	}

	rep, pkgs := sync()
	if rep.Receipts != 2 || rep.New != 2 || rep.Mismatches != 0 || rep.Findings != 0 || len(rep.BadCopies) != 0 || rep.Err() != nil {
		t.Errorf("first sync = %+v, want 2 new receipts and nothing wrong", rep)
	}
	if p := pkgs[web]; p.State != store.PackageImported || len(p.Receipts) != 2 || ceremony.Landed(p.Receipts) == nil || ceremony.Landed(p.Receipts).Version == "" {
		t.Errorf("web after a rejection and an import: state %s, %d receipts; want imported as a version", p.State, len(p.Receipts))
	}
	if p := pkgs[db]; p.State != store.PackageOutstanding || len(p.Receipts) != 0 {
		t.Errorf("db without a receipt: state %s, %d receipts; want %s", p.State, len(p.Receipts), store.PackageOutstanding)
	}

	rep, _ = sync()
	if rep.Receipts != 2 || rep.New != 0 {
		t.Errorf("second sync = %d receipts, %d new; want 2, none new", rep.Receipts, rep.New)
	}

	if _, err := on.Receipt(db, onlinetest.OutcomeWrongKey); err != nil {
		t.Fatal(err)
	}
	rep, pkgs = sync()
	if rep.Receipts != 3 || rep.New != 1 || rep.Mismatches != 1 || rep.Findings != 0 {
		t.Errorf("sync after a wrong key = %+v, want 3 receipts, 1 new, 1 mismatch", rep)
	}
	if p := pkgs[db]; p.State != store.PackageMismatch || !p.Receipts[0].KeyMismatch {
		t.Errorf("db with another key in Key Vault: state %s, want %s", p.State, store.PackageMismatch)
	}
	err := rep.Err()
	if !errors.Is(err, ceremony.ErrKeyMismatch) || !errors.Is(err, chain.ErrKeyMismatch) || !strings.HasSuffix(err.Error(), ": 1 key(s) in Key Vault are not the keys this station packaged") {
		t.Errorf("Err() = %v, want a key mismatch", err)
	}

	// An uploaded package is approved no more.
	sess := s.openInForce()
	defer sess.Close()
	_, err = sess.PlanApprovals(request(nil, web))
	wantKind(t, "PlanApprovals of an uploaded package", err, ceremony.ErrNotAwaitingUpload, "key package "+web.Short()+" is not awaiting upload: it was uploaded already")
}

// TestSyncFindings: a key that reached Key Vault against the policy is a finding, and a
// plain .byok copy that is not its package's is reported.
func TestSyncFindings(t *testing.T) {
	s := newStation(t)
	s.takeKEK(onlinetest.DefaultVault)
	web := s.pkg(onlinetest.DefaultVault, "web")
	copies, err := filepath.Glob(filepath.Join(s.media, "byok", "*.byok"))
	if err != nil || len(copies) != 1 {
		t.Fatalf("plain .byok copies %v, %v; want one", copies, err)
	}
	if err := os.WriteFile(copies[0], []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	on := s.online()
	_, err = on.Receipt(web, payload.OutcomeImported) // with no approval
	on.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep := s.sync()
	if rep.Receipts != 1 || rep.Findings != 1 || rep.Mismatches != 0 || len(rep.BadCopies) != 1 {
		t.Errorf("sync = %+v, want 1 receipt with a finding, and the bad copy", rep)
	}
	wantKind(t, "Err()", rep.Err(), ceremony.ErrPolicyFindings, "1 upload(s) broke the policy (see the findings)")
}

// sync runs a sync of the station, as byok-offline sync opens it, and fails the test if it
// fails.
func (s *station) sync() *ceremony.SyncReport {
	s.t.Helper()
	sess, err := ceremony.Open(ceremony.Options{StateDir: s.state, Media: s.media, Access: ceremony.LedgerOnly})
	if err != nil {
		s.t.Fatal(err)
	}
	defer sess.Close()
	rep, err := sess.Sync(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return rep
}
