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
	// The terms ignore the toolset that wrote a policy, and nothing else.
	a, b := *next, *next
	a.Toolset, b.Toolset = nil, &payload.Toolset{Version: "x"}
	if ceremony.PolicyTerms(&a) != ceremony.PolicyTerms(&b) || ceremony.PolicyTerms(&a) == ceremony.PolicyTerms(cur.Policy) {
		t.Error("PolicyTerms: want equal terms for policies that differ only in their toolset, and only for those")
	}
}
