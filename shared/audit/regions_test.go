package audit_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

const (
	euVault = "https://contoso-byok.vault.azure.net" // chaintest's vault, in westeurope
	usVault = "https://contoso-us.vault.azure.net"
)

// TestAuditResidency: one EC key bound to westeurope is packaged for the westeurope vault
// and imported; then media written by another tool, signed with the real station key,
// carry two more packages of the same key for the eastus vault: one still bound to
// westeurope (the replay's residency finding) and one stating no regions (the audit's
// finding: the packages of the key disagree). The audit names every vault and region the
// key was packaged for, and shows the per-region view.
func TestAuditResidency(t *testing.T) {
	c := newCeremony(t, chaintest.Config{Custodians: 3, Version: bundle.Version2})
	check(t, c.SetupWith(func(p *payload.Policy) {
		p.Vaults = append(p.Vaults, payload.Vault{URL: usVault, Kind: payload.VaultPremium, Region: "eastus"})
		p.Regions = []payload.Region{
			{Name: "eastus", Custodians: []string{"custodian-3"}, Threshold: 1},
			{Name: "westeurope", Custodians: []string{"custodian-1", "custodian-2"}, Threshold: 2},
		}
	}))
	eu := must[*bundle.Bundle](t)(c.OfferIn(euVault))
	us := must[*bundle.Bundle](t)(c.OfferIn(usVault))
	pkg := func(off *bundle.Bundle, regions ...string) *bundle.Bundle {
		k := must[*payload.KeyPackage](t)(c.PackagePayload(off.ID(), payload.ECP256, "eu-key"))
		k.Regions = regions
		return must[*bundle.Bundle](t)(c.Append(bundle.ChainOffline, k))
	}
	home := pkg(eu, "westeurope")
	must[*bundle.Bundle](t)(c.Approve(home.ID(), bundle.KindKeyPackage, 0, 1))
	must[*bundle.Bundle](t)(c.Receipt(home))
	outside := pkg(us, "westeurope")
	unbound := pkg(us)

	html := filepath.Join(t.TempDir(), "report.html")
	rep := run(t, audit.Options{Media: c.M.Dir(), Policy: c.PolicyID.String(), HTML: html})
	if rep.Verdict != audit.Fail {
		t.Fatalf("verdict %s, want FAIL", rep.Verdict)
	}
	var outsideFound, unboundFound bool
	for _, f := range rep.Findings {
		var pe *chain.PolicyError
		if !errors.As(f.Err, &pe) || pe.Rule != "residency" {
			continue
		}
		outsideFound = outsideFound || f.ID == outside.ID().String()
		unboundFound = unboundFound || f.ID == unbound.ID().String()
	}
	if !outsideFound || !unboundFound {
		t.Errorf("residency findings: outside %t, unbound %t; findings %+v", outsideFound, unboundFound, rep.Findings)
	}
	if len(rep.Residency) != 1 {
		t.Fatalf("residency = %+v, want one key", rep.Residency)
	}
	kr := rep.Residency[0]
	if len(kr.Regions) != 1 || kr.Regions[0] != "westeurope" || len(kr.Placements) != 3 || len(kr.Violations) != 3 {
		t.Errorf("residency of the key = %+v, want bound to westeurope, 3 packages, 3 violations", kr)
	}
	var imported int
	for _, pl := range kr.Placements {
		if pl.Status == audit.StatusImported {
			imported++
			if pl.Vault != euVault || pl.Region != "westeurope" || pl.Version == "" {
				t.Errorf("imported placement %+v, want westeurope's vault with a version", pl)
			}
		}
	}
	if imported != 1 {
		t.Errorf("%d placements imported, want 1", imported)
	}
	if len(rep.Regions) != 2 || rep.Regions[0].Name != "eastus" || rep.Regions[1].Threshold != 2 || rep.Regions[1].Imported != 1 || rep.Regions[0].Packages != 2 {
		t.Errorf("regions = %+v, want eastus (2 packages) and westeurope (2 of its custodians, 1 imported)", rep.Regions)
	}
	page, err := os.ReadFile(html)
	check(t, err)
	for _, want := range []string{`id="regions"`, `id="residency"`, "outside the key&#39;s regions", "2 of custodian-1, custodian-2"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the HTML report lacks %q", want)
		}
	}
}
