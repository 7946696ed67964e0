package payload_test

import (
	"errors"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// regionalPolicy returns the example policy with three custodians: custodian-1 in
// westeurope, custodian-2 in westeurope and eastus, custodian-3 in eastus; thresholds 2
// (westeurope) and 1 (eastus), and vaults in westeurope, eastus and asia (no region entry).
func regionalPolicy(t *testing.T) *payload.Policy {
	t.Helper()
	p := fresh[payload.Policy](t, examples(t), bundle.KindPolicy)
	p.Regions = []payload.Region{
		{Name: "eastus", Custodians: []string{"custodian-2", "custodian-3"}, Threshold: 1},
		{Name: "westeurope", Custodians: []string{"custodian-1", "custodian-2"}, Threshold: 2},
	}
	p.Vaults = []payload.Vault{
		{URL: "https://eu.vault.azure.net", Kind: payload.VaultPremium, Region: "westeurope"},
		{URL: "https://us.vault.azure.net", Kind: payload.VaultPremium, Region: "eastus"},
		{URL: "https://asia.vault.azure.net", Kind: payload.VaultPremium, Region: "southeastasia"},
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPackageQuorums(t *testing.T) {
	p := regionalPolicy(t)
	c := func(i int) bundle.ID { return p.Custodians[i].Key.ID() }
	tests := []struct {
		name      string
		vault     string
		global    bool
		approvers []bundle.ID
		ok        bool
		unmet     string // region of the unmet quorum
	}{
		{"eu package by both eu custodians", "https://eu.vault.azure.net", false, []bundle.ID{c(0), c(1)}, true, ""},
		{"eu package by one eu custodian", "https://eu.vault.azure.net", false, []bundle.ID{c(0)}, false, "westeurope"},
		{"eu package by enough us custodians", "https://eu.vault.azure.net", false, []bundle.ID{c(2), c(1)}, false, "westeurope"},
		{"a custodian in two regions counts once", "https://eu.vault.azure.net", false, []bundle.ID{c(1), c(1)}, false, "westeurope"},
		{"us package by the custodian of both regions", "https://us.vault.azure.net", false, []bundle.ID{c(1)}, true, ""},
		{"us package by an eu custodian", "https://us.vault.azure.net", false, []bundle.ID{c(0)}, false, "eastus"},
		{"vault of an unlisted region: the policy's threshold", "https://asia.vault.azure.net", false, []bundle.ID{c(0)}, false, ""},
		{"vault of an unlisted region met", "https://asia.vault.azure.net", false, []bundle.ID{c(0), c(2)}, true, ""},
		{"global and regional: regional alone", "https://us.vault.azure.net", true, []bundle.ID{c(2)}, false, ""},
		{"global and regional: both", "https://us.vault.azure.net", true, []bundle.ID{c(2), c(0)}, true, ""},
		{"global and regional: global alone", "https://us.vault.azure.net", true, []bundle.ID{c(0)}, false, "eastus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.GlobalApproval = tt.global
			q, _, ok := payload.Unmet(p.VaultQuorums(tt.vault), tt.approvers)
			if ok != tt.ok || (!ok && q.Region != tt.unmet) {
				t.Errorf("Unmet() = %v, ok %t; want ok %t, unmet region %q", q, ok, tt.ok, tt.unmet)
			}
		})
	}
}

func TestAmendmentQuorums(t *testing.T) {
	cur := regionalPolicy(t)
	cur.Threshold = 1 // so that the policy's own threshold never decides below
	c := func(i int) bundle.ID { return cur.Custodians[i].Key.ID() }
	clone := func(f func(p *payload.Policy)) *payload.Policy {
		n := *cur
		n.Regions = append([]payload.Region(nil), cur.Regions...)
		f(&n)
		return &n
	}
	tests := []struct {
		name      string
		next      *payload.Policy
		changed   []string
		approvers []bundle.ID
		ok        bool
	}{
		{"no region changes: the policy's thresholds", clone(func(p *payload.Policy) { p.MinKEKBits = 4096 }), nil, []bundle.ID{c(0), c(2)}, true},
		{"eastus threshold changes, an eastus custodian approves", clone(func(p *payload.Policy) {
			p.Regions[0] = payload.Region{Name: "eastus", Custodians: []string{"custodian-2", "custodian-3"}, Threshold: 2}
		}), []string{"eastus"}, []bundle.ID{c(0), c(2)}, true},
		{"eastus custodians change without eastus", clone(func(p *payload.Policy) {
			p.Regions[0] = payload.Region{Name: "eastus", Custodians: []string{"custodian-1", "custodian-3"}, Threshold: 1}
		}), []string{"eastus"}, []bundle.ID{c(0)}, false},
		{"westeurope dropped without both eu custodians", clone(func(p *payload.Policy) { p.Regions = p.Regions[:1] }), []string{"westeurope"}, []bundle.ID{c(0), c(2)}, false},
		{"westeurope dropped with both eu custodians", clone(func(p *payload.Policy) { p.Regions = p.Regions[:1] }), []string{"westeurope"}, []bundle.ID{c(0), c(1)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cur.ChangedRegions(tt.next); len(got) != len(tt.changed) || (len(got) > 0 && got[0] != tt.changed[0]) {
				t.Errorf("ChangedRegions() = %v, want %v", got, tt.changed)
			}
			if _, _, ok := payload.Unmet(cur.AmendmentQuorums(tt.next), tt.approvers); ok != tt.ok {
				t.Errorf("Unmet(AmendmentQuorums()) ok = %t, want %t", ok, tt.ok)
			}
		})
	}
}

func TestRegionsOf(t *testing.T) {
	p := regionalPolicy(t)
	if got := p.RegionsOf("custodian-2"); len(got) != 2 || got[0] != "eastus" || got[1] != "westeurope" {
		t.Errorf("RegionsOf(custodian-2) = %v", got)
	}
	if got := p.VaultRegions(); len(got) != 3 {
		t.Errorf("VaultRegions() = %v", got)
	}
}

// TestRegionsNeedVersion2: a policy with regions or global_approval, and a key package with
// regions, are refused in a format version 1 bundle and accepted in a version 2 one.
func TestRegionsNeedVersion2(t *testing.T) {
	ex := examples(t)
	p := regionalPolicy(t)
	k := fresh[payload.KeyPackage](t, ex, bundle.KindKeyPackage)
	k.Regions = []string{"westeurope"}
	g := regionalPolicy(t)
	g.Regions, g.GlobalApproval = g.Regions[:1], true
	for _, v := range []any{p, k, g} {
		kind := must(payload.KindOf(v))
		if err := payload.CheckVersion(bundle.Version1, v); !errors.Is(err, payload.ErrVersionMembers) {
			t.Errorf("CheckVersion(1, %s with regions) = %v, want ErrVersionMembers", kind, err)
		}
		if err := payload.SetToolset(v, &chaintest.TestToolset); err != nil {
			t.Fatal(err)
		}
		enc := must(payload.Marshal(v))
		if _, err := payload.DecodeVersion(bundle.Version2, kind, enc); err != nil {
			t.Errorf("DecodeVersion(2, %s with regions) = %v", kind, err)
		}
	}
}
