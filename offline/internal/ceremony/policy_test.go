package ceremony_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

func custodian(t *testing.T, name string) payload.Custodian {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := payload.NewPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return payload.Custodian{Name: name, Key: pk}
}

func inForce(t *testing.T) *chain.PolicyRecord {
	t.Helper()
	return &chain.PolicyRecord{ID: bundle.ID{1}, Policy: &payload.Policy{
		Version: 1, Custodians: []payload.Custodian{custodian(t, "alice"), custodian(t, "bob")}, Threshold: 2,
		Vaults:     []payload.Vault{{URL: "https://a.vault.azure.net", Kind: payload.VaultPremium, Region: "westeurope"}},
		MinKEKBits: 2048, KeyTypes: []payload.KeyType{payload.RSA3072}, BundleLifetimeSeconds: 3600,
		Toolset: &payload.Toolset{},
	}}
}

func TestAmend(t *testing.T) {
	one, three := 1, 3
	yes := true
	day, long := 24*time.Hour, 400*24*time.Hour
	hash := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		ch      ceremony.PolicyChange
		wantErr string // a part of the usage error; "" for none
		check   func(t *testing.T, p *payload.Policy, adds []ceremony.CustodianSpec)
	}{
		{name: "nothing", wantErr: "nothing to change"},
		{name: "unknown custodian", ch: ceremony.PolicyChange{RemoveCustodians: []string{"carol"}}, wantErr: "--remove-custodian carol: not a custodian of the policy in force (alice, bob)"},
		{name: "name taken", ch: ceremony.PolicyChange{AddCustodians: []string{"bob=tok"}}, wantErr: "--add-custodian bob: the name is taken"},
		{name: "station's token", ch: ceremony.PolicyChange{AddCustodians: []string{"carol=st"}, StationToken: "st"}, wantErr: `token "st" is given twice`},
		{name: "threshold above the custodians", ch: ceremony.PolicyChange{Threshold: &three}, wantErr: "threshold 3: the new version has 2 custodians"},
		{name: "no vault left", ch: ceremony.PolicyChange{RemoveVaults: []string{"https://a.vault.azure.net"}}, wantErr: "would allow no vault"},
		{name: "bad vault", ch: ceremony.PolicyChange{AddVaults: []string{"https://b.vault.azure.net=cheap:x"}}, wantErr: `kind "cheap" is not premium or managed_hsm`},
		{name: "lifetime too long", ch: ceremony.PolicyChange{BundleLifetime: &long}, wantErr: "--bundle-lifetime"},
		{name: "toolset not listed", ch: ceremony.PolicyChange{RemoveToolsets: []string{hash}}, wantErr: "the policy in force does not list it"},
		{name: "region of a stranger", ch: ceremony.PolicyChange{Regions: []string{"westeurope=1:carol"}}, wantErr: "region westeurope names carol, who is not a custodian of the policy (alice, bob)"},
		{name: "region without a vault", ch: ceremony.PolicyChange{Regions: []string{"eastus=1:alice"}}, wantErr: "region eastus: no vault of the policy is in it"},
		{name: "bad region", ch: ceremony.PolicyChange{Regions: []string{"westeurope=3:alice,bob"}}, wantErr: `--region "westeurope=3:alice,bob": threshold 3 of 2 custodians`},
		{name: "remove an unknown region", ch: ceremony.PolicyChange{RemoveRegions: []string{"westeurope"}}, wantErr: "--remove-region westeurope: the policy in force has no custodians for region westeurope"},
		{name: "global approval without regions", ch: ceremony.PolicyChange{GlobalApproval: &yes}, wantErr: "--global-approval needs at least one --region"},
		{name: "a region with a new custodian", ch: ceremony.PolicyChange{AddCustodians: []string{"carol=tok-c"}, Regions: []string{"WestEurope=1:carol,alice"}, GlobalApproval: &yes},
			check: func(t *testing.T, p *payload.Policy, adds []ceremony.CustodianSpec) {
				want := []payload.Region{{Name: "westeurope", Threshold: 1, Custodians: []string{"alice", "carol"}}}
				if !slices.EqualFunc(p.Regions, want, func(a, b payload.Region) bool {
					return a.Name == b.Name && a.Threshold == b.Threshold && slices.Equal(a.Custodians, b.Custodians)
				}) || !p.GlobalApproval {
					t.Errorf("regions = %+v, global approval %t", p.Regions, p.GlobalApproval)
				}
			}},
		{name: "add a custodian, lower the threshold", ch: ceremony.PolicyChange{AddCustodians: []string{"carol=tok-c"}, Threshold: &one, BundleLifetime: &day, AllowToolsets: []string{hash}},
			check: func(t *testing.T, p *payload.Policy, adds []ceremony.CustodianSpec) {
				if p.Version != 2 || p.Previous != (bundle.ID{1}) || p.Threshold != 1 || p.BundleLifetimeSeconds != 86400 || p.Toolset != nil {
					t.Errorf("next = %+v", p)
				}
				if !slices.Equal(adds, []ceremony.CustodianSpec{{Name: "carol", Token: "tok-c"}}) || len(p.Custodians) != 2 {
					t.Errorf("adds = %v, custodians %d: the caller enrols and appends the new ones", adds, len(p.Custodians))
				}
				if !slices.Equal(p.AllowedToolsets, []string{hash}) {
					t.Errorf("allowed toolsets = %v", p.AllowedToolsets)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := inForce(t)
			before := *cur.Policy
			p, adds, err := ceremony.Amend(cur, tt.ch)
			if tt.wantErr != "" {
				if !errors.Is(err, ceremony.ErrUsage) || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "usage: ") {
					t.Fatalf("Amend() = %v, want a usage error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p, adds)
			if cur.Policy.Version != before.Version || len(cur.Policy.Custodians) != len(before.Custodians) {
				t.Error("Amend changed the policy in force")
			}
		})
	}
}

func TestPolicyChangesAndTerms(t *testing.T) {
	cur := inForce(t)
	one := 1
	next, _, err := ceremony.Amend(cur, ceremony.PolicyChange{RemoveCustodians: []string{"bob"}, Threshold: &one})
	if err != nil {
		t.Fatal(err)
	}
	got := ceremony.PolicyChanges(cur.Policy, next)
	want := []string{"custodian bob (" + cur.Policy.Custodians[1].Key.ID().Short() + ") leaves", "approvals: 1 of 1, was 2 of 2"}
	if !slices.Equal(got, want) {
		t.Errorf("PolicyChanges() = %q, want %q", got, want)
	}
	if ceremony.CountCustodians(cur.Policy, []bundle.ID{cur.Policy.Custodians[0].Key.ID(), {9}}) != 1 {
		t.Error("CountCustodians counted a key that is no custodian")
	}
	regional, _, err := ceremony.Amend(cur, ceremony.PolicyChange{Regions: []string{"westeurope=1:bob"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ceremony.PolicyChanges(cur.Policy, regional), []string{"region westeurope: 1 of bob approve its keys"}; !slices.Equal(got, want) {
		t.Errorf("PolicyChanges() = %q, want %q", got, want)
	}
	back, _, err := ceremony.Amend(&chain.PolicyRecord{ID: bundle.ID{2}, Policy: regional}, ceremony.PolicyChange{RemoveRegions: []string{"westeurope"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ceremony.PolicyChanges(regional, back), []string{"region westeurope no longer has custodians of its own (was 1 of bob)"}; !slices.Equal(got, want) || len(back.Regions) != 0 {
		t.Errorf("PolicyChanges() = %q, want %q (regions left %v)", got, want, back.Regions)
	}
	// The terms ignore the toolset that wrote a policy, and nothing else.
	a, b := *next, *next
	a.Toolset, b.Toolset = nil, &payload.Toolset{Version: "x"}
	if ceremony.PolicyTerms(&a) != ceremony.PolicyTerms(&b) || ceremony.PolicyTerms(&a) == ceremony.PolicyTerms(cur.Policy) {
		t.Error("PolicyTerms: want equal terms for policies that differ only in their toolset, and only for those")
	}
}

func TestPackageApprovers(t *testing.T) {
	p := inForce(t).Policy
	p.Vaults = append(p.Vaults, payload.Vault{URL: "https://b.vault.azure.net", Kind: payload.VaultPremium, Region: "eastus"})
	p.Regions = []payload.Region{{Name: "westeurope", Threshold: 1, Custodians: []string{"bob"}}}
	names := func(cs []payload.Custodian) string { return ceremony.JoinNames(cs) }
	if cs, r := ceremony.PackageApprovers(p, "https://a.vault.azure.net"); names(cs) != "bob" || r != "westeurope" {
		t.Errorf("regional vault: approvers %q, region %q; want bob, westeurope", names(cs), r)
	}
	if cs, r := ceremony.PackageApprovers(p, "https://b.vault.azure.net"); names(cs) != "alice, bob" || r != "" {
		t.Errorf("vault without custodians of its region: approvers %q, region %q; want alice, bob and none", names(cs), r)
	}
	p.GlobalApproval = true
	if cs, r := ceremony.PackageApprovers(p, "https://a.vault.azure.net"); names(cs) != "alice, bob" || r != "westeurope" {
		t.Errorf("global approval: approvers %q, region %q; want alice, bob, westeurope", names(cs), r)
	}
}
