package upload_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/online/internal/upload"
	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/online/internal/vault/vaultfake"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

func TestEveryKeyTypeImportsOnceWithTheManifestsPublicKey(t *testing.T) {
	f := newFixture(t, payload.VaultManagedHSM)
	var jobs []*upload.Job
	for i, kt := range payload.KeyTypes {
		jobs = append(jobs, f.job(t, kt, fmt.Sprintf("key-%d", i)))
	}
	results := f.upload(t, jobs...)
	for i, r := range results {
		j := jobs[i]
		t.Run(string(j.KeyType), func(t *testing.T) {
			if r.Outcome != upload.OutcomeImported || r.Err != nil || r.Imports != 1 {
				t.Fatalf("result = %+v", r)
			}
			vs := f.v.Versions(j.KeyName)
			if len(vs) != 1 {
				t.Fatalf("%d versions, want 1", len(vs))
			}
			if vs[0].Tags[upload.TagPackage] != j.Package.String() {
				t.Errorf("tags = %v, want the package ID", vs[0].Tags)
			}
			if got := f.state(t, j.Package); got != store.StateImported {
				t.Errorf("ledger state = %q, want imported", got)
			}
		})
	}
	rcs := f.rc.all()
	if len(rcs) != len(jobs) {
		t.Fatalf("%d receipts, want %d", len(rcs), len(jobs))
	}
	for _, rc := range rcs {
		k := f.packages[rc.Package]
		kt, _ := k.Target.KeyType()
		want := k.PublicKey
		if kt.IsSymmetric() {
			want = nil
		}
		if rc.Outcome != payload.OutcomeImported || !bytes.Equal(rc.PublicKey, want) || rc.Created == 0 {
			t.Errorf("receipt for %s = %+v", kt, rc)
		}
	}
}

func TestLostResponseAfterCommitIsReconciled(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	j := f.job(t, payload.ECP256, "key-1")
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: vaultfake.ErrLost, Commit: true})
	r := f.upload(t, j)[0]
	if r.Outcome != upload.OutcomeImported || !r.Reconciled || r.Imports != 1 {
		t.Fatalf("result = %+v, want imported after reconciliation with one import", r)
	}
	if n := len(f.v.Versions("key-1")); n != 1 {
		t.Errorf("%d versions, want exactly 1", n)
	}
	if n := len(f.rc.all()); n != 1 {
		t.Errorf("%d receipts, want 1", n)
	}
}

func serverError(status int, retryAfter time.Duration) error {
	return &vault.Error{Op: "import key", Status: status, Kind: vault.ErrServer, RetryAfter: retryAfter}
}

func TestServerErrorsRetryAfterLooking(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	j := f.job(t, payload.RSA2048, "key-1")
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: serverError(503, 0), Count: 2})
	r := f.upload(t, j)[0]
	if r.Outcome != upload.OutcomeImported || r.Imports != 3 || r.Reconciled {
		t.Fatalf("result = %+v, want imported at the third import", r)
	}
	// After each ambiguous failure: a look at once and one when Settle has passed; after the
	// import that followed, one more list to look for a duplicate.
	if n := f.v.Calls(vaultfake.OpVersions); n != 5 {
		t.Errorf("%d version lists, want 2 after each ambiguous failure and 1 after the import (5)", n)
	}
	if n := len(f.v.Versions("key-1")); n != 1 {
		t.Errorf("%d versions, want 1", n)
	}
	u, _ := f.s.Upload(j.Package)
	if u.Attempts != 3 {
		t.Errorf("ledger attempts = %d, want 3", u.Attempts)
	}
}

func TestThrottledImportsWaitRetryAfterAndDoNotReconcile(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	j := f.job(t, payload.RSA3072, "key-1")
	throttled := &vault.Error{Op: "import key", Status: 429, Kind: vault.ErrThrottled, RetryAfter: 7 * time.Second}
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: throttled, Count: 5})
	r := f.upload(t, j)[0]
	if r.Outcome != upload.OutcomeImported || r.Imports != 1 {
		t.Fatalf("result = %+v", r)
	}
	if n := f.v.Calls(vaultfake.OpImport); n != 6 {
		t.Errorf("%d import calls, want 6", n)
	}
	if n := f.v.Calls(vaultfake.OpVersions); n != 0 {
		t.Errorf("%d reconciliations after 429s, want 0: a throttled request did nothing", n)
	}
	var waited time.Duration
	for _, d := range f.clk.Slept() {
		waited += d
	}
	if waited < 5*7*time.Second {
		t.Errorf("waited %s in total, want at least 5 × Retry-After (35s)", waited)
	}
	if n := len(f.v.Versions("key-1")); n != 1 {
		t.Errorf("%d versions, want 1", n)
	}
}

func TestDefinitiveRefusalWritesARejectedReceipt(t *testing.T) {
	for _, kind := range []error{vault.ErrRefused, vault.ErrConflict} {
		t.Run(kind.Error(), func(t *testing.T) {
			f := newFixture(t, payload.VaultPremium)
			j := f.job(t, payload.RSA2048, "key-1")
			f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: &vault.Error{Op: "import key", Status: 400, Code: "BadParameter", Message: "no", Kind: kind}})
			r := f.upload(t, j)[0]
			if r.Outcome != upload.OutcomeRejected || r.Err != nil || r.Receipt.IsZero() {
				t.Fatalf("result = %+v", r)
			}
			rcs := f.rc.all()
			if len(rcs) != 1 || rcs[0].Outcome != payload.OutcomeRejected || rcs[0].Error != "400 BadParameter: no" || rcs[0].KID != "" {
				t.Errorf("receipts = %+v", rcs)
			}
			if got := f.state(t, j.Package); got != store.StateRejected {
				t.Errorf("ledger state = %q", got)
			}
			if f.v.Imports() != 0 || f.v.Calls(vaultfake.OpImport) != 1 {
				t.Errorf("imports %d, calls %d; want 0 and 1", f.v.Imports(), f.v.Calls(vaultfake.OpImport))
			}
		})
	}
}

func TestPublicKeyMismatchIsReceipted(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	j := f.job(t, payload.ECP256, "key-1")
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.v.Tamper = func(crypto.PublicKey) crypto.PublicKey { return &other.PublicKey }
	r := f.upload(t, j)[0]
	if r.Outcome != upload.OutcomePublicKeyMismatch {
		t.Fatalf("result = %+v", r)
	}
	rc := f.rc.all()[0]
	want, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
	if rc.Outcome != payload.OutcomePublicKeyMismatch || !bytes.Equal(rc.PublicKey, want) {
		t.Errorf("receipt = %+v, want the returned key", rc)
	}
	if got := f.state(t, j.Package); got != store.StatePublicKeyMismatch {
		t.Errorf("ledger state = %q", got)
	}
}

func TestCompare(t *testing.T) {
	f := newFixture(t, payload.VaultManagedHSM)
	rsaJob := f.job(t, payload.RSA2048, "r")
	ecJob := f.job(t, payload.ECP384, "e")
	aesJob := f.job(t, payload.AES256, "a")
	pub := func(j *upload.Job) crypto.PublicKey {
		p, err := x509.ParsePKIXPublicKey(j.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		job  *upload.Job
		key  vault.Key
		want string
	}{
		{"rsa equal", rsaJob, vault.Key{Kty: "RSA-HSM", Public: pub(rsaJob)}, upload.OutcomeImported},
		{"rsa as ec", rsaJob, vault.Key{Kty: "RSA-HSM", Public: pub(ecJob)}, upload.OutcomePublicKeyMismatch},
		{"rsa without key", rsaJob, vault.Key{Kty: "RSA-HSM"}, upload.OutcomePublicKeyMismatch},
		{"other kty", rsaJob, vault.Key{Kty: "RSA", Public: pub(rsaJob)}, upload.OutcomePublicKeyMismatch},
		{"ec equal", ecJob, vault.Key{Kty: "EC-HSM", Public: pub(ecJob)}, upload.OutcomeImported},
		{"aes", aesJob, vault.Key{Kty: "oct-HSM"}, upload.OutcomeImported},
		{"aes as rsa", aesJob, vault.Key{Kty: "RSA-HSM"}, upload.OutcomePublicKeyMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, spki, reason := upload.Compare(tt.job, &tt.key)
			if got != tt.want {
				t.Errorf("Compare() = %s (%s), want %s", got, reason, tt.want)
			}
			if got == upload.OutcomeImported && !bytes.Equal(spki, tt.job.PublicKey) {
				t.Errorf("spki = %x, want the manifest's", spki)
			}
		})
	}
}

func TestIntentFromAnEarlierRunIsReconciledFirst(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	j := f.job(t, payload.ECP384, "key-1")
	// The earlier run recorded its intent and imported, then died before the receipt.
	if _, err := f.s.RecordIntent(j.Package, j.Vault, j.KeyName, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.ImportKey(context.Background(), j.KeyName, upload.ImportParams(j)); err != nil {
		t.Fatal(err)
	}
	j.Reconcile = true
	r := f.upload(t, j)[0]
	if r.Outcome != upload.OutcomeImported || !r.Reconciled || r.Imports != 0 {
		t.Fatalf("result = %+v, want the earlier import receipted, no new one", r)
	}
	if n := len(f.v.Versions("key-1")); n != 1 {
		t.Errorf("%d versions, want 1", n)
	}
}

func TestIntentWithoutImportIsImportedOrMarked(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	a := f.job(t, payload.RSA2048, "key-a")
	b := f.job(t, payload.RSA2048, "key-b")
	for _, j := range []*upload.Job{a, b} {
		if _, err := f.s.RecordIntent(j.Package, j.Vault, j.KeyName, f.clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	a.Reconcile, b.ReconcileOnly = true, true
	rs := f.upload(t, a, b)
	if rs[0].Outcome != upload.OutcomeImported || rs[0].Imports != 1 {
		t.Errorf("selected package: %+v, want imported once after looking", rs[0])
	}
	if rs[1].Outcome != upload.OutcomeNotImported || rs[1].Imports != 0 {
		t.Errorf("reconcile-only package: %+v, want not_imported without importing", rs[1])
	}
	if got := f.state(t, b.Package); got != store.StateFailed {
		t.Errorf("reconcile-only ledger state = %q, want failed (known not imported)", got)
	}
	if n := len(f.v.Versions("key-b")); n != 0 {
		t.Errorf("key-b has %d versions, want 0", n)
	}
}

func TestAmbiguousFailuresGiveUpAfterMaxAttempts(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	f.engine.MaxAttempts = 3
	j := f.job(t, payload.RSA2048, "key-1")
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: serverError(500, 0), Count: 100})
	r := f.upload(t, j)[0]
	if r.Outcome != upload.OutcomeFailed || r.Imports != 3 || !errors.Is(r.Err, vault.ErrServer) {
		t.Fatalf("result = %+v, want failed after 3 imports", r)
	}
	if got := f.state(t, j.Package); got != store.StateFailed {
		t.Errorf("ledger state = %q, want failed: reconciled, not imported", got)
	}
	if len(f.rc.all()) != 0 {
		t.Error("a receipt was written for a package that was not imported")
	}
}

func TestUnauthorizedStopsTheRun(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	f.engine.Concurrency = 1
	a, b := f.job(t, payload.RSA2048, "key-a"), f.job(t, payload.RSA2048, "key-b")
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: &vault.Error{Op: "import key", Status: 401, Kind: vault.ErrUnauthorized}})
	rs := f.upload(t, a, b)
	for i, r := range rs {
		if r.Outcome != upload.OutcomeFailed || !errors.Is(r.Err, vault.ErrUnauthorized) {
			t.Errorf("result %d = %+v, want failed with the 401", i, r)
		}
	}
	if n := f.v.Calls(vaultfake.OpImport); n != 1 {
		t.Errorf("%d import calls, want 1: the second package is not attempted", n)
	}
}

// A receipt that cannot be written stops the run once the imports already under way are
// done: with one worker, the import after the failed receipt's may have started while the
// receipt was being written, the one after that does not start. Every import whose receipt
// was not written stays in intent, for the next run to reconcile.
func TestReceiptFailureStopsTheRunAndKeepsTheIntent(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	f.engine.Concurrency = 1
	a, b, c := f.job(t, payload.RSA2048, "key-a"), f.job(t, payload.RSA2048, "key-b"), f.job(t, payload.RSA2048, "key-c")
	f.rc.err = errors.New("the stick is gone")
	rs := f.upload(t, a, b, c)
	if rs[0].Outcome != upload.OutcomeImported || rs[0].Err == nil {
		t.Errorf("first = %+v, want imported with a receipt error", rs[0])
	}
	switch {
	case rs[1].Outcome == upload.OutcomeFailed && rs[1].Imports == 0:
	case rs[1].Outcome == upload.OutcomeImported && rs[1].Err != nil:
		if got := f.state(t, b.Package); got != store.StateIntent {
			t.Errorf("second: ledger state = %q, want intent", got)
		}
	default:
		t.Errorf("second = %+v, want not attempted, or imported with a receipt error", rs[1])
	}
	if rs[2].Outcome != upload.OutcomeFailed || rs[2].Imports != 0 {
		t.Errorf("third = %+v, want not attempted", rs[2])
	}
	if n := f.v.Calls(vaultfake.OpImport); n > 2 {
		t.Errorf("%d import calls, want at most 2", n)
	}
	if got := f.state(t, a.Package); got != store.StateIntent {
		t.Errorf("ledger state = %q, want intent: the next run reconciles it", got)
	}
}

func TestInterruptedRunKeepsIntents(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	j := f.job(t, payload.RSA2048, "key-1")
	ctx, cancel := context.WithCancel(context.Background())
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: serverError(503, 0)})
	f.engine.Sleep = func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() }
	r := f.engine.Run(ctx, []*upload.Job{j})[0]
	if r.Outcome != upload.OutcomeInterrupted {
		t.Fatalf("result = %+v, want interrupted", r)
	}
	if got := f.state(t, j.Package); got != store.StateIntent {
		t.Errorf("ledger state = %q, want intent", got)
	}
}

// checkingVault fails the test if ImportKey is called for a package whose intent is not in
// the ledger with at least as many attempts as calls so far.
type checkingVault struct {
	vault.Vault
	t     *testing.T
	s     *store.Store
	mu    sync.Mutex
	calls map[string]int
}

func (c *checkingVault) ImportKey(ctx context.Context, name string, p vault.ImportParams) (*vault.Key, error) {
	id, err := bundle.ParseID(p.Tags[upload.TagPackage])
	if err != nil {
		c.t.Errorf("import without the package tag: %v", p.Tags)
	}
	c.mu.Lock()
	c.calls[name]++
	n := c.calls[name]
	c.mu.Unlock()
	u, err := c.s.Upload(id)
	if err != nil || u == nil || u.State != store.StateIntent || u.Attempts < n {
		c.t.Errorf("ImportKey(%s) call %d with ledger record %+v: the intent was not committed first", name, n, u)
	}
	return c.Vault.ImportKey(ctx, name, p)
}

func TestEveryImportIsPrecededByItsIntent(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	cv := &checkingVault{Vault: f.v, t: t, s: f.s, calls: map[string]int{}}
	f.engine.Vault = func(string) (vault.Vault, error) { return cv, nil }
	f.engine.Concurrency = 3
	var jobs []*upload.Job
	for i := range 10 {
		jobs = append(jobs, f.job(t, payload.ECP256, fmt.Sprintf("key-%d", i)))
	}
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: serverError(503, 0), Count: 3})
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: &vault.Error{Status: 429, Kind: vault.ErrThrottled, RetryAfter: time.Second}, Count: 2})
	for _, r := range f.upload(t, jobs...) {
		if r.Outcome != upload.OutcomeImported {
			t.Errorf("result %+v", r)
		}
	}
	if n := f.v.Calls(vaultfake.OpImport); n != 15 {
		t.Errorf("%d import calls, want 15 (10 + 3 server errors + 2 throttled)", n)
	}
	if f.v.Imports() != 10 {
		t.Errorf("%d imports, want 10", f.v.Imports())
	}
}

func TestUnstartedJobsDoNotKeepTheirIntents(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	f.engine.Concurrency = 2
	var jobs []*upload.Job
	for i := range 4 {
		jobs = append(jobs, f.job(t, payload.RSA2048, fmt.Sprintf("key-%d", i)))
	}
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: &vault.Error{Op: "import key", Status: 401, Kind: vault.ErrUnauthorized}, Count: 2})
	for _, r := range f.upload(t, jobs...) {
		if r.Outcome != upload.OutcomeFailed {
			t.Errorf("result %+v", r)
		}
	}
	for _, j := range jobs {
		if got := f.state(t, j.Package); got != store.StateFailed {
			t.Errorf("%s: ledger state %q, want failed: no call was made, or it was refused", j.KeyName, got)
		}
	}
}

// With a Receipts that writes batches, every receipt goes through WriteBatch, once.
func TestReceiptsGoInBatches(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	br := &batchReceipts{receipts: f.rc}
	f.engine.Receipts = br
	f.engine.Concurrency = 8
	var jobs []*upload.Job
	for i := range 16 {
		jobs = append(jobs, f.job(t, payload.ECP256, fmt.Sprintf("key-%d", i)))
	}
	for _, r := range f.upload(t, jobs...) {
		if r.Outcome != upload.OutcomeImported || r.Err != nil || r.Receipt.IsZero() {
			t.Errorf("result = %+v", r)
		}
	}
	total := 0
	for _, n := range br.batches {
		total += n
	}
	if total != len(jobs) || br.singles != 0 {
		t.Errorf("batches %v (%d receipts) and %d single writes; want all %d receipts in batches", br.batches, total, br.singles, len(jobs))
	}
	seen := map[bundle.ID]bool{}
	for _, rc := range f.rc.all() {
		if seen[rc.Package] {
			t.Errorf("package %s receipted twice", rc.Package.Short())
		}
		seen[rc.Package] = true
	}
	if len(seen) != len(jobs) {
		t.Errorf("%d packages receipted, want %d", len(seen), len(jobs))
	}
}
