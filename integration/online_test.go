package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/fstest"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// importPath matches ImportKey (PUT /keys/{name}) in the emulator's fault rules.
const importPath = `^/keys/[^/]+$`

// TestOnline is every end-to-end test of byok-online against the local Key Vault. It builds
// the binary once; each subtest has its own state folder, medium and vault.
func TestOnline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs byok-online")
	}
	bins := buildOnline(t, t.TempDir())

	t.Run("Scripts", func(t *testing.T) {
		t.Parallel()
		runOnlineScripts(t, bins)
	})
	t.Run("EveryKeyType", func(t *testing.T) {
		t.Parallel()
		testOnlineEveryKeyType(t, bins)
	})
	t.Run("LostResponseAfterCommit", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		p := r.pkg(payload.ECP256, "key-1")
		if err := r.vault.InjectFault(kvemu.Fault{Kind: kvemu.FaultCommitThenReset, Method: "PUT", Path: importPath}); err != nil {
			t.Fatal(err)
		}
		res := r.must(0, "upload")
		if !strings.Contains(res.stderr, "looking before retrying") || !strings.Contains(res.stderr, "import found in key vault") {
			t.Errorf("stderr does not show the reconciliation:\n%s", res.stderr)
		}
		if st := r.vault.Stats(); st.Imports != 1 || st.Faults != 1 {
			t.Errorf("emulator: %d imports, %d faults; want 1 and 1", st.Imports, st.Faults)
		}
		r.exactlyOnce(p)
		r.must(0, "verify")
	})
	t.Run("ThrottlingAndServerErrors", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		var pkgs []*bundle.Bundle
		for i := range 6 {
			pkgs = append(pkgs, r.pkg(payload.RSA2048, fmt.Sprintf("key-%d", i)))
		}
		for _, f := range []kvemu.Fault{
			{Kind: kvemu.FaultStatus, Status: 429, RetryAfter: time.Second, Method: "PUT", Path: importPath, Count: 4},
			{Kind: kvemu.FaultStatus, Status: 503, Method: "PUT", Path: importPath, Count: 2},
			{Kind: kvemu.FaultStatus, Status: 500, Method: "PUT", Path: importPath, Count: 2},
			{Kind: kvemu.FaultReset, Method: "PUT", Path: importPath, Count: 2},
			{Kind: kvemu.FaultCommitThenReset, Method: "PUT", Path: importPath, Count: 2},
		} {
			if err := r.vault.InjectFault(f); err != nil {
				t.Fatal(err)
			}
		}
		r.must(0, "upload", "--concurrency", "4")
		if left := r.vault.PendingFaults(); len(left) != 0 {
			t.Errorf("faults not applied: %+v", left)
		}
		if st := r.vault.Stats(); st.Imports != uint64(len(pkgs)) {
			t.Errorf("emulator imported %d versions, want %d", st.Imports, len(pkgs))
		}
		r.exactlyOnce(pkgs...)
		r.must(0, "verify")
	})
	t.Run("VaultLies", func(t *testing.T) {
		t.Parallel()
		testOnlineVaultLies(t, bins)
	})
	t.Run("LateCommit", func(t *testing.T) {
		t.Parallel()
		testOnlineLateCommit(t, bins)
	})
	t.Run("DuplicateReported", func(t *testing.T) {
		t.Parallel()
		testOnlineDuplicateReported(t, bins)
	})
	t.Run("Storm", func(t *testing.T) {
		t.Parallel()
		testOnlineStorm(t, bins)
	})
	t.Run("ProgressBarOnATerminal", func(t *testing.T) {
		t.Parallel()
		testOnlineProgressBar(t, bins)
	})
	t.Run("KilledDuringUpload", func(t *testing.T) {
		t.Parallel()
		for _, point := range []string{
			"upload-before-import", "upload-after-import", "upload-after-import@2",
			"pending-recorded", "media-written", "committed@2",
			"media-tmp-written", "media-renamed", "media-synced@3",
		} {
			t.Run(point, func(t *testing.T) {
				t.Parallel()
				testOnlineKilled(t, bins, point)
			})
		}
	})
	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		testOnlineRefusals(t, bins)
	})
	t.Run("PublicKeyMismatch", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		k, err := r.c.PackagePayload(r.offer, payload.ECP256, "key-1")
		if err != nil {
			t.Fatal(err)
		}
		_, _, other, _ := r.c.TargetKey(payload.ECP256, "someone-else")
		k.PublicKey = other // the manifest names another key than the one wrapped
		r.tick()
		bad, err := r.c.Append(bundle.ChainOffline, k)
		if err != nil {
			t.Fatal(err)
		}
		r.approve(bad.ID(), bundle.KindKeyPackage, 0, 1)
		res := r.must(3, "upload")
		if !strings.Contains(res.stderr, "public key mismatch") {
			t.Errorf("stderr = %s", res.stderr)
		}
		rcs := r.receipts()[bad.ID()]
		if len(rcs) != 1 || rcs[0].Outcome != payload.OutcomePublicKeyMismatch || rcs[0].KID == "" || len(rcs[0].PublicKey) == 0 {
			t.Fatalf("receipts = %+v, want one public_key_mismatch receipt with the returned key", rcs)
		}
		if len(r.versions("key-1")) != 1 {
			t.Error("want the one imported version")
		}
		// The auditor's replay reports it, and verify exits 3.
		res = r.must(3, "verify")
		if !strings.Contains(res.stdout, "key mismatch") {
			t.Errorf("verify does not report the mismatch:\n%s", res.stdout)
		}
		// The receipted mismatch does not block other packages.
		good := r.pkg(payload.ECP256, "key-2")
		r.must(0, "upload")
		r.exactlyOnce(good)
	})
	t.Run("RejectedByKeyVault", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		p := r.pkg(payload.ECP256, "key-1")
		// The KEK is gone from the vault: Key Vault refuses the import for good.
		c := kvemutest.NewClient(t, r.vault.URL(), r.vault.CACertPEM(), kvemutest.Credential{Token: secret.New(r.token())}, nil)
		if _, err := c.DeleteKey(context.Background(), "kek", nil); err != nil {
			t.Fatal(err)
		}
		res := r.must(6, "upload")
		if !strings.Contains(res.stdout, "key-1  EC-P256  rejected") || !strings.Contains(res.stderr, "key vault rejected key package") ||
			!strings.Contains(res.stderr, "400 BadParameter") {
			t.Errorf("stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
		}
		rcs := r.receipts()[p.ID()]
		if len(rcs) != 1 || rcs[0].Outcome != payload.OutcomeRejected || !strings.HasPrefix(rcs[0].Error, "400 BadParameter") {
			t.Fatalf("receipts = %+v, want one rejected receipt", rcs)
		}
		// A rejected package is not tried again unless it is named.
		res = r.must(0, "upload")
		if !strings.Contains(res.stdout, "key-1  EC-P256  skipped") {
			t.Errorf("second upload: %s", res.stdout)
		}
		r.must(6, "upload", "--package", p.ID().Short())
		if n := len(r.receipts()[p.ID()]); n != 2 {
			t.Errorf("%d receipts, want 2 rejected ones", n)
		}
		if st := r.vault.Stats(); st.Imports != 0 || st.ImportsRefused != 2 {
			t.Errorf("emulator: %d imports, %d refused; want 0 and 2", st.Imports, st.ImportsRefused)
		}
		r.must(0, "verify") // rejected receipts are no finding: the package stays outstanding
	})
	t.Run("ReceiptCannotBeWritten", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		p := r.pkg(payload.ECP256, "key-1")
		// The online chain's folder on the stick turns read-only (write-protect switch).
		shard := filepath.Dir(r.c.File(r.bundle(bundle.ChainOnline, 1)))
		fstest.ReadOnly(t, shard)
		res := r.must(exitcode.Media, "upload")
		if !strings.Contains(res.stderr, "was imported but not receipted") {
			t.Errorf("stderr = %s", res.stderr)
		}
		if !strings.Contains(res.stdout, "1 import(s) have no receipt on the medium yet: run byok-online upload again with this stick writable") {
			t.Errorf("the summary does not count the import without a receipt:\n%s", res.stdout)
		}
		if n := len(r.versions("key-1")); n != 1 {
			t.Fatalf("%d versions, want 1", n)
		}
		if os.Geteuid() == 0 {
			if out, err := exec.Command("umount", shard).CombinedOutput(); err != nil {
				t.Fatalf("umount: %v: %s", err, out)
			}
		} else if err := os.Chmod(shard, 0o755); err != nil {
			t.Fatal(err)
		}
		// The journal still holds the signed receipt: the rerun writes it first.
		res = r.must(0, "upload")
		if !strings.Contains(res.stderr, "finishing an interrupted write") || !strings.Contains(res.stdout, "nothing to upload") {
			t.Errorf("the rerun did not finish the receipt:\n%s\n%s", res.stdout, res.stderr)
		}
		r.exactlyOnce(p)
		r.must(0, "verify")
	})
	t.Run("ThrottleLimit", func(t *testing.T) {
		t.Parallel()
		window := 2 * time.Second
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true, Limits: kvemu.Limits{EC: 4, Window: window}})
		r.setup()
		var pkgs []*bundle.Bundle
		for i := range 10 {
			pkgs = append(pkgs, r.pkg(payload.ECP256, fmt.Sprintf("key-%d", i)))
		}
		r.must(0, "upload", "--concurrency", "16", "--rate-limit", "ec=4", "--rate-window", window.String())
		st := r.vault.Stats()
		ec := st.Buckets[kvemu.BucketEC]
		if ec.Peak > 4 || ec.Throttled != 0 || st.Throttled != 0 {
			t.Errorf("ec bucket: peak %d (limit 4), %d throttled; the client exceeded the limit", ec.Peak, ec.Throttled)
		}
		if ec.Peak < 4 {
			t.Errorf("ec bucket peak %d: the limiter did not use the quota it has", ec.Peak)
		}
		r.exactlyOnce(pkgs...)
	})
	t.Run("DryRun", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		p := r.pkg(payload.RSA3072, "key-1")
		r.vault.ResetStats()
		res := r.must(0, "upload", "--dry-run")
		for _, want := range []string{
			"PUT " + r.vault.URL() + "/keys/key-1?api-version=2025-07-01",
			"Content-Type: application/json",
			`"key_hsm":"<the .byok file: `,
			`"byok-package":"` + p.ID().String() + `"`,
			`"kty":"RSA-HSM"`,
			"would_import",
		} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("dry run output lacks %q:\n%s", want, res.stdout)
			}
		}
		if strings.Contains(strings.ToLower(res.stdout), "authorization") {
			t.Error("the dry run shows the Authorization header")
		}
		if st := r.vault.Stats(); st.Requests != 0 {
			t.Errorf("the dry run sent %d requests", st.Requests)
		}
		if len(r.receipts()) != 0 {
			t.Error("the dry run wrote a receipt")
		}
		r.must(0, "upload")
		r.exactlyOnce(p)
	})
}

func testOnlineEveryKeyType(t *testing.T, bins onlineBinaries) {
	tests := []struct {
		kind  kvemu.Kind
		types []payload.KeyType
	}{
		{kvemu.KindPremium, []payload.KeyType{payload.RSA2048, payload.RSA3072, payload.RSA4096, payload.ECP256, payload.ECP384, payload.ECP521}},
		{kvemu.KindManagedHSM, []payload.KeyType{payload.AES128, payload.AES192, payload.AES256}},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			t.Parallel()
			r := newOnlineRig(t, bins.plain, onlineRigConfig{Kind: tt.kind, KEKBits: 3072, AllowWeakerKEK: true})
			r.setup()
			offer := openPayload(t, r.bundle(bundle.ChainOnline, 2)).(*payload.KEKOffer)
			if (offer.Attestation != nil) != (tt.kind == kvemu.KindManagedHSM) {
				t.Errorf("offer attestation = %v; want one exactly on Managed HSM", offer.Attestation)
			}
			var pkgs []*bundle.Bundle
			for _, kt := range tt.types {
				pkgs = append(pkgs, r.pkg(kt, strings.ToLower(string(kt))))
			}
			res := r.must(0, "upload", "--json")
			var out struct {
				Packages []struct {
					Outcome string `json:"outcome"`
					KID     string `json:"kid"`
				} `json:"packages"`
				Counts map[string]int `json:"counts"`
			}
			if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
				t.Fatalf("upload --json: %v\n%s", err, res.stdout)
			}
			if out.Counts["imported"] != len(tt.types) || len(out.Packages) != len(tt.types) {
				t.Errorf("upload --json = %s", res.stdout)
			}
			r.exactlyOnce(pkgs...)
			for _, kt := range tt.types {
				vs := r.versions(strings.ToLower(string(kt)))
				if len(vs) != 1 || vs[0].Kty != kt.Kty() || (kt.Curve() != "" && vs[0].Crv != kt.Curve()) || !vs[0].Imported {
					t.Errorf("%s in Key Vault: %+v", kt, vs)
				}
			}
			r.must(0, "verify")
			r.must(0, "upload") // nothing left: a rerun imports nothing
			if st := r.vault.Stats(); st.Imports != uint64(len(tt.types)) {
				t.Errorf("emulator imported %d versions, want %d", st.Imports, len(tt.types))
			}
		})
	}
}

// testOnlineKilled kills upload at point, reruns it, and checks that every package was
// imported and receipted exactly once.
func testOnlineKilled(t *testing.T, bins onlineBinaries, point string) {
	r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
	r.setup()
	var pkgs []*bundle.Bundle
	for i := range 3 {
		pkgs = append(pkgs, r.pkg(payload.ECP256, fmt.Sprintf("key-%d", i)))
	}
	res := r.execWith(bins.crash, []string{"BYOK_CRASHPOINT=" + point}, "upload", "--concurrency", "2")
	if !res.killed {
		t.Fatalf("upload was not killed at %s: exit %d\n%s", point, res.code, res.stderr)
	}
	r.must(0, "upload")
	r.exactlyOnce(pkgs...)
	if st := r.vault.Stats(); st.Imports != 3 {
		t.Errorf("emulator imported %d versions, want 3", st.Imports)
	}
	r.must(0, "verify")
	res = r.must(0, "status", "--json")
	var st struct {
		Counts  map[string]int `json:"upload_counts"`
		Pending bool           `json:"pending_write"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Counts["imported"] != 3 || st.Pending {
		t.Errorf("status after the rerun: %s", res.stdout)
	}
}

// testOnlineRefusals checks that bad media are refused with their exit codes and that
// nothing reaches Key Vault.
func testOnlineRefusals(t *testing.T, bins onlineBinaries) {
	nothingImported := func(t *testing.T, r *onlineRig) {
		t.Helper()
		if st := r.vault.Stats(); st.Imports != 0 || st.ImportsRefused != 0 {
			t.Errorf("emulator saw %d imports and %d refused imports, want none", st.Imports, st.ImportsRefused)
		}
		if n := len(r.receipts()); n != 0 {
			t.Errorf("%d receipts written, want none", n)
		}
	}
	t.Run("tampered", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		p := r.pkg(payload.ECP256, "key-1")
		path := r.c.File(p)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)-10] ^= 1 // in the stored payload
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o444); err != nil {
			t.Fatal(err)
		}
		res := r.must(3, "upload")
		if !strings.Contains(res.stderr, "nothing was uploaded") {
			t.Errorf("stderr = %s", res.stderr)
		}
		r.must(3, "verify")
		// Truncated: malformed, exit 4.
		if err := os.WriteFile(path, data[:300], 0o444); err != nil {
			t.Fatal(err)
		}
		r.must(4, "upload")
		nothingImported(t, r)
	})
	t.Run("unapproved", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		r.pkg(payload.ECP256, "key-1", 0) // 1 of the 2 approvals required
		// Waiting for approval is not a failure: upload says so and names the next step.
		res := r.must(0, "upload")
		if !strings.Contains(res.stdout, "awaiting_approval") || !strings.Contains(res.stdout, "approved by 1 of the 2 custodians required") ||
			!strings.Contains(res.stdout, "byok-offline approve --package") {
			t.Errorf("stdout = %s", res.stdout)
		}
		nothingImported(t, r)
	})
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		// The offline clock runs four minutes behind (within the policy's five-minute skew),
		// and the package lives one second.
		r.init()
		r.manualClock = true
		r.c.Clock = time.Now().Add(-250 * time.Second)
		pol := r.policy(nil)
		if _, err := r.c.Approve(pol.ID(), bundle.KindPolicy, 0, 1); err != nil {
			t.Fatal(err)
		}
		r.must(0, "trust", "--fingerprint", pol.ID().Short())
		r.kek("kek")
		r.c.Clock = time.Now().Add(-240 * time.Second)
		p, err := r.c.Package(r.offer, payload.ECP256, "key-1", chaintest.Mutate(func(d *bundle.Draft) { d.Expires = d.Created + 1 }))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.c.Approve(p.ID(), bundle.KindKeyPackage, 0, 1); err != nil {
			t.Fatal(err)
		}
		res := r.must(3, "upload")
		if !strings.Contains(res.stderr, "the key package expired at") {
			t.Errorf("stderr = %s", res.stderr)
		}
		nothingImported(t, r)
	})
	t.Run("vault not in policy", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		// kek create for a vault the policy does not name: refused.
		other := newOnlineRig(t, bins.plain, onlineRigConfig{})
		res := r.must(7, "kek", "create", "--vault", other.vault.URL(), "--name", "kek")
		if !strings.Contains(res.stderr, "does not allow vault") {
			t.Errorf("stderr = %s", res.stderr)
		}
		// Policy version 2 drops the vault; a package for it made afterwards is refused.
		r.tick()
		p2 := r.c.NewPolicy()
		p2.Version, p2.Previous = 2, r.c.PolicyID
		p2.Vaults = []payload.Vault{{URL: other.vault.URL(), Kind: payload.VaultPremium, Region: "northeurope"}}
		b2, err := r.c.Append(bundle.ChainOffline, p2)
		if err != nil {
			t.Fatal(err)
		}
		r.approve(b2.ID(), bundle.KindPolicy, 0, 1)
		r.c.Policy, r.c.PolicyID = p2, b2.ID()
		r.pkg(payload.ECP256, "key-1")
		res = r.must(3, "upload")
		if !strings.Contains(res.stderr, "policy violation") || !strings.Contains(res.stderr, "not a vault the policy allows") {
			t.Errorf("stderr = %s", res.stderr)
		}
		nothingImported(t, r)
	})
	t.Run("replayed approval", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		p := r.pkg(payload.ECP256, "key-1", 0)
		r.approve(p.ID(), bundle.KindKeyPackage, 0, 1) // custodian 0 approves a second time
		res := r.must(3, "upload")
		if !strings.Contains(res.stderr, "replay") {
			t.Errorf("stderr = %s", res.stderr)
		}
		nothingImported(t, r)
	})
	t.Run("older copy", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		p := r.pkg(payload.ECP256, "key-1")
		snapshot := filepath.Join(r.dir, "snapshot")
		copyDir(t, r.media, snapshot)
		r.must(0, "upload")
		r.exactlyOnce(p)
		// The operator brings an older copy of the stick: its online chain lacks the receipt.
		stale := filepath.Join(r.dir, "stale")
		if err := os.Rename(r.media, stale); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(snapshot, r.media); err != nil {
			t.Fatal(err)
		}
		res := r.must(exitcode.Stale, "upload")
		if !strings.Contains(res.stderr, "this stick is an older copy: the station has written online seq 3, the stick holds up to 2") {
			t.Errorf("stderr = %s", res.stderr)
		}
		r.must(exitcode.Stale, "verify")
		if st := r.vault.Stats(); st.Imports != 1 {
			t.Errorf("emulator imported %d versions, want still 1", st.Imports)
		}
	})
	t.Run("uploaded already", func(t *testing.T) {
		t.Parallel()
		r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
		r.setup()
		p := r.pkg(payload.ECP256, "key-1")
		r.must(0, "upload")
		res := r.must(0, "upload")
		if !strings.Contains(res.stdout, "nothing to upload") {
			t.Errorf("stdout = %s", res.stdout)
		}
		r.must(7, "upload", "--package", p.ID().String())
		r.must(4, "upload", "--package", strings.Repeat("ab", 32))
		if st := r.vault.Stats(); st.Imports != 1 {
			t.Errorf("emulator imported %d versions, want 1", st.Imports)
		}
	})
}

// testOnlineProgressBar runs upload with its stderr on a terminal (a pseudo-terminal from
// util-linux's script): the progress bar redraws one line, ends at n/n, and the logs' per-key
// progress lines are left out; on a pipe, the log lines come instead.
func testOnlineProgressBar(t *testing.T, bins onlineBinaries) {
	script, err := exec.LookPath("script")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("util-linux's script is needed for a terminal (scripts/deps.sh installs it)")
		}
		t.Skip("no script(1) for a pseudo-terminal")
	}
	r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
	r.setup()
	pkgs := []*bundle.Bundle{r.pkg(payload.ECP256, "key-1"), r.pkg(payload.ECP256, "key-2"), r.pkg(payload.ECP256, "key-3")}
	cmd := exec.Command(script, "-qec", bins.plain+" upload --concurrency 1", "/dev/null")
	cmd.Env = r.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("upload on a terminal: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"\r[==========                    ] 1/3 uploaded", "\r[====================          ] 2/3 uploaded", "\r[==============================] 3/3 uploaded\r\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("the terminal does not show %q:\n%q", want, text)
		}
	}
	if strings.Contains(text, "upload progress") {
		t.Errorf("the terminal shows the progress log lines as well as the bar:\n%s", text)
	}
	r.exactlyOnce(pkgs...)

	// On a pipe: log lines, no bar.
	r2 := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
	r2.setup()
	r2.pkg(payload.ECP256, "key-1")
	res := r2.must(0, "upload")
	if strings.Contains(res.stderr, "uploaded") && strings.Contains(res.stderr, "\r[") {
		t.Errorf("stderr on a pipe has the bar:\n%q", res.stderr)
	}
	if !strings.Contains(res.stderr, "upload progress") || !strings.Contains(res.stderr, "done=1 total=1") {
		t.Errorf("stderr on a pipe lacks the progress log line:\n%s", res.stderr)
	}
}
