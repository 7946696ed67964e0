package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// regionFlags give alice and bob the keys of westeurope (the premium vault; both approve)
// and carol those of northeurope (the Managed HSM).
var regionFlags = []string{"--region", "westeurope=2:alice,bob", "--region", "northeurope=1:carol"}

// TestInitRegionRefusals: region flags that cannot make a valid policy are refused before
// anything is written.
func TestInitRegionRefusals(t *testing.T) {
	f := newFixture(t)
	if _, err := f.online().Enroll(); err != nil {
		t.Fatal(err)
	}
	base := []string{"init", "--custodian", "alice=alice", "--custodian", "bob=bob", "--threshold", "2",
		"--vault", premium + "=premium:westeurope", "--online-fingerprint", f.online().Fingerprint()}
	for _, tt := range []struct {
		flags  []string
		stderr string
	}{
		{[]string{"--region", "westeurope=1:alice,zed"}, "zed, who is not a custodian"},
		{[]string{"--region", "eastus=1:alice"}, "no vault of the policy is in it"},
		{[]string{"--region", "westeurope=3:alice,bob"}, "threshold 3 of 2 custodians"},
		{[]string{"--region", "westeurope=1"}, "want NAME=M:CUSTODIAN"},
		{[]string{"--region", "westeurope=1:alice", "--region", "westeurope=1:bob"}, "given twice"},
		{[]string{"--global-approval"}, "needs at least one --region"},
	} {
		if errs := f.exits(exitcode.Usage, append(base, tt.flags...)...); !strings.Contains(errs, tt.stderr) {
			t.Errorf("init %v: stderr %q, want %q", tt.flags, errs, tt.stderr)
		}
	}
	for _, p := range []string{filepath.Join(f.media, "offline"), f.state} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("refused inits made %s: %v", p, err)
		}
	}
}

// TestRegionalApproval: a package for a westeurope vault counts only the approvals of
// westeurope's custodians; carol (northeurope) is refused, alice and bob make it ready.
func TestRegionalApproval(t *testing.T) {
	f := newFixture(t)
	f.setup(regionFlags...)
	var st statusResult
	f.mustJSON(&st, "status")
	if st.Policy == nil || len(st.Policy.Regions) != 2 || st.Policy.Regions[1].Name != "westeurope" || st.Policy.Regions[1].Threshold != 2 {
		t.Fatalf("status policy regions = %+v, want northeurope and westeurope (2 of alice, bob)", st.Policy)
	}
	pkg := f.packageWeb()
	if !strings.Contains(pkg.Approvers, "region westeurope") {
		t.Errorf("package says it needs %q, want westeurope's custodians", pkg.Approvers)
	}
	head := f.offlineHead()
	if errs := f.exits(exitcode.Refused, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "carol"); !strings.Contains(errs, "carol does not approve keys for "+premium) {
		t.Errorf("carol's approval: %s", errs)
	}
	if got := f.offlineHead(); got != head {
		t.Fatalf("a refused approval moved the offline chain from %d to %d", head, got)
	}
	var ap approveResult
	f.mustJSON(&ap, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "alice")
	if ap.Ready || ap.Have != 1 || ap.Threshold != 2 || !strings.Contains(ap.Quorum, "westeurope") {
		t.Errorf("approval by alice = %+v, want 1 of westeurope's 2, not ready", ap)
	}
	// The default is every custodian of the region who has not approved: bob.
	f.mustJSON(&ap, "approve", "--package", pkg.Package.Fingerprint)
	if !ap.Ready || len(ap.Approved) != 1 || ap.Approved[0] != "bob" {
		t.Errorf("approval by the rest = %+v, want bob, ready", ap)
	}
	f.replay()
}

// TestRegionAmendNeedsRegion: a policy version that changes westeurope's threshold takes
// effect only once westeurope's current threshold (alice and bob) approved it, although
// alice and carol meet both versions' own thresholds.
func TestRegionAmendNeedsRegion(t *testing.T) {
	f := newFixture(t)
	f.setup(regionFlags...)
	var r policyResult
	f.mustJSON(&r, "policy", "amend", "--region", "westeurope=1:alice,bob", "--custodian", "alice", "--custodian", "carol")
	if r.InForce || r.OfNew != 2 || r.OfPrevious != 2 || len(r.OfRegions) != 1 || r.OfRegions[0] != (regionCount{Region: "westeurope", Have: 1, Need: 2}) {
		t.Fatalf("amend approved by alice and carol = %+v, want not in force: 1 of westeurope's 2", r)
	}
	if !strings.Contains(strings.Join(r.Changes, "\n"), "region westeurope: 1 of alice, bob, was 2 of alice, bob") {
		t.Errorf("changes %q do not describe the region's change", r.Changes)
	}
	if res := f.replay(); res.State.Current().Policy.Version != 1 {
		t.Fatalf("version %d in force before westeurope approved", res.State.Current().Policy.Version)
	}
	f.mustJSON(&r, "policy", "approve", "--custodian", "bob")
	if !r.InForce {
		t.Fatalf("approve by bob = %+v, want in force", r)
	}
	if res := f.replay(); res.State.Current().Policy.Version != 2 {
		t.Fatalf("version %d in force after westeurope approved, want 2", res.State.Current().Policy.Version)
	}
	// Removing a custodian who is in a region needs the region changed too.
	if errs := f.exits(exitcode.Usage, "policy", "amend", "--remove-custodian", "carol", "--threshold", "1"); !strings.Contains(errs, "region northeurope names carol") {
		t.Errorf("removing carol: %s", errs)
	}
}

// TestResidencyAndFanOut: a key bound to westeurope is refused for the northeurope vault
// (exit 7, nothing written); a free key goes to both vaults in one run, one package per
// vault, each carrying its region's approvers; a rerun finishes nothing new; --region picks
// a region's vaults.
func TestResidencyAndFanOut(t *testing.T) {
	f := newFixture(t)
	f.setup(regionFlags...)
	f.offer(onlinetest.OfferOptions{Vault: premium})
	f.offer(onlinetest.OfferOptions{Vault: mhsm, ManagedHSM: true})
	if errs := f.exits(exitcode.Usage, "keygen", "--type", "EC-P256", "--ident", "eu-only", "--regions", "eastus"); !strings.Contains(errs, "no vault of the policy in force is in region eastus") {
		t.Errorf("keygen --regions eastus: %s", errs)
	}
	var k keyResult
	f.mustJSON(&k, "keygen", "--type", "EC-P256", "--ident", "eu-only", "--regions", "westeurope")
	if len(k.Regions) != 1 || k.Regions[0] != "westeurope" {
		t.Fatalf("keygen --regions westeurope = %+v", k)
	}
	head := f.offlineHead()
	errs := f.exits(exitcode.Refused, "package", "--key", "eu-only", "--vault", premium, "--vault", mhsm)
	if !strings.Contains(errs, "residency") || !strings.Contains(errs, mhsm+" is in northeurope") {
		t.Errorf("package of a westeurope key for northeurope: %s", errs)
	}
	if got := f.offlineHead(); got != head {
		t.Fatalf("a refused package moved the offline chain from %d to %d", head, got)
	}
	if des, err := os.ReadDir(filepath.Join(f.media, "byok")); err == nil && len(des) > 0 {
		t.Errorf("a refused package left %d .byok copies", len(des))
	}

	f.must("keygen", "--type", "EC-P256", "--ident", "shared")
	var batch packageBatchResult
	f.mustJSON(&batch, "package", "--key", "shared", "--vault", premium, "--vault", mhsm)
	if len(batch.Packages) != 2 || batch.Packages[0].Vault != premium || batch.Packages[1].Vault != mhsm {
		t.Fatalf("fan-out = %+v, want one package for each vault", batch.Packages)
	}
	if batch.Packages[0].PublicSHA256 != batch.Packages[1].PublicSHA256 || batch.Packages[0].PublicSHA256 == "" {
		t.Errorf("the two packages carry different public keys")
	}
	for i, region := range []string{"westeurope", "northeurope"} {
		if !strings.Contains(batch.Packages[i].Approvers, "region "+region) {
			t.Errorf("package for %s needs %q, want %s's custodians", batch.Packages[i].Vault, batch.Packages[i].Approvers, region)
		}
	}
	head = f.offlineHead()
	var again packageBatchResult
	f.mustJSON(&again, "package", "--key", "shared", "--region", "westeurope", "--region", "northeurope")
	if len(again.Packages) != 2 || !again.Packages[0].Existing || !again.Packages[1].Existing || f.offlineHead() != head {
		t.Errorf("rerun by region = %+v, want the two existing packages and nothing written", again.Packages)
	}

	if errs := f.exits(exitcode.Refused, "package", "--key", "eu-only", "--all-vaults"); !strings.Contains(errs, "residency") {
		t.Errorf("package --all-vaults of a westeurope key: %s", errs)
	}
	if got := f.offlineHead(); got != head {
		t.Fatalf("a refused package --all-vaults moved the offline chain from %d to %d", head, got)
	}
	var all packageBatchResult
	f.mustJSON(&all, "package", "--key", "shared", "--all-vaults")
	if len(all.Packages) != 2 || !all.Packages[0].Existing || !all.Packages[1].Existing {
		t.Errorf("package --all-vaults of a fanned-out key = %+v, want its two existing packages", all.Packages)
	}
	var eu packageResult
	f.mustJSON(&eu, "package", "--key", "eu-only", "--region", "westeurope")
	// A region no vault is in, for either flag, names the flag and the regions there are.
	if errs := f.exits(exitcode.Usage, "package", "--key", "eu-only", "--region", "EastUS"); !strings.Contains(errs, "usage: --region eastus: no vault of the policy in force is in it (its regions are northeurope, westeurope)") {
		t.Errorf("package --region eastus: %s", errs)
	}
	if errs := f.exits(exitcode.Usage, "package", "--key", "late-2", "--vault", premium, "--regions", "eastus"); !strings.Contains(errs, "usage: --regions eastus: no vault of the policy in force is in region eastus (its regions are northeurope, westeurope)") {
		t.Errorf("package --regions eastus: %s", errs)
	}

	// A key not bound at keygen is bound by its first package; a key packaged before is not.
	f.must("keygen", "--type", "EC-P256", "--ident", "late")
	if errs := f.exits(exitcode.Refused, "package", "--key", "shared", "--vault", premium, "--regions", "westeurope"); !strings.Contains(errs, "packaged before without regions") {
		t.Errorf("binding a key packaged before: %s", errs)
	}
	if errs := f.exits(exitcode.Refused, "package", "--key", "late", "--vault", mhsm, "--regions", "westeurope"); !strings.Contains(errs, "residency") {
		t.Errorf("binding a key to westeurope and packaging it for northeurope: %s", errs)
	}
	var late packageResult
	f.mustJSON(&late, "package", "--key", "late", "--vault", premium, "--regions", "westeurope")
	if errs := f.exits(exitcode.Refused, "package", "--key", "late", "--vault", mhsm); !strings.Contains(errs, "residency") {
		t.Errorf("a key bound at its first package, packaged for northeurope: %s", errs)
	}
	if errs := f.exits(exitcode.Refused, "package", "--key", "late", "--vault", premium, "--regions", "northeurope"); !strings.Contains(errs, "bound to region(s) westeurope already") {
		t.Errorf("rebinding a bound key: %s", errs)
	}

	// One run approves the three westeurope packages: alice and bob each sign all three.
	if errs := f.exits(exitcode.Refused, "approve", "--region", "westeurope", "--custodian", "carol"); !strings.Contains(errs, "carol does not approve keys for "+premium+", a vault of region westeurope") {
		t.Errorf("carol approving westeurope: %s", errs)
	}
	head = f.offlineHead()
	var ar approveBatchResult
	f.mustJSON(&ar, "approve", "--region", "westeurope")
	if len(ar.Packages) != 3 || f.offlineHead() != head+3 {
		t.Fatalf("approve --region westeurope = %+v (offline head %d, was %d), want 3 packages, 3 bundles", ar, f.offlineHead(), head)
	}
	for _, r := range ar.Packages {
		if !r.Ready || r.Vault != premium || strings.Join(r.Approved, ",") != "alice,bob" {
			t.Errorf("approval of %s = %+v, want ready, by alice and bob", r.Package.Fingerprint, r)
		}
	}
	if errs := f.exits(exitcode.Refused, "approve", "--region", "westeurope"); !strings.Contains(errs, "every key package of region westeurope is approved by them already") {
		t.Errorf("approving westeurope again: %s", errs)
	}
	res := f.replay()
	rec, ok := res.State.Packages[eu.Package.ID]
	if !ok || rec.Vault != premium {
		t.Fatalf("the westeurope package is not awaiting upload on the medium")
	}
	m, err := media.Open(f.media)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e, err := m.Find(bundle.ChainOffline, eu.Seq)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := m.Read(e)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	var kp payload.KeyPackage
	if err := payload.Unmarshal(pl, &kp); err != nil {
		t.Fatal(err)
	}
	if len(kp.Regions) != 1 || kp.Regions[0] != "westeurope" {
		t.Errorf("the key package carries regions %q, want [westeurope]", kp.Regions)
	}
}
