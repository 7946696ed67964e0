package store_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/offline/internal/store/storetest"
	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TestMigrations opens a ledger at every schema version in turn and checks what each
// migration adds.
func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	tests := []struct {
		name    string
		version int
		check   func(tx *bolt.Tx) error
	}{
		{"station buckets", 1, func(tx *bolt.Tx) error {
			if tx.Bucket([]byte("station")) == nil {
				return errors.New("no station bucket")
			}
			if tx.Bucket([]byte("v1")) != nil {
				return errors.New("v1 exists before its migration")
			}
			return nil
		}},
		{"offline v1 buckets", 2, func(tx *bolt.Tx) error {
			v1 := tx.Bucket([]byte("v1"))
			if v1 == nil {
				return errors.New("no v1 bucket")
			}
			for _, b := range []string{"config", "custodians", "intents", "keys", "keks", "packages", "policies"} {
				if v1.Bucket([]byte(b)) == nil {
					return errors.New("no v1/" + b + " bucket")
				}
			}
			return nil
		}},
		{"package index by key and vault", 3, func(tx *bolt.Tx) error {
			if tx.Bucket([]byte("v1")).Bucket([]byte("package-index")) == nil {
				return errors.New("no v1/package-index bucket")
			}
			return nil
		}},
	}
	if len(tests) != len(store.Migrations) {
		t.Fatalf("%d migrations, %d tested", len(store.Migrations), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := ledger.Open(path, ledger.Schema{Name: store.SchemaName, Migrations: store.Migrations[:tt.version]})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if v, err := ledger.Version(db); err != nil || v != uint64(tt.version) {
				t.Fatalf("Version = %d, %v; want %d", v, err, tt.version)
			}
			if err := db.View(tt.check); err != nil {
				t.Error(err)
			}
		})
	}
}

// ceremony runs a software ceremony with one package of each given type and returns it.
func ceremony(t *testing.T, types ...payload.KeyType) (*chaintest.Ceremony, []*bundle.Bundle) {
	t.Helper()
	c, err := chaintest.New(chaintest.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Setup(); err != nil {
		t.Fatal(err)
	}
	off, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []*bundle.Bundle
	for i, kt := range types {
		p, err := c.Package(off.ID(), kt, "key-"+string(rune('1'+i)))
		if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return c, pkgs
}

func recordOffline(t *testing.T, s *store.Store, c *chaintest.Ceremony) {
	t.Helper()
	for _, b := range c.Written {
		if b.Header.Chain != bundle.ChainOffline {
			continue
		}
		if err := s.DB().Update(func(tx *bolt.Tx) error { return store.RecordOwn(tx, b) }); err != nil {
			t.Fatalf("RecordOwn(seq %d %s) = %v", b.Header.Seq, b.Header.Kind, err)
		}
	}
}

func TestRecordOwnDerivesTheLedgerFromBundles(t *testing.T) {
	c, pkgs := ceremony(t, payload.RSA3072, payload.ECP256)
	s := storetest.Open(t)
	for _, name := range []string{"key-1", "key-2"} {
		// chaintest's manifests name the HSM object "key-N" with CKA_ID 01.
		if err := s.PutKey(&store.Key{Ident: "ident-" + name, Label: name, ID: "01", State: store.KeyReady}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Approve(pkgs[0].ID(), bundle.KindKeyPackage, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Approve(pkgs[0].ID(), bundle.KindKeyPackage, 1, 2); err != nil {
		t.Fatal(err)
	}
	recordOffline(t, s, c)

	enr, err := s.Enrollment()
	if err != nil || enr != c.Written[1].ID() {
		t.Errorf("Enrollment() = %s, %v; want %s", enr.Short(), err, c.Written[1].ID().Short())
	}
	pol, err := s.CurrentPolicy()
	if err != nil {
		t.Fatalf("CurrentPolicy() = %v", err)
	}
	if pol.ID != c.PolicyID || pol.Version != 1 || len(pol.Approvals) != 2 {
		t.Errorf("CurrentPolicy() = %s v%d with %d approvals; want %s v1 with 2", pol.ID.Short(), pol.Version, len(pol.Approvals), c.PolicyID.Short())
	}
	if d, err := s.InitDone(); err != nil || d.Policy != c.PolicyID {
		t.Errorf("InitDone() = %+v, %v", d, err)
	}
	var anchor bundle.ID
	st := &station.Station{DB: s.DB()}
	if state, err := st.Load(); err != nil {
		t.Fatal(err)
	} else {
		anchor = state.Anchor
	}
	if anchor != c.PolicyID {
		t.Errorf("anchor = %s, want the policy %s", anchor.Short(), c.PolicyID.Short())
	}

	got, err := s.Packages()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("Packages() has %d records, want 2", len(got))
	}
	tests := []struct {
		pkg       store.Package
		wantIdent string
		wantType  payload.KeyType
		approvers []string
	}{
		{got[0], "ident-key-1", payload.RSA3072, []string{"custodian-1", "custodian-2", "custodian-3"}},
		{got[1], "ident-key-2", payload.ECP256, nil},
	}
	for _, tt := range tests {
		p := tt.pkg
		if p.Ident != tt.wantIdent || p.KeyType != tt.wantType || p.State != store.PackageOutstanding {
			t.Errorf("package %s: ident %q type %s state %s; want %q %s outstanding", p.ID.Short(), p.Ident, p.KeyType, p.State, tt.wantIdent, tt.wantType)
		}
		var names []string
		for _, a := range p.Approvals {
			names = append(names, a.Custodian)
		}
		slices.Sort(names)
		if !slices.Equal(names, tt.approvers) {
			t.Errorf("package %s approvals %v, want %v", p.ID.Short(), names, tt.approvers)
		}
	}
}

func TestRecordOwnRefusesUnknownTargets(t *testing.T) {
	c, pkgs := ceremony(t, payload.RSA2048)
	s := storetest.Open(t)
	// No key record matches the package's HSM object: the package cannot be attributed.
	var err error
	for _, b := range c.Written {
		if b.Header.Chain != bundle.ChainOffline {
			continue
		}
		err = s.DB().Update(func(tx *bolt.Tx) error { return store.RecordOwn(tx, b) })
		if b.ID() == pkgs[0].ID() {
			break
		}
		if err != nil {
			t.Fatalf("RecordOwn(seq %d) = %v", b.Header.Seq, err)
		}
	}
	if err == nil {
		t.Fatal("RecordOwn(package of an unknown key) = nil, want an error")
	}
	if _, err := s.Package(pkgs[0].ID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Package() after a failed record = %v, want ErrNotFound", err)
	}
}

func TestStartKey(t *testing.T) {
	s := storetest.Open(t)
	gen := &store.Key{Ident: "app", Label: "app", Type: payload.RSA2048, State: store.KeyGenerating}
	if err := s.StartKey(gen); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		key      store.Key
		ready    bool
		conflict bool // want a *KeyConflictError
		interr   bool // ... of an interrupted keygen
	}{
		{"same intent again", store.Key{Ident: "app", Label: "app", Type: payload.RSA2048}, false, false, false},
		{"other type", store.Key{Ident: "app", Label: "app", Type: payload.ECP256}, false, true, true},
		{"other trust", store.Key{Ident: "app", Label: "app", Type: payload.RSA2048, WrapWithTrusted: true}, false, true, true},
		{"ready key", store.Key{Ident: "app", Label: "app", Type: payload.RSA2048}, true, true, false},
		{"other ident", store.Key{Ident: "web", Label: "web", Type: payload.RSA2048}, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ready {
				if err := s.PutKey(&store.Key{Ident: "app", Label: "app", Type: payload.RSA2048, State: store.KeyReady}); err != nil {
					t.Fatal(err)
				}
			}
			k := tt.key
			k.State = store.KeyGenerating
			err := s.StartKey(&k)
			var ce *store.KeyConflictError
			if got := errors.As(err, &ce); got != tt.conflict || (got && ce.Interrupted != tt.interr) || (!tt.conflict && err != nil) {
				t.Errorf("StartKey(%+v) = %v, want a conflict %t (interrupted keygen %t)", tt.key, err, tt.conflict, tt.interr)
			}
		})
	}
}

func TestPutOnlineRefusesAnotherStation(t *testing.T) {
	c, _ := ceremony(t)
	s := storetest.Open(t)
	pk, err := payload.NewPublicKey(c.OnlineKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	first := &store.Online{Enrollment: c.Written[0].ID(), Name: "online", Key: pk}
	if err := s.PutOnline(first); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOnline(first); err != nil {
		t.Errorf("PutOnline(same) = %v, want nil", err)
	}
	other, err := payload.NewPublicKey(c.Key("other").Public())
	if err != nil {
		t.Fatal(err)
	}
	err = s.PutOnline(&store.Online{Enrollment: c.Written[1].ID(), Name: "online", Key: other})
	if !errors.Is(err, store.ErrOtherOnline) {
		t.Errorf("PutOnline(other) = %v, want ErrOtherOnline", err)
	}
}

func TestIntents(t *testing.T) {
	s := storetest.Open(t)
	if _, err := s.Intent("tok", "byok-station"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Intent() on an empty ledger = %v, want ErrNotFound", err)
	}
	if err := s.PutIntent(&store.Intent{Token: "tok", Label: "byok-station", What: "station key"}); err != nil {
		t.Fatal(err)
	}
	in, err := s.Intent("tok", "byok-station")
	if err != nil || in.What != "station key" {
		t.Fatalf("Intent() = %+v, %v", in, err)
	}
	// Recording the station clears the intent for its label.
	if err := s.PutStation(&store.Station{TokenLabel: "tok", KeyLabel: "byok-station"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Intent("tok", "byok-station"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Intent() after PutStation = %v, want ErrNotFound", err)
	}
}

// TestPackageIndexMigrationBackfills opens a version-2 ledger holding packages and checks
// that migration 3 indexes them.
func TestPackageIndexMigrationBackfills(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	db, err := ledger.Open(path, ledger.Schema{Name: store.SchemaName, Migrations: store.Migrations[:2]})
	if err != nil {
		t.Fatal(err)
	}
	pkgs := []store.Package{
		{ID: bundle.ID{1}, Seq: 4, Ident: "app", Vault: "https://a.vault.azure.net"},
		{ID: bundle.ID{2}, Seq: 6, Ident: "app", Vault: "https://b.vault.azure.net"},
		{ID: bundle.ID{3}, Seq: 9, Ident: "app", Vault: "https://a.vault.azure.net"},
		{ID: bundle.ID{4}, Seq: 11, Ident: "app-2", Vault: "https://a.vault.azure.net"},
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("v1")).Bucket([]byte("packages"))
		for _, p := range pkgs {
			j, err := json.Marshal(p)
			if err != nil {
				return err
			}
			if err := b.Put(p.ID[:], j); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err = ledger.Open(path, store.Schema())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := store.New(db).PackagesOf("app", "https://a.vault.azure.net")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != pkgs[0].ID || got[1].ID != pkgs[2].ID {
		t.Errorf("PackagesOf(app, a) = %+v, want packages 1 and 3 in order", got)
	}
}

// A policy version is in force with the threshold of its own custodians and, after version
// 1, of the previous version's as well; approvals by others do not count.
func TestInForceAll(t *testing.T) {
	key := func(n byte) payload.PublicKey {
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = n + 1
		pk, err := payload.NewPublicKey(ed25519.NewKeyFromSeed(seed).Public())
		if err != nil {
			t.Fatal(err)
		}
		return pk
	}
	a, b, c, d, x := key(0), key(1), key(2), key(3), key(23)
	pol := func(v uint64, thr int, cs ...payload.PublicKey) *payload.Policy {
		p := &payload.Policy{Version: v, Threshold: thr}
		for i, k := range cs {
			p.Custodians = append(p.Custodians, payload.Custodian{Name: string(rune('a' + i)), Key: k})
		}
		return p
	}
	approvals := func(ks ...payload.PublicKey) []store.Approval {
		var out []store.Approval
		for _, k := range ks {
			out = append(out, store.Approval{Key: k.ID()})
		}
		return out
	}
	v1 := pol(1, 2, a, b, c)
	v2 := pol(2, 2, a, c, d)
	for _, tt := range []struct {
		name   string
		v1, v2 []payload.PublicKey
		want   []bool
	}{
		{"v1 by an outsider and one custodian", []payload.PublicKey{x, a}, nil, []bool{false, false}},
		{"v1 in force", []payload.PublicKey{a, b}, nil, []bool{true, false}},
		{"v2 by the new set only", []payload.PublicKey{a, b}, []payload.PublicKey{a, d}, []bool{true, false}},
		{"v2 by the old set only", []payload.PublicKey{a, b}, []payload.PublicKey{a, b}, []bool{true, false}},
		{"v2 by both sets", []payload.PublicKey{a, b}, []payload.PublicKey{a, b, d}, []bool{true, true}},
		{"v2 before v1 is in force", []payload.PublicKey{a}, []payload.PublicKey{a, b, c, d}, []bool{false, false}},
	} {
		ps := []store.Policy{{Version: 1, Policy: v1, Approvals: approvals(tt.v1...)}, {Version: 2, Policy: v2, Approvals: approvals(tt.v2...)}}
		if got := store.InForceAll(ps); !slices.Equal(got, tt.want) {
			t.Errorf("%s: in force %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A KEK refused by an earlier version of byok-offline was stored with the exit code of its
// refusal ("exit_code"); the ledger still reads it, with its state, reason and verdict.
func TestKEKRecordWithExitCodeStillDecodes(t *testing.T) {
	s := storetest.Open(t)
	offer := bundle.ID{9}
	old := `{"offer":"` + offer.String() + `","seq":3,"state":"refused","reason":"KEK offer expired","verdict":"expired","exit_code":3,` +
		`"vault":"https://a.vault.azure.net","kid":"https://a.vault.azure.net/keys/kek/1","bits":2048,"fingerprint":"AAAA-BBBB-CCCC-DDDD",` +
		`"expires":1700000000,"offer_expires":1690000000,"attestation":"none","decided_at":"2026-01-02T03:04:05Z","payload":null}`
	err := s.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("v1")).Bucket([]byte("keks")).Put(offer[:], []byte(old))
	})
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.KEK(offer)
	if err != nil {
		t.Fatalf("KEK: %v", err)
	}
	if k.Offer != offer || k.State != store.KEKRefused || k.Reason != "KEK offer expired" || k.Verdict != "expired" || k.Bits != 2048 {
		t.Errorf("KEK = %+v, want the refused record as stored", k)
	}
	all, err := s.KEKs()
	if err != nil || len(all) != 1 || all[0].Offer != offer {
		t.Errorf("KEKs = %+v, %v; want the one stored", all, err)
	}
}
