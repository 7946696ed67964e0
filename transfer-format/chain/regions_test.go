package chain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

const (
	euVault = "https://contoso-byok.vault.azure.net" // chaintest's vault, in westeurope
	usVault = "https://contoso-us.vault.azure.net"
)

// regionalCeremony sets up a policy of four custodians (threshold 2): custodian-1 and
// custodian-2 in westeurope (threshold 2), custodian-2 and custodian-3 in eastus (threshold
// 1), custodian-4 global; vaults in both regions; and a KEK offer in each.
func regionalCeremony(t *testing.T, global bool) (c *chaintest.Ceremony, euOffer, usOffer bundle.ID) {
	t.Helper()
	c = newCeremony(t, chaintest.Config{Custodians: 4, Version: bundle.Version2})
	err := c.SetupWith(func(p *payload.Policy) {
		p.Vaults = append(p.Vaults, payload.Vault{URL: usVault, Kind: payload.VaultPremium, Region: "eastus"})
		p.Regions = []payload.Region{
			{Name: "eastus", Custodians: []string{"custodian-2", "custodian-3"}, Threshold: 1},
			{Name: "westeurope", Custodians: []string{"custodian-1", "custodian-2"}, Threshold: 2},
		}
		p.GlobalApproval = global
	})
	if err != nil {
		t.Fatal(err)
	}
	eu, err := c.OfferIn(euVault)
	if err != nil {
		t.Fatal(err)
	}
	us, err := c.OfferIn(usVault)
	if err != nil {
		t.Fatal(err)
	}
	return c, eu.ID(), us.ID()
}

// findingsOf returns the findings of the replay of c about the bundle b.
func findingsOf(t *testing.T, c *chaintest.Ceremony, b *bundle.Bundle) []error {
	t.Helper()
	res, err := replay(t, c, chain.Options{Anchor: c.PolicyID})
	if err != nil {
		t.Fatalf("Replay() = %v", err)
	}
	var out []error
	for _, f := range res.Findings {
		if f.ID == b.ID() {
			out = append(out, f.Err)
		}
	}
	return out
}

// TestRegionalQuorumAtUpload uploads one package per case and checks the receipt's verdict:
// a package counts the approvals of its vault's region (and the policy's own threshold too
// under global_approval).
func TestRegionalQuorumAtUpload(t *testing.T) {
	tests := []struct {
		name       string
		global     bool
		us         bool  // for the eastus vault, else westeurope
		approvers  []int // custodian indexes
		missing    bool
		wantRegion string
	}{
		{"westeurope by its threshold", false, false, []int{0, 1}, false, ""},
		{"westeurope by enough custodians of eastus and the global one", false, false, []int{2, 3}, true, "westeurope"},
		{"westeurope by one of its two", false, false, []int{0, 3}, true, "westeurope"},
		{"eastus by the custodian of both regions", false, true, []int{1}, false, ""},
		{"eastus by a westeurope custodian", false, true, []int{0}, true, "eastus"},
		{"eastus with global approval, regional only", true, true, []int{2}, true, "policy's"},
		{"eastus with global approval, regional and global", true, true, []int{2, 3}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, eu, us := regionalCeremony(t, tt.global)
			off := eu
			if tt.us {
				off = us
			}
			pkg, err := c.Package(off, payload.RSA3072, "key-1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Approve(pkg.ID(), bundle.KindKeyPackage, tt.approvers...); err != nil {
				t.Fatal(err)
			}
			rc, err := c.Receipt(pkg)
			if err != nil {
				t.Fatal(err)
			}
			fs := findingsOf(t, c, rc)
			if !tt.missing {
				if len(fs) != 0 {
					t.Fatalf("receipt findings %v, want none", fs)
				}
				return
			}
			var ae *chain.ApprovalError
			if len(fs) != 1 || !errors.As(fs[0], &ae) || !errors.Is(fs[0], chain.ErrMissingApproval) {
				t.Fatalf("receipt findings %v, want one missing approval", fs)
			}
			if !strings.Contains(ae.Reason, tt.wantRegion) {
				t.Errorf("finding %q does not name %q", ae.Error(), tt.wantRegion)
			}
		})
	}
}

// TestRegionalCustodianTwice: a custodian of both regions who approves a package twice is
// a replay the second time and counts once.
func TestRegionalCustodianTwice(t *testing.T) {
	c, eu, _ := regionalCeremony(t, false)
	pkg, err := c.Package(eu, payload.RSA3072, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Approve(pkg.ID(), bundle.KindKeyPackage, 1); err != nil {
		t.Fatal(err)
	}
	again, err := c.Approve(pkg.ID(), bundle.KindKeyPackage, 1)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.Receipt(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if fs := findingsOf(t, c, again); len(fs) != 1 || !errors.Is(fs[0], chain.ErrReplay) {
		t.Errorf("second approval: findings %v, want one replay", fs)
	}
	if fs := findingsOf(t, c, rc); len(fs) != 1 || !errors.Is(fs[0], chain.ErrMissingApproval) {
		t.Errorf("receipt: findings %v, want one missing approval (1 of westeurope's 2)", fs)
	}
}

// TestResidency: a package bound to regions is a policy violation for a vault of another
// region, and fine for one of its own.
func TestResidency(t *testing.T) {
	c, eu, us := regionalCeremony(t, false)
	bind := func(off bundle.ID, name string, regions ...string) *bundle.Bundle {
		k, err := c.PackagePayload(off, payload.RSA3072, name)
		if err != nil {
			t.Fatal(err)
		}
		k.Regions = regions
		b, err := c.Append(bundle.ChainOffline, k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	inside := bind(eu, "eu-key", "northeurope", "westeurope")
	outside := bind(us, "eu-key", "northeurope", "westeurope")
	if fs := findingsOf(t, c, inside); len(fs) != 0 {
		t.Errorf("package inside its regions: findings %v", fs)
	}
	fs := findingsOf(t, c, outside)
	var pe *chain.PolicyError
	if len(fs) != 1 || !errors.As(fs[0], &pe) || pe.Rule != "residency" {
		t.Errorf("package outside its regions: findings %v, want one residency violation", fs)
	}
}

// TestRegionAmendment: a new policy version that changes a region's threshold takes effect
// only once that region's current threshold approved it too.
func TestRegionAmendment(t *testing.T) {
	c, _, _ := regionalCeremony(t, false)
	p := *c.Policy
	p.Version, p.Previous = 2, c.PolicyID
	p.Regions = []payload.Region{
		{Name: "eastus", Custodians: []string{"custodian-2", "custodian-3"}, Threshold: 2},
		p.Regions[1],
	}
	prop, err := c.Append(bundle.ChainOffline, &p)
	if err != nil {
		t.Fatal(err)
	}
	// custodian-1 and custodian-4: both policies' thresholds (2 of 4), none of eastus.
	if _, err := c.Approve(prop.ID(), bundle.KindPolicy, 0, 3); err != nil {
		t.Fatal(err)
	}
	res, err := replay(t, c, chain.Options{Anchor: c.PolicyID})
	if err != nil || res.Err() != nil {
		t.Fatalf("Replay() = %v, %v", err, res.Err())
	}
	if v := res.State.Current().Policy.Version; v != 1 || res.State.Pending == nil {
		t.Fatalf("policy in force is version %d (pending %v), want 1 with version 2 awaiting eastus", v, res.State.Pending != nil)
	}
	if _, err := c.Approve(prop.ID(), bundle.KindPolicy, 2); err != nil {
		t.Fatal(err)
	}
	res, err = replay(t, c, chain.Options{Anchor: c.PolicyID})
	if err != nil || res.Err() != nil {
		t.Fatalf("Replay() = %v, %v", err, res.Err())
	}
	if v := res.State.Current().Policy.Version; v != 2 {
		t.Errorf("policy in force is version %d, want 2 after an eastus custodian approved", v)
	}
}
