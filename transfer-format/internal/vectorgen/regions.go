package main

import (
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// The vaults of the regional ceremony: chaintest's own, in westeurope, and one in eastus.
const (
	euVault = "https://contoso-byok.vault.azure.net"
	usVault = "https://contoso-us.vault.azure.net"
)

// regional starts a format version 2 ceremony whose policy v1 has four custodians
// (threshold 2): custodian-1 and custodian-2 in westeurope (threshold 2), custodian-2 and
// custodian-3 in eastus (threshold 1), custodian-4 in no region; a vault in each region;
// global_approval as given. Custodians 1 and 2 approve the policy (offline seq 3), and the
// online station offers a KEK in westeurope (online seq 2) and in eastus (online seq 3).
func regional(v *vec, global bool) (c *chaintest.Ceremony, eu, us *bundle.Bundle) {
	c = must(v.ceremony(chaintest.Config{Custodians: 4, Version: bundle.Version2}))
	check(c.SetupWith(func(p *payload.Policy) { regionalPolicy(p, global) }))
	v.anchor = c.PolicyID
	return c, must(c.OfferIn(euVault)), must(c.OfferIn(usVault))
}

// regionalPolicy gives p the vaults and regions of regional.
func regionalPolicy(p *payload.Policy, global bool) {
	p.Vaults = append(p.Vaults, payload.Vault{URL: usVault, Kind: payload.VaultPremium, Region: "eastus"})
	p.Regions = []payload.Region{
		{Name: "eastus", Custodians: []string{"custodian-2", "custodian-3"}, Threshold: 1},
		{Name: "westeurope", Custodians: []string{"custodian-1", "custodian-2"}, Threshold: 2},
	}
	p.GlobalApproval = global
}

// boundPackage writes a key package of the EC key "shared-key" for the offer's vault, bound
// to regions.
func boundPackage(c *chaintest.Ceremony, offer *bundle.Bundle, regions ...string) *bundle.Bundle {
	k := must(c.PackagePayload(offer.ID(), payload.ECP256, "shared-key"))
	k.Regions = regions
	return must(c.Append(offline, k))
}

// regionVectors: regional custodians and thresholds, residency and fan-out (format version
// 2, SPEC.md §7.2, §7.4, §9.4, §9.6, §9.7).
func regionVectors() []vector {
	return []vector{
		{"valid-regions-fan-out", "success",
			"Format version 2. Policy v1 groups its custodians by region: westeurope (custodian-1, custodian-2; 2 of them) and eastus (custodian-2, custodian-3; 1), custodian-4 in none. One EC key bound to both regions is packaged for the westeurope vault (offline seq 4) and the eastus vault (offline seq 5), one package per vault; custodian-1 and custodian-2 approve the first, custodian-2 alone (a custodian of both regions) the second; both are imported (online seq 4 and 5) with the same public key.",
			func(v *vec) error {
				c, eu, us := regional(v, false)
				p1 := boundPackage(c, eu, "eastus", "westeurope")
				p2 := boundPackage(c, us, "eastus", "westeurope")
				must(c.Approve(p1.ID(), bundle.KindKeyPackage, 0, 1))
				must(c.Approve(p2.ID(), bundle.KindKeyPackage, 1))
				must(c.Receipt(p1))
				must(c.Receipt(p2))
				return nil
			}},
		{"valid-regions-global-approval", "success",
			"Format version 2. As valid-regions-fan-out, with global_approval: the eastus package (offline seq 4) needs 1 of eastus's custodians and 2 of all four; custodian-3 (eastus) and custodian-4 (no region) give both, and the receipt (online seq 4) has no finding.",
			func(v *vec) error {
				c, _, us := regional(v, true)
				p := boundPackage(c, us)
				must(c.Approve(p.ID(), bundle.KindKeyPackage, 2, 3))
				must(c.Receipt(p))
				return nil
			}},
		{"region-approved-by-other-region", "missing approval",
			"Format version 2. The westeurope package (offline seq 4) is approved by custodian-3 (eastus) and custodian-4 (no region): two custodians of the policy, its own threshold, but none of westeurope's, whose threshold is 2 (§9.7 rule 5.1). The receipt at online seq 4 is missing approval.",
			func(v *vec) error {
				c, eu, _ := regional(v, false)
				p := boundPackage(c, eu)
				must(c.Approve(p.ID(), bundle.KindKeyPackage, 2, 3))
				must(c.Receipt(p))
				v.expectAt(online, 4)
				v.findings = 1
				return nil
			}},
		{"region-global-approval-missing", "missing approval",
			"Format version 2, global_approval. The eastus package (offline seq 4) is approved by custodian-2 alone: eastus's threshold (1) is met, the policy's own (2 of all four) is not, and global_approval asks for both. The receipt at online seq 4 is missing approval.",
			func(v *vec) error {
				c, _, us := regional(v, true)
				p := boundPackage(c, us)
				must(c.Approve(p.ID(), bundle.KindKeyPackage, 1))
				must(c.Receipt(p))
				v.expectAt(online, 4)
				v.findings = 1
				return nil
			}},
		{"region-custodian-counts-once", "replay",
			"Format version 2. custodian-2, a custodian of both westeurope and eastus, approves the westeurope package (offline seq 4) at offline seq 5 and again at offline seq 6: the second is a replay and counts for nothing, so the receipt (online seq 4) has 1 of westeurope's 2 approvals and is missing approval too. Two findings.",
			func(v *vec) error {
				c, eu, _ := regional(v, false)
				p := boundPackage(c, eu)
				must(c.Approve(p.ID(), bundle.KindKeyPackage, 1))
				must(c.Approve(p.ID(), bundle.KindKeyPackage, 1))
				must(c.Receipt(p))
				v.expectAt(offline, 6)
				v.findings = 2
				return nil
			}},
		{"residency-outside-regions", "policy violation",
			"Format version 2. A key package for the eastus vault (offline seq 4) binds its key to westeurope alone (§9.6 rule 4, `residency`), signed by the real offline station key as a tool other than the reference writer could. Its approvals and receipt are otherwise fine, so it is the one finding.",
			func(v *vec) error {
				c, _, us := regional(v, false)
				p := boundPackage(c, us, "westeurope")
				must(c.Approve(p.ID(), bundle.KindKeyPackage, 1))
				must(c.Receipt(p))
				v.expectAt(offline, 4)
				v.findings = 1
				return nil
			}},
		{"region-amendment-without-region", "policy violation",
			"Format version 2. Policy v2 (offline seq 4) raises eastus's threshold to 2. custodian-1 and custodian-4 approve it (offline seq 5): 2 of v2's custodians and 2 of v1's, but none of eastus's current custodians, whose threshold (1) a change of the region needs too (§9.4). So v1 stays in force, and the key package at offline seq 6, made under v2, breaks rule policy-in-force.",
			func(v *vec) error {
				c, eu, _ := regional(v, false)
				v2 := amendEastus(c)
				must(c.Approve(v2.ID(), bundle.KindPolicy, 0, 3))
				must(c.Package(eu.ID(), payload.ECP256, "key-1", chaintest.UnderPolicy(v2.ID())))
				v.expectAt(offline, 6)
				return nil
			}},
		{"valid-region-amendment", "success",
			"Format version 2. As region-amendment-without-region, then custodian-3 (eastus) approves policy v2 too (offline seq 6), which puts it in force; a key package made under v2 (offline seq 7) has no finding.",
			func(v *vec) error {
				c, eu, _ := regional(v, false)
				v2 := amendEastus(c)
				must(c.Approve(v2.ID(), bundle.KindPolicy, 0, 3))
				must(c.Approve(v2.ID(), bundle.KindPolicy, 2))
				must(c.Package(eu.ID(), payload.ECP256, "key-1", chaintest.UnderPolicy(v2.ID())))
				return nil
			}},
		{"policy-region-names-a-stranger", "malformed",
			"Format version 2. The first policy (offline seq 2) lists custodian-9 in region eastus, who is not one of its custodians (§7.2): the policy is malformed, and the replay stops there.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{Custodians: 4, Version: bundle.Version2}))
				check(c.Enroll())
				p := c.NewPolicy()
				regionalPolicy(p, false)
				b := must(c.Append(offline, p, editPayload(`"custodians":["custodian-2","custodian-3"]`, `"custodians":["custodian-2","custodian-9"]`)))
				v.anchor = b.ID()
				v.expectAt(offline, 2)
				return nil
			}},
		{"v1-policy-with-regions", "malformed",
			"Format version 1. The first policy (offline seq 2) carries a regions member, properly sealed and signed: format version 1 defines no such member (§7.2), so the payload is malformed and the replay stops there.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				b := must(c.Append(offline, c.NewPolicy(), editPayload(`,"threshold":2,`, `,"threshold":2,"regions":[{"name":"westeurope","custodians":["custodian-1"],"threshold":1}],`)))
				v.anchor = b.ID()
				v.expectAt(offline, 2)
				return nil
			}},
		{"v1-package-with-regions", "malformed",
			"Format version 1. The key package at offline seq 4 carries a regions member (a residency), properly sealed and signed: format version 1 defines no such member (§7.4), so the payload is malformed and the replay stops there.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				must(c.Package(off.ID(), payload.RSA3072, "key-1", editPayload(`"key_name":"key-1",`, `"key_name":"key-1","regions":["westeurope"],`)))
				v.expectAt(offline, 4)
				return nil
			}},
	}
}

// amendEastus writes policy v2 of the regional ceremony: eastus's threshold 2.
func amendEastus(c *chaintest.Ceremony) *bundle.Bundle {
	p := *c.Policy
	p.Version, p.Previous = 2, c.PolicyID
	p.Regions = []payload.Region{{Name: "eastus", Custodians: []string{"custodian-2", "custodian-3"}, Threshold: 2}, c.Policy.Regions[1]}
	return must(c.Append(offline, &p))
}
