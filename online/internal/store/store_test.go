package store_test

import (
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/online/internal/store/storetest"
	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

var now = time.Unix(1_800_000_000, 0)

func TestMigrationsCreateTheBucketTree(t *testing.T) {
	s := storetest.Open(t)
	v, err := ledger.Version(s.DB)
	if err != nil {
		t.Fatal(err)
	}
	if v != uint64(len(store.Schema.Migrations)) {
		t.Errorf("schema version = %d, want %d", v, len(store.Schema.Migrations))
	}
	err = s.DB.View(func(tx *bolt.Tx) error {
		for _, path := range [][]string{{"meta"}, {"station"}, {"online"}, {"online", "keks"}, {"online", "uploads"}} {
			b := tx.Bucket([]byte(path[0]))
			for _, p := range path[1:] {
				if b == nil {
					break
				}
				b = b.Bucket([]byte(p))
			}
			if b == nil {
				t.Errorf("bucket %v is missing", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEachMigrationStepByStep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	for n := 1; n <= len(store.Schema.Migrations); n++ {
		partial := ledger.Schema{Name: store.Schema.Name, Migrations: store.Schema.Migrations[:n]}
		db, err := ledger.Open(path, partial)
		if err != nil {
			t.Fatalf("migration %d (%s): %v", n, partial.Migrations[n-1].Name, err)
		}
		if v, _ := ledger.Version(db); v != uint64(n) {
			t.Errorf("after migration %d: version %d", n, v)
		}
		db.Close()
	}
}

func TestIntentLifecycle(t *testing.T) {
	s := storetest.Open(t)
	pkg := bundle.ID{7}
	for want := 1; want <= 3; want++ {
		got, err := s.RecordIntent(pkg, "https://v.vault.azure.net", "key-1", now)
		if err != nil || got != want {
			t.Fatalf("RecordIntent() = %d, %v; want attempt %d", got, err, want)
		}
	}
	u, err := s.Upload(pkg)
	if err != nil || u == nil || u.State != store.StateIntent || u.Attempts != 3 || u.KeyName != "key-1" {
		t.Fatalf("Upload() = %+v, %v", u, err)
	}
	if err := s.MarkFailed(pkg, "not imported", now); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.Upload(pkg); u.State != store.StateFailed || u.Error != "not imported" {
		t.Errorf("after MarkFailed: %+v", u)
	}
	// A failed upload may be tried again.
	if got, err := s.RecordIntent(pkg, "https://v.vault.azure.net", "key-1", now); err != nil || got != 4 {
		t.Errorf("RecordIntent after failure = %d, %v", got, err)
	}
}

// ceremony returns a medium with an honest package and its receipt, sealed by the
// ceremony's online key.
func ceremony(t *testing.T) (*chaintest.Ceremony, *bundle.Bundle) {
	t.Helper()
	c, err := chaintest.New(chaintest.Config{Dir: t.TempDir(), FastWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pkgs, err := c.Full(payload.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	return c, pkgs[0]
}

func TestApplyOwnDerivesTheLedgerFromEachOwnBundle(t *testing.T) {
	c, pkg := ceremony(t)
	s := storetest.Open(t)
	// The intent that preceded the import.
	if _, err := s.RecordIntent(pkg.ID(), "https://contoso-byok.vault.azure.net", "key-1", now); err != nil {
		t.Fatal(err)
	}
	var offer, receipt *bundle.Bundle
	for _, b := range c.Written {
		if b.Header.Chain != bundle.ChainOnline {
			continue
		}
		if err := s.DB.Update(func(tx *bolt.Tx) error { return store.ApplyOwn(tx, b) }); err != nil {
			t.Fatalf("ApplyOwn(%s) = %v", b.Header.Kind, err)
		}
		switch b.Header.Kind {
		case bundle.KindKEKOffer:
			offer = b
		case bundle.KindReceipt:
			receipt = b
		}
	}
	id, err := s.Identity()
	if err != nil || id == nil || id.KeyID != keyIDOf(t, c.OnlineKey) || id.Name != "online-station" {
		t.Errorf("Identity() = %+v, %v", id, err)
	}
	k, err := s.KEK(offer.ID())
	if err != nil || k == nil || k.Name != "kek" || k.KeySize != 3072 || k.Seq != offer.Header.Seq {
		t.Errorf("KEK() = %+v, %v", k, err)
	}
	u, err := s.Upload(pkg.ID())
	if err != nil || u == nil {
		t.Fatalf("Upload() = %v, %v", u, err)
	}
	if u.State != store.StateImported || u.Receipt == nil || *u.Receipt != receipt.ID() || u.KeyName != "key-1" || u.Attempts != 1 {
		t.Errorf("Upload() = %+v", u)
	}
	if !u.Terminal() {
		t.Error("an imported upload is not terminal")
	}
	// An imported package refuses further intents.
	if _, err := s.RecordIntent(pkg.ID(), "https://contoso-byok.vault.azure.net", "key-1", now); !errors.Is(err, store.ErrUploaded) {
		t.Errorf("RecordIntent after the receipt = %v, want ErrUploaded", err)
	}
}

func TestApplyOwnRefusesOfflineKinds(t *testing.T) {
	_, pkg := ceremony(t)
	s := storetest.Open(t)
	err := s.DB.Update(func(tx *bolt.Tx) error { return store.ApplyOwn(tx, pkg) })
	if err == nil {
		t.Error("ApplyOwn(key package) = nil, want an error")
	}
}

func TestApplyOwnIsIdempotent(t *testing.T) {
	// Recover may apply a bundle whose first commit crashed; applying twice must converge.
	c, pkg := ceremony(t)
	s := storetest.Open(t)
	var receipt *bundle.Bundle
	for _, b := range c.Written {
		if b.Header.Kind == bundle.KindReceipt {
			receipt = b
		}
	}
	for range 2 {
		if err := s.DB.Update(func(tx *bolt.Tx) error { return store.ApplyOwn(tx, receipt) }); err != nil {
			t.Fatal(err)
		}
	}
	ups, err := s.Uploads()
	if err != nil || len(ups) != 1 || ups[0].Package != pkg.ID() || ups[0].State != store.StateImported {
		t.Errorf("Uploads() = %+v, %v", ups, err)
	}
}

func keyIDOf(t *testing.T, k ed25519.PrivateKey) bundle.ID {
	id, err := bundle.KeyID(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRecordIntentsIsAllOrNothing(t *testing.T) {
	s := storetest.Open(t)
	a, b := bundle.ID{1}, bundle.ID{2}
	got, err := s.RecordIntents(now, store.Intent{Package: a, Vault: "v", KeyName: "a"}, store.Intent{Package: b, Vault: "v", KeyName: "b"})
	if err != nil || len(got) != 2 || got[0] != 1 || got[1] != 1 {
		t.Fatalf("RecordIntents() = %v, %v", got, err)
	}
	// b is imported now: a group with b records nothing.
	if err := s.DB.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("online")).Bucket([]byte("uploads")).Put(b[:], []byte(`{"state":"imported"}`))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordIntents(now, store.Intent{Package: a}, store.Intent{Package: b}); !errors.Is(err, store.ErrUploaded) {
		t.Fatalf("RecordIntents() = %v, want ErrUploaded", err)
	}
	if u, _ := s.Upload(a); u.Attempts != 1 {
		t.Errorf("a has %d attempts, want 1: the refused group must record nothing", u.Attempts)
	}
}

// TestVaultMismatchIsFinal: an answer recorded as not matching ends the upload for good; an
// intent for the package is refused, MarkFailed does not reopen it.
func TestVaultMismatchIsFinal(t *testing.T) {
	s := storetest.Open(t)
	pkg := bundle.ID{7}
	if err := s.MarkMismatch(pkg, "kid", "detail", now); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.Upload(pkg); u != nil {
		t.Fatalf("MarkMismatch without an intent made a record: %+v", u)
	}
	if _, err := s.RecordIntent(pkg, "https://v.vault.azure.net", "k", now); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkMismatch(pkg, "https://other/keys/k/1", "kid in vault https://other", now); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(pkg, "later", now); err != nil {
		t.Fatal(err)
	}
	u, err := s.Upload(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if u.State != store.StateVaultMismatch || u.KID != "https://other/keys/k/1" || u.Error != "kid in vault https://other" {
		t.Errorf("record = %+v", u)
	}
	if _, err := s.RecordIntent(pkg, "https://v.vault.azure.net", "k", now); !errors.Is(err, store.ErrVaultMismatch) {
		t.Errorf("RecordIntent after a mismatch = %v, want ErrVaultMismatch", err)
	}
	if _, err := s.RecordIntents(now, store.Intent{Package: pkg}); !errors.Is(err, store.ErrVaultMismatch) {
		t.Errorf("RecordIntents after a mismatch = %v, want ErrVaultMismatch", err)
	}
}

// TestRecordVersionsKeepsEveryVersion: duplicate versions accumulate without repeats.
func TestRecordVersionsKeepsEveryVersion(t *testing.T) {
	s := storetest.Open(t)
	pkg := bundle.ID{8}
	if _, err := s.RecordIntent(pkg, "https://v.vault.azure.net", "k", now); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordVersions(pkg, []string{"a", "b"}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordVersions(pkg, []string{"b", "c"}, now); err != nil {
		t.Fatal(err)
	}
	u, err := s.Upload(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if !u.Duplicate() || len(u.Versions) != 3 || u.Versions[0] != "a" || u.Versions[2] != "c" || u.State != store.StateIntent {
		t.Errorf("record = %+v, want versions a, b, c, still in intent", u)
	}
}
