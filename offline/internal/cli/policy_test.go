package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/buildinfo"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TestPolicyAmend replaces custodian bob by dave in policy version 2: the proposal takes
// effect only once both the new custodians' threshold and the old ones' have approved it
// (bob, who leaves, still has a say), and from then on package approvals count the new set.
func TestPolicyAmend(t *testing.T) {
	f := newFixture(t)
	f.setup()
	head := f.offlineHead()

	// Refusals write nothing.
	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"policy", "amend"}, exitcode.Usage, "nothing to change"},
		{[]string{"policy", "amend", "--remove-custodian", "zed"}, exitcode.Usage, "not a custodian of the policy in force"},
		{[]string{"policy", "amend", "--add-custodian", "alice2=alice"}, exitcode.Usage, "needs a token of their own"},
		{[]string{"policy", "amend", "--add-custodian", "alice=dave"}, exitcode.Usage, "the name is taken"},
		{[]string{"policy", "amend", "--remove-custodian", "bob", "--remove-custodian", "carol"}, exitcode.Usage, "give --threshold"},
		{[]string{"policy", "amend", "--remove-vault", premium, "--remove-vault", mhsm}, exitcode.Usage, "no vault"},
		{[]string{"policy", "amend", "--add-custodian", "dave=dave", "--threshold", "5"}, exitcode.Usage, "give --threshold"},
		{[]string{"policy", "approve"}, exitcode.Refused, "no policy version awaits approval"},
	} {
		if errs := f.exits(tt.code, tt.args...); !strings.Contains(errs, tt.stderr) {
			t.Errorf("%v: stderr %q, want %q", tt.args, errs, tt.stderr)
		}
	}
	if got := f.offlineHead(); got != head {
		t.Fatalf("refusals moved the offline chain from %d to %d", head, got)
	}
	f.withLedger(func(s *store.Store) {
		if _, err := s.Custodian("dave"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a refused amend enrolled dave: %v", err)
		}
	})

	amend := []string{"policy", "amend", "--remove-custodian", "bob", "--add-custodian", "dave=dave", "--add-vault", "https://fabrikam.vault.azure.net=premium:eastus"}
	var r policyResult
	f.mustJSON(&r, append(amend, "--custodian", "dave")...)
	if r.Proposal.Version != 2 || r.InForce || r.OfNew != 1 || r.OfPrevious != 0 || len(r.Bundles) != 2 || len(r.NewKeys) != 1 {
		t.Fatalf("amend approved by dave = %+v, want version 2 proposed, 1 of the new, 0 of the old, not in force", r)
	}
	for _, want := range []string{"custodian bob", "custodian dave", "vault https://fabrikam.vault.azure.net (premium, eastus) allowed"} {
		if !slices.ContainsFunc(r.Changes, func(c string) bool { return strings.Contains(c, want) }) {
			t.Errorf("changes %q do not mention %q", r.Changes, want)
		}
	}
	var st statusResult
	f.mustJSON(&st, "status")
	if st.Policy == nil || st.Policy.Version != 1 || st.Proposal == nil || st.Proposal.Fingerprint != r.Proposal.Fingerprint {
		t.Errorf("status: policy %+v, proposal %+v; want version 1 in force and the proposal", st.Policy, st.Proposal)
	}
	// Version 1 is still in force: the new vault is not allowed yet.
	if res := f.replay(); res.State.Current().Policy.Version != 1 || res.State.Pending == nil {
		t.Fatalf("replay: version %d in force, pending %v", res.State.Current().Policy.Version, res.State.Pending)
	}

	// Rerunning the amend (as after an interruption) adds approvals to the same proposal.
	var again policyResult
	f.mustJSON(&again, append(amend, "--custodian", "alice")...)
	if again.Proposal.ID != r.Proposal.ID || len(again.Bundles) != 1 || again.OfNew != 2 || again.OfPrevious != 1 || again.InForce {
		t.Fatalf("amend rerun = %+v, want the same proposal, 2 of the new, 1 of the old, not in force", again)
	}
	f.exits(exitcode.Refused, "policy", "approve", "--custodian", "alice")
	f.exits(exitcode.Refused, "policy", "approve", "--custodian", "zed")

	var last policyResult
	f.mustJSON(&last, "policy", "approve", "--custodian", "bob")
	if !last.InForce || last.OfPrevious != 2 || len(last.Approvals) != 3 {
		t.Fatalf("approve by bob = %+v, want in force with alice, bob and dave", last)
	}
	res := f.replay()
	cur := res.State.Current()
	if cur.ID.String() != r.Proposal.ID || res.State.Pending != nil {
		t.Fatalf("replay: %s in force, want the proposal %s", cur.ID.Short(), r.Proposal.Fingerprint)
	}
	if got := ceremony.CustodianNames(cur.Policy); got != "alice, carol, dave" {
		t.Errorf("custodians in force: %s", got)
	}
	st = statusResult{}
	// The same amend again is done already.
	if errs := f.exits(exitcode.Refused, append(amend, "--custodian", "alice")...); !strings.Contains(errs, "in force already") {
		t.Errorf("amend after it took effect: %s", errs)
	}
	f.mustJSON(&st, "status")
	if st.Policy.Version != 2 || !st.Policy.InForce || st.Proposal != nil {
		t.Errorf("status after: policy %+v, proposal %+v", st.Policy, st.Proposal)
	}

	// Packages now follow version 2: bob's approval is refused, dave's counts.
	pkg := f.packageWeb()
	if errs := f.exits(exitcode.Refused, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "bob"); !strings.Contains(errs, "not a custodian of the policy in force") {
		t.Errorf("bob's approval: %s", errs)
	}
	var ap approveResult
	f.mustJSON(&ap, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "dave", "--custodian", "carol")
	if !ap.Ready {
		t.Errorf("approval by dave and carol = %+v, want ready", ap)
	}
	if _, err := f.online().Receipt(pkg.Package.ID, payload.OutcomeImported); err != nil {
		t.Fatal(err)
	}
	f.must("sync")
	f.replay()
}

// approve counts, in "approved so far", only the custodians of the policy in force: bob's
// approval, given before a policy version that removed him took effect, no longer counts.
// An expired proposal is a verification failure (exit 3) that names the next step, and
// approving it writes nothing; on the station's own clock it is approved.
func TestPolicyApproveExpired(t *testing.T) {
	f := newFixture(t)
	f.setup()
	var r policyResult
	f.mustJSON(&r, "policy", "amend", "--add-vault", "https://fabrikam.vault.azure.net=premium:eastus", "--custodian", "alice")
	if r.InForce {
		t.Fatalf("amend approved by alice alone = %+v, want a proposal awaiting approval", r)
	}
	head := f.offlineHead()
	setClock(t, time.Now().Add(8*24*time.Hour))
	errs := f.exits(exitcode.Verify, "policy", "approve", "--custodian", "bob")
	if want := "(?s)the proposed policy version 2 \\(" + r.Proposal.Fingerprint + "\\) expired at .*hint: propose it again with byok-offline policy amend"; !matches(want, errs) {
		t.Errorf("stderr %q does not match %q", errs, want)
	}
	setClock(t, time.Now())
	if got := f.offlineHead(); got != head {
		t.Errorf("approving the expired proposal moved the offline chain from %d to %d", head, got)
	}
	f.mustJSON(&r, "policy", "approve", "--custodian", "bob")
	if !r.InForce {
		t.Errorf("policy approve on the station's clock = %+v, want version 2 in force", r)
	}
}

func TestApproveCountsOnlyCustodiansInForce(t *testing.T) {
	f := newFixture(t)
	f.setup()
	pkg := f.packageWeb()
	f.must("approve", "--package", pkg.Package.Fingerprint, "--custodian", "bob")
	f.must("policy", "amend", "--remove-custodian", "bob", "--add-custodian", "dave=dave", "--custodian", "dave", "--custodian", "alice")
	var last policyResult
	f.mustJSON(&last, "policy", "approve", "--custodian", "bob")
	if !last.InForce {
		t.Fatalf("policy approve by bob = %+v, want version 2 in force", last)
	}
	code, _, errs := f.run("approve", "--package", pkg.Package.Fingerprint, "--custodian", "alice")
	if code != 0 {
		t.Fatalf("approve by alice: exit %d: %s", code, errs)
	}
	if want := "approved so far by 0 of the 2 needed"; !strings.Contains(errs, want) {
		t.Errorf("approve by alice printed %q, want %q (bob is no custodian of version 2)", errs, want)
	}
}

// TestPolicyAllowToolset pins the binaries that may write: a policy version that lists this
// binary lets it write; one that lists only another binary makes it refuse (exit 7, nothing
// written), and says so when it is proposed.
func TestPolicyAllowToolset(t *testing.T) {
	f := newFixture(t)
	f.setup()
	self, err := buildinfo.Self()
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("ab", 32)
	head := f.offlineHead()
	for _, tt := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"policy", "amend", "--allow-toolset", "abc"}, "want the 64 hex digits of a SHA-256"},
		{[]string{"policy", "amend", "--remove-toolset", other}, "does not list it"},
		{[]string{"policy", "amend", "--allow-toolset", other, "--allow-toolset", strings.ToUpper(other)}, "allowed already"},
	} {
		if errs := f.exits(exitcode.Usage, tt.args...); !strings.Contains(errs, tt.stderr) {
			t.Errorf("%v: stderr %q, want %q", tt.args, errs, tt.stderr)
		}
	}
	if got := f.offlineHead(); got != head {
		t.Fatalf("refusals moved the offline chain from %d to %d", head, got)
	}

	// Version 2 lists this binary (typed in upper case, as some tools print it) and another.
	var r policyResult
	f.mustJSON(&r, "policy", "amend", "--allow-toolset", strings.ToUpper(self.SHA256), "--allow-toolset", other)
	if !r.InForce {
		t.Fatalf("amend = %+v, want version 2 in force", r)
	}
	for _, want := range []string{"toolset " + self.SHA256 + " allowed to write", "toolset " + other + " allowed to write"} {
		if !slices.Contains(r.Changes, want) {
			t.Errorf("changes %q lack %q", r.Changes, want)
		}
	}
	cur := f.replay().State.Current().Policy
	if want := payload.SortToolsets([]string{self.SHA256, other}); !slices.Equal(cur.AllowedToolsets, want) {
		t.Fatalf("allowed toolsets in force %q, want %q", cur.AllowedToolsets, want)
	}
	var st statusResult
	f.mustJSON(&st, "status")
	if st.Policy == nil || !slices.Equal(st.Policy.AllowedToolsets, cur.AllowedToolsets) {
		t.Errorf("status shows policy %+v, want the allowed toolsets %q", st.Policy, cur.AllowedToolsets)
	}
	if out := f.must("status"); !strings.Contains(out, "binary allowed to write: sha256 "+self.SHA256) {
		t.Errorf("status text lacks this binary's hash:\n%s", out)
	}
	pkg := f.packageWeb() // this binary writes
	if res := f.replay(); len(res.Findings) != 0 {
		t.Fatalf("findings %v, want none: every bundle is written by a listed binary", res.Findings)
	}

	// Version 3 drops this binary: proposing it says what that means, and once it is in
	// force this binary writes nothing.
	f.mustJSON(&r, "policy", "amend", "--remove-toolset", self.SHA256)
	if !r.InForce || !slices.ContainsFunc(r.Changes, func(c string) bool {
		return strings.Contains(c, "this binary") && strings.Contains(c, "refuses to write")
	}) {
		t.Fatalf("amend = %+v, want version 3 in force and a note that this binary will refuse to write", r)
	}
	head = f.offlineHead()
	errs := f.exits(exitcode.Refused, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "alice")
	for _, want := range []string{"sha256 " + self.SHA256, "is not one of the 1 toolsets", "nothing was written"} {
		if !strings.Contains(errs, want) {
			t.Errorf("refused approve: stderr %q lacks %q", errs, want)
		}
	}
	if got := f.offlineHead(); got != head {
		t.Errorf("a refused write moved the offline chain from %d to %d", head, got)
	}
	f.exits(exitcode.Refused, "policy", "amend", "--allow-toolset", self.SHA256)
	if got := f.offlineHead(); got != head {
		t.Errorf("a refused amend moved the offline chain from %d to %d", head, got)
	}
}
