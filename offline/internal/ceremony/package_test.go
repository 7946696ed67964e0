package ceremony_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

func TestRegionVaults(t *testing.T) {
	p := &payload.Policy{Vaults: []payload.Vault{
		{URL: "https://a.vault.azure.net", Region: "westeurope"},
		{URL: "https://b.vault.azure.net", Region: "eastus"},
		{URL: "https://c.vault.azure.net", Region: "westeurope"},
	}}
	tests := []struct {
		name    string
		vaults  []string
		regions []string
		all     bool
		want    []string
		wantErr string
	}{
		{name: "all", all: true, want: []string{"https://a.vault.azure.net", "https://b.vault.azure.net", "https://c.vault.azure.net"}},
		{name: "a region", regions: []string{"WestEurope"}, want: []string{"https://a.vault.azure.net", "https://c.vault.azure.net"}},
		{name: "a vault and its region", vaults: []string{"https://c.vault.azure.net"}, regions: []string{"westeurope,eastus"},
			want: []string{"https://c.vault.azure.net", "https://a.vault.azure.net", "https://b.vault.azure.net"}},
		{name: "vaults alone", vaults: []string{"https://b.vault.azure.net"}, want: []string{"https://b.vault.azure.net"}},
		{name: "a region without a vault", regions: []string{"eastus", "northeurope"}, wantErr: "no vault of the policy in force is in region northeurope (its regions are eastus, westeurope)"},
	}
	for _, tt := range tests {
		got, err := ceremony.RegionVaults(p, tt.vaults, tt.regions, tt.all)
		if tt.wantErr != "" {
			var ce *ceremony.Error
			if !errors.As(err, &ce) || ce.Kind != ceremony.ErrNoVaultInRegion || err.Error() != tt.wantErr || ce.Region != "northeurope" || !slices.Equal(ce.Have, []string{"eastus", "westeurope"}) {
				t.Errorf("%s: RegionVaults = %q, %v; want ErrNoVaultInRegion %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: RegionVaults = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

// TestPackage: every request is checked before any key is wrapped, a refusal names the key
// (and the vault, with several vaults) and leaves the ledger as it was; then every key
// package is written, and a rerun finds them written.
func TestPackage(t *testing.T) {
	const other = "https://other.vault.azure.net"
	s := newStation(t, payload.Vault{URL: other, Kind: payload.VaultPremium, Region: "eastus"})
	s.offer(onlinetest.OfferOptions{Name: "kek-a"})
	s.offer(onlinetest.OfferOptions{Name: "kek-b", Vault: other})
	if acc, err := s.accept(""); err != nil || acc.Accepted != 2 {
		t.Fatalf("AcceptKEKs = %+v, %v; want two accepted", acc, err)
	}
	ctx := context.Background()
	tok := s.token()
	s.with(ledgerOnly, nil, func(sess *ceremony.Session) {
		keys := ceremony.Keys{Store: sess.Store, Token: tok, Log: sess.Log, Now: time.Now}
		for ident, kt := range map[string]payload.KeyType{"app": payload.RSA3072, "big": payload.ECP384} {
			if _, err := keys.Generate(ctx, ident, kt, false, nil, false, nil); err != nil {
				t.Fatal(err)
			}
		}
	})

	req := func(ident, vault string) ceremony.PackageRequest {
		return ceremony.PackageRequest{Ident: ident, Vault: vault, KeyName: ident, Enabled: true}
	}
	// A packer is one run of package, on a session that writes to the medium.
	packer := func(sess *ceremony.Session) *ceremony.Packer {
		p, err := ceremony.NewPacker(ctx, sess, time.Now, "ceremony test")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.UseToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var done []*ceremony.Packaged
	s.with(ceremony.WriteMedium, nil, func(sess *ceremony.Session) {
		p := packer(sess)

		// One key of two is refused: no key is packaged.
		_, err := p.Package(ctx, []ceremony.PackageRequest{req("app", premium), req("big", premium)})
		if !errors.Is(err, ceremony.ErrKEKStrength) || !strings.HasPrefix(err.Error(), "key big: ") || !strings.HasSuffix(err.Error(), " (no key was packaged)") {
			t.Errorf("Package(app, big) = %v, want big refused for its KEK's strength, naming it", err)
		}
		// Bound to westeurope, a key is refused for a vault in eastus, naming key and vault, and
		// the binding is not recorded.
		p.Bind = []string{"westeurope"}
		_, err = p.Package(ctx, []ceremony.PackageRequest{req("app", premium), req("app", other)})
		if !errors.Is(err, ceremony.ErrResidency) || !strings.HasPrefix(err.Error(), "key app for "+other+": ") || !strings.HasSuffix(err.Error(), " (no key was packaged)") {
			t.Errorf("Package(app to two vaults, bound to westeurope) = %v, want refused for the eastus vault, naming key and vault", err)
		}
		if k, err := sess.Store.Key("app"); err != nil || k.Regions != nil {
			t.Errorf("after a refusal the ledger binds app to %q (%v), want no regions", k.Regions, err)
		}
		if pkgs, err := sess.Store.Packages(); err != nil || len(pkgs) != 0 {
			t.Errorf("after refusals the ledger holds %d packages (%v), want none", len(pkgs), err)
		}

		// Fan-out: one package per vault, each wrapped with that vault's KEK.
		p.Bind = nil
		done, err = p.Package(ctx, []ceremony.PackageRequest{req("app", premium), req("app", other)})
		if err != nil {
			t.Fatalf("Package(app to two vaults): %v", err)
		}
		if len(done) != 2 || done[0].Existing || done[1].Existing || done[0].Record.Vault != premium || done[1].Record.Vault != other ||
			!strings.Contains(done[1].Record.KID, "/keys/kek-b/") || done[0].Wrapped == nil {
			t.Fatalf("Package = %+v, want two new packages, one per vault", done)
		}
		if pkgs, err := sess.Store.Packages(); err != nil || len(pkgs) != 2 || pkgs[0].State != store.PackageOutstanding {
			t.Errorf("ledger packages = %+v, %v; want two outstanding", pkgs, err)
		}
	})
	s.with(ceremony.WriteMedium, nil, func(sess *ceremony.Session) {
		again, err := packer(sess).Package(ctx, []ceremony.PackageRequest{req("app", premium), req("app", other)})
		if err != nil || len(again) != 2 || !again[0].Existing || !again[1].Existing || again[0].Record.ID != done[0].Record.ID {
			t.Errorf("Package again = %+v, %v; want the two packages found written", again, err)
		}
	})
}
