package upload_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/online/internal/upload"
	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/online/internal/vault/vaultfake"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TestAnswersThatDoNotMatchAreNotReceipted: Key Vault answers the import with another key
// than was asked for. Nothing is signed, the ledger records the answer as final, the result
// names what the vault holds, and a second run does not import again.
func TestAnswersThatDoNotMatchAreNotReceipted(t *testing.T) {
	tests := []struct {
		name string
		kt   payload.KeyType
		lie  func(k *vault.Key)
		want string // in the detail
	}{
		{"kid in another vault", payload.ECP256, func(k *vault.Key) {
			k.KID = strings.Replace(k.KID, "https://", "https://evil.", 1)
		}, "kid in vault https://evil."},
		{"kid of another key", payload.ECP256, func(k *vault.Key) { k.KID = strings.Replace(k.KID, "/keys/key-1/", "/keys/other/", 1) }, "kid naming key other"},
		{"oversized kid", payload.ECP256, func(k *vault.Key) { k.KID += strings.Repeat("a", 1<<20) }, "kid of 1048"},
		{"kid with a terminal escape", payload.ECP256, func(k *vault.Key) { k.KID = "\x1b[2J" }, `\x1b[2J`},
		{"key type", payload.ECP256, func(k *vault.Key) { k.Kty = "RSA-HSM" }, "key type RSA-HSM, not EC-HSM"},
		{"curve", payload.ECP256, func(k *vault.Key) { k.Curve = "P-384" }, "curve P-384, not P-256"},
		{"rsa size", payload.RSA3072, func(k *vault.Key) { k.Size = 2048 }, "2048-bit RSA key, not 3072"},
		{"key_ops", payload.ECP256, func(k *vault.Key) { k.KeyOps = []string{"sign"} }, "key_ops sign, not sign,verify"},
		{"disabled", payload.ECP256, func(k *vault.Key) { k.Enabled = false }, "enabled false, not true"},
		{"not before", payload.ECP256, func(k *vault.Key) { k.NotBefore = time.Unix(99, 0) }, "not before 99, not none"},
		{"expiry", payload.ECP256, func(k *vault.Key) { k.Expires = time.Unix(99, 0) }, "expiry 99, not none"},
		{"16 tags", payload.ECP256, func(k *vault.Key) {
			for i := range 15 {
				k.Tags[fmt.Sprintf("extra-%d", i)] = "x"
			}
		}, "16 tags"},
		{"a tag changed", payload.ECP256, func(k *vault.Key) { k.Tags[upload.TagPackage] = "00" }, "1 tags (byok-package), not the 1 sent"},
		{"created zero", payload.ECP256, func(k *vault.Key) { k.Created = time.Unix(0, 0) }, "creation time 0, not a positive time"},
		{"created negative", payload.ECP256, func(k *vault.Key) { k.Created = time.Unix(-5, 0) }, "creation time -5"},
		{"no creation time", payload.ECP256, func(k *vault.Key) { k.Created = time.Time{} }, "creation time none"},
		{"unusable key", payload.ECP256, func(k *vault.Key) { k.Public, k.PublicErr = nil, errors.New("EC point not on curve") }, "an unusable key (EC point not on curve)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, payload.VaultPremium)
			j := f.job(t, tt.kt, "key-1")
			f.v.Lie = func(op vaultfake.Op, k *vault.Key) { tt.lie(k) }
			r := f.upload(t, j)[0]
			var mm *upload.MismatchError
			if r.Outcome != upload.OutcomeVaultMismatch || !errors.As(r.Err, &mm) || !errors.Is(r.Err, upload.ErrVaultMismatch) {
				t.Fatalf("result = %+v, want vault_mismatch", r)
			}
			if !strings.Contains(r.Detail, tt.want) || !strings.Contains(r.Detail, "key vault holds kid ") {
				t.Errorf("detail = %q, want %q and what the vault holds", r.Detail, tt.want)
			}
			if len(r.Detail) > 4096 || strings.ContainsAny(r.Detail, "\x1b\n") {
				t.Errorf("detail of %d bytes is not bounded and printable: %q", len(r.Detail), r.Detail)
			}
			if n := len(f.rc.all()); n != 0 {
				t.Errorf("%d receipts signed for an answer that does not match", n)
			}
			u, err := f.s.Upload(j.Package)
			if err != nil {
				t.Fatal(err)
			}
			if u.State != store.StateVaultMismatch || u.Error != r.Detail || u.KID != mm.KID {
				t.Errorf("ledger = %+v, want vault_mismatch with the detail", u)
			}
			// A second run refuses to import it again.
			r2 := f.upload(t, j)[0]
			if r2.Outcome != upload.OutcomeFailed || !errors.Is(r2.Err, store.ErrVaultMismatch) || r2.Imports != 0 {
				t.Errorf("second run = %+v, want a refusal without an import", r2)
			}
			if n := f.v.Imports(); n != 1 {
				t.Errorf("%d imports, want 1", n)
			}
		})
	}
}

// TestReconciledVersionThatDoesNotMatch: the version list shows the package's tag on a key
// version of another vault; reconciliation records it, signs nothing, imports nothing.
func TestReconciledVersionThatDoesNotMatch(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	j := f.job(t, payload.ECP256, "key-1")
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: vaultfake.ErrLost, Commit: true})
	f.v.LieVersion = func(v *vault.Version) { v.KID = "https://other.vault.azure.net/keys/key-1/" + v.Version }
	r := f.upload(t, j)[0]
	if r.Outcome != upload.OutcomeVaultMismatch || !strings.Contains(r.Detail, "kid in vault https://other.vault.azure.net") || r.Imports != 1 {
		t.Fatalf("result = %+v", r)
	}
	if len(f.rc.all()) != 0 || f.state(t, j.Package) != store.StateVaultMismatch {
		t.Errorf("receipts %d, ledger %s", len(f.rc.all()), f.state(t, j.Package))
	}
}

// TestLateCommitIsFoundNotImportedAgain: the import fails without an answer and Key Vault
// commits it after the first look. The engine does not trust that look: it looks again once
// Settle has passed, finds the import, and receipts it. One version.
func TestLateCommitIsFoundNotImportedAgain(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	f.engine.Settle = 2 * time.Second
	j := f.job(t, payload.ECP256, "key-1")
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: vaultfake.ErrLost, Commit: true, Hidden: 1})
	start := f.clk.Now()
	r := f.upload(t, j)[0]
	if r.Outcome != upload.OutcomeImported || r.Imports != 1 || !r.Reconciled || r.Versions != nil {
		t.Fatalf("result = %+v, want the late import found and receipted", r)
	}
	if n := len(f.v.Versions("key-1")); n != 1 {
		t.Errorf("%d versions, want 1", n)
	}
	if n := f.v.Calls(vaultfake.OpVersions); n != 2 {
		t.Errorf("%d looks, want 2", n)
	}
	if waited := f.clk.Now().Sub(start); waited < f.engine.Settle {
		t.Errorf("looked again after %s, want at least Settle (%s)", waited, f.engine.Settle)
	}
	if rcs := f.rc.all(); len(rcs) != 1 || rcs[0].KID != f.v.Versions("key-1")[0].KID {
		t.Errorf("receipts = %+v", rcs)
	}
}

// TestDuplicateIsRecordedAndReported: the late commit lands after both looks, so the engine
// imports again; the list after that import shows two versions carrying the tag. Both are
// in the ledger and the result; the receipt names the one this import returned.
func TestDuplicateIsRecordedAndReported(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	var logs bytes.Buffer
	f.engine.Log = slog.New(slog.NewTextHandler(&logs, nil))
	j := f.job(t, payload.ECP256, "key-1")
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: vaultfake.ErrLost, Commit: true, Hidden: 2})
	r := f.upload(t, j)[0]
	vs := f.v.Versions("key-1")
	if len(vs) != 2 {
		t.Fatalf("%d versions, want the duplicate this test provokes", len(vs))
	}
	if r.Outcome != upload.OutcomeImported || r.Imports != 2 || len(r.Versions) != 2 {
		t.Fatalf("result = %+v, want imported with both versions reported", r)
	}
	for _, v := range vs {
		if !strings.Contains(strings.Join(r.Versions, " "), v.KID) {
			t.Errorf("result versions %v lack %s", r.Versions, v.KID)
		}
	}
	u, err := f.s.Upload(j.Package)
	if err != nil {
		t.Fatal(err)
	}
	if u.State != store.StateImported || !u.Duplicate() || len(u.Versions) != 2 || u.KID != vs[1].KID {
		t.Errorf("ledger = %+v, want imported with both versions recorded", u)
	}
	if !strings.Contains(logs.String(), "duplicate import") {
		t.Errorf("no error logged:\n%s", logs.String())
	}
	// The receipt lists both versions, sorted, the receipted one among them (SPEC.md §7.6).
	want := []string{vs[0].KID, vs[1].KID}
	slices.Sort(want)
	if rcs := f.rc.all(); len(rcs) != 1 || rcs[0].KID != vs[1].KID || !slices.Equal(rcs[0].Versions, want) {
		t.Errorf("receipts %+v, want one naming %s and listing %v", rcs, vs[1].KID, want)
	} else if err := rcs[0].Validate(); err != nil {
		t.Errorf("the receipt does not validate: %v", err)
	}
}

// TestAmbiguousWarningNamesTheAttempt: the warning after an ambiguous failure carries the
// number of the attempt that failed.
func TestAmbiguousWarningNamesTheAttempt(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	var logs bytes.Buffer
	f.engine.Log = slog.New(slog.NewTextHandler(&logs, nil))
	j := f.job(t, payload.ECP256, "key-1")
	f.v.Fail(vaultfake.OpImport, vaultfake.Fault{Err: serverError(503, 0), Count: 2})
	if r := f.upload(t, j)[0]; r.Outcome != upload.OutcomeImported {
		t.Fatalf("result = %+v", r)
	}
	out := logs.String()
	if !strings.Contains(out, "import failed ambiguously") || !strings.Contains(out, "attempt=1") || !strings.Contains(out, "attempt=2") || strings.Contains(out, "attempt=0") {
		t.Errorf("warnings do not name attempts 1 and 2:\n%s", out)
	}
}

// TestIntentOfAnEarlierRunWaitsForSettle: a run that finds an intent only just recorded
// (a crash and an immediate rerun) does not import on the first "not found".
func TestIntentOfAnEarlierRunWaitsForSettle(t *testing.T) {
	f := newFixture(t, payload.VaultPremium)
	f.engine.Settle = 3 * time.Second
	j := f.job(t, payload.ECP256, "key-1")
	if _, err := f.s.RecordIntent(j.Package, j.Vault, j.KeyName, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	j.Reconcile, j.IntentAt = true, f.clk.Now()
	r := f.upload(t, j)[0]
	if r.Outcome != upload.OutcomeImported || r.Imports != 1 {
		t.Fatalf("result = %+v", r)
	}
	if n := f.v.Calls(vaultfake.OpVersions); n != 2 {
		t.Errorf("%d looks before importing, want 2 (at once, and after Settle)", n)
	}
	if f.clk.Now().Sub(j.IntentAt) < f.engine.Settle {
		t.Errorf("imported %s after the intent, before Settle", f.clk.Now().Sub(j.IntentAt))
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"https://v.vault.azure.net/keys/k/1": "https://v.vault.azure.net/keys/k/1",
		"":                                   `""`,
		"a b":                                "a b",
		"\x1b[31mred":                        `"\x1b[31mred"`,
		"é":                                  `"\u00e9"`,
		strings.Repeat("x", 200):             strings.Repeat("x", 160) + "... (200 bytes)",
	} {
		if got := upload.Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}
