package main

import (
	"slices"
	"strings"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// The vectors of format version 2 (SPEC.md revision 2.0.0): whole ceremonies in version 2,
// chains that move from version 1 to 2, a chain that goes back, the toolset every version 2
// payload records, and the policy's allowed toolsets.

// otherToolset is a toolset no vector's policy lists.
var otherToolset = payload.Toolset{Version: "v9.9.9", SHA256: "0ddba11000000000000000000000000000000000000000000000000000000bad"}

// standard writes the rest of the standard ceremony (base) after setup: the KEK offer at
// online 2, the key package at offline 4, its approval at offline 5 and the receipt at
// online 3. before, if set, runs before each of the four with the step's name.
func standard(c *chaintest.Ceremony, before func(step string)) {
	if before == nil {
		before = func(string) {}
	}
	before("offer")
	off := must(c.Offer())
	before("package")
	pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
	before("approval")
	must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
	before("receipt")
	must(c.Receipt(pkg))
}

// replacePayload returns an Option that seals the bundle with the canonical encoding of v
// in place of its payload (re-signed, as any bundle): for payloads Draft refuses to put in a
// bundle of that version.
func replacePayload(v any) chaintest.Option {
	p := must(payload.Marshal(v))
	return chaintest.Mutate(func(d *bundle.Draft) { d.Payload = p })
}

// pinnedPolicy returns policy v1 of c listing the allowed toolsets ts.
func pinnedPolicy(ts ...payload.Toolset) func(p *payload.Policy) {
	return func(p *payload.Policy) {
		for _, t := range ts {
			p.AllowedToolsets = append(p.AllowedToolsets, t.SHA256)
		}
		p.AllowedToolsets = payload.SortToolsets(p.AllowedToolsets)
	}
}

func version2Vectors() []vector {
	v2 := chaintest.Config{Version: bundle.Version2}
	return []vector{
		{"valid-version-2", "success",
			"The standard ceremony (as valid-one-key) written in format version 2 by both stations: every header says version 2, IDs and signatures use the airgap-byok/v2 domain strings (custodian approvals included), and every payload records the toolset that wrote it.",
			func(v *vec) error {
				standard(v.setup(v2), nil)
				return nil
			}},
		{"valid-version-1-to-2", "success",
			"A ceremony begun in version 1 and continued in version 2: the enrollments, policy v1 and its approval (offline 1-3, online 1) are version 1; from the KEK offer (online 2) and the key package (offline 4) on, both stations write version 2. A chain may move to version 2 at any bundle, and the approval of offline 5 signs in version 2's domain although it approves nothing older.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				c.Version = bundle.Version2
				standard(c, nil)
				return nil
			}},
		{"valid-version-2-offline-only", "success",
			"The offline station moves to version 2 at its key package (offline 4); the online station keeps writing version 1 (its KEK offer and receipt, online 2 and 3). The chains move independently, and the policy lists no toolsets, so a version 1 bundle is not a finding.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				standard(c, func(step string) {
					switch step {
					case "package":
						c.Version = bundle.Version2
					case "receipt":
						c.Version = bundle.Version1
					}
				})
				return nil
			}},
		{"version-downgrade", "chain break",
			"The offline chain moves to version 2 at its key package (offline 4) and goes back to version 1 at the approval after it (offline 5): a chain never goes back to an older format version (§9.2 step 3 rule 8), whoever signs it.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				standard(c, func(step string) {
					switch step {
					case "package":
						c.Version = bundle.Version2
					case "approval":
						c.Version = bundle.Version1
					case "receipt":
						c.Version = bundle.Version2
					}
				})
				v.expectAt(offline, 5)
				return nil
			}},
		{"version-2-no-toolset", "malformed",
			"The key package at offline 4 of an all-version-2 ceremony without its toolset member: every version 2 payload records the toolset that wrote it (§7.7).",
			func(v *vec) error {
				c := v.setup(v2)
				off := must(c.Offer())
				k := must(c.PackagePayload(off.ID(), payload.RSA3072, "key-1"))
				k.Toolset = nil
				must(c.Append(offline, must(c.PackagePayload(off.ID(), payload.RSA3072, "key-1")), replacePayload(k)))
				v.expectAt(offline, 4)
				return nil
			}},
		{"version-1-with-toolset", "malformed",
			"The key package at offline 4 of a version 1 ceremony with a toolset member: version 1 defines no such member, and readers refuse unknown members, so a version 1 bundle never carries one.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				k := must(c.PackagePayload(off.ID(), payload.RSA3072, "key-1"))
				t := chaintest.TestToolset
				k.Toolset = &t
				must(c.Append(offline, must(c.PackagePayload(off.ID(), payload.RSA3072, "key-1")), replacePayload(k)))
				v.expectAt(offline, 4)
				return nil
			}},
		{"version-1-policy-with-allowed-toolsets", "malformed",
			"Policy v1 (offline 2) of a version 1 ceremony lists allowed toolsets: version 1 defines no allowed_toolsets member. The first policy is decoded before its signature verifies (its ID is the pinned anchor), so the finding is the policy's.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				p := c.NewPolicy()
				bad := *p
				pinnedPolicy(chaintest.TestToolset)(&bad)
				v.anchor = must(c.Append(offline, p, replacePayload(&bad))).ID()
				v.expectAt(offline, 2)
				return nil
			}},
		{"toolset-bad-hash", "malformed",
			"The KEK offer at online 2 of an all-version-2 ceremony records a toolset whose sha256 is in upper case: a toolset's sha256 is 64 lowercase hex digits.",
			func(v *vec) error {
				c := v.setup(v2)
				bad := chaintest.TestToolset
				bad.SHA256 = "7E57BA5E000000000000000000000000000000000000000000000000000000C4"
				must(c.Append(online, c.OfferPayload("1"), replacePayload(withToolset(c.OfferPayload("1"), bad))))
				v.expectAt(online, 2)
				return nil
			}},
		{"allowed-toolsets-unsorted", "malformed",
			"Policy v1 (offline 2) of an all-version-2 ceremony lists two allowed toolsets out of order: allowed_toolsets is sorted, without duplicates.",
			func(v *vec) error {
				c := must(v.ceremony(v2))
				check(c.Enroll())
				p := c.NewPolicy()
				p.AllowedToolsets = []string{chaintest.TestToolset.SHA256, otherToolset.SHA256}
				bad := *p
				p.AllowedToolsets = payload.SortToolsets(p.AllowedToolsets)
				t := c.Toolset
				bad.Toolset = &t
				v.anchor = must(c.Append(offline, p, replacePayload(&bad))).ID()
				v.expectAt(offline, 2)
				return nil
			}},
		{"approval-signed-as-version-1", "bad signature",
			"In an all-version-2 ceremony, the approval of the key package (offline 5) carries custodian signatures made with version 1's approval domain string: an approval signature is made in the version of the bundle that carries it, so neither verifies. Each is a finding, and the package then lacks its approvals at the receipt (online 3, missing approval).",
			func(v *vec) error {
				c := v.setup(v2)
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				c.Version = bundle.Version1
				a := c.Approval(pkg.ID(), bundle.KindKeyPackage, 0, 1)
				c.Version = bundle.Version2
				must(c.Append(offline, a))
				must(c.Receipt(pkg))
				v.expectAt(offline, 5)
				v.findings = 3
				return nil
			}},
		{"valid-toolset-allowed", "success",
			"An all-version-2 ceremony whose policy v1 lists two allowed toolsets, among them the one both stations write with: every bundle checked against the policy is written by a listed toolset.",
			func(v *vec) error {
				c := v.setupWith(v2, pinnedPolicy(chaintest.TestToolset, otherToolset))
				standard(c, nil)
				return nil
			}},
		{"toolset-not-allowed", "policy violation",
			"An all-version-2 ceremony whose policy v1 lists one allowed toolset; the offline station writes its key package (offline 4) with another binary: a bundle written by a toolset the policy does not list breaks rule toolset (§9.2 step 8 rule 4). The replay goes on; nothing else is wrong.",
			func(v *vec) error {
				c := v.setupWith(v2, pinnedPolicy(chaintest.TestToolset))
				standard(c, func(step string) {
					c.Toolset = chaintest.TestToolset
					if step == "package" {
						c.Toolset = otherToolset
					}
				})
				v.expectAt(offline, 4)
				v.findings = 1
				return nil
			}},
		{"toolset-version-1-under-pin", "policy violation",
			"The offline station writes version 2 from the start and its policy v1 lists the allowed toolsets; the online station still writes version 1, whose bundles record no toolset: its KEK offer and receipt (online 2 and 3) break rule toolset, since no policy can list a binary that does not record itself. (The enrollments and the first policy are not checked against a policy, §9.2 step 4.)",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				c.Version = bundle.Version2
				p := c.NewPolicy()
				pinnedPolicy(chaintest.TestToolset)(p)
				b := must(c.Append(offline, p))
				c.Policy, c.PolicyID, v.anchor = p, b.ID(), b.ID()
				must(c.Approve(b.ID(), bundle.KindPolicy, 0, 1))
				standard(c, func(step string) {
					c.Version = bundle.Version2
					if step == "offer" || step == "receipt" {
						c.Version = bundle.Version1
					}
				})
				v.expectAt(online, 2)
				v.findings = 2
				return nil
			}},
	}
}

// withToolset records t in payload v and returns v.
func withToolset[T any](v *T, t payload.Toolset) *T {
	check(payload.SetToolset(v, &t))
	return v
}

// receiptVersionVectors: the versions a version 2 receipt lists after a duplicate import.
func receiptVersionVectors() []vector {
	// duplicate returns the receipt of the standard package with two versions listed: the
	// receipted one and another.
	duplicate := func(c *chaintest.Ceremony, pkg *bundle.Bundle) *payload.Receipt {
		r := must(c.ReceiptPayload(pkg))
		other := r.KID[:strings.LastIndex(r.KID, "/")+1] + "00000000000000000000000000000002"
		r.Versions = []string{other, r.KID}
		slices.Sort(r.Versions)
		return r
	}
	return []vector{
		{"receipt-duplicate-versions", "replay",
			"An all-version-2 ceremony whose receipt (online 3) lists two key versions carrying the package's tag: Key Vault imported the package twice (an ambiguous failure, then a second import the first one had not shown yet). The receipt is otherwise valid: the package is imported, with its approvals and its public key, and the duplicate is the one finding (§9.7 rule 5.5).",
			func(v *vec) error {
				c := v.setup(chaintest.Config{Version: bundle.Version2})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
				must(c.Append(online, duplicate(c, pkg)))
				v.expectAt(online, 3)
				v.findings = 1
				return nil
			}},
		{"receipt-versions-without-kid", "malformed",
			"An all-version-2 ceremony whose receipt (online 3) lists two key versions of its key, neither of them the kid it names: versions lists the receipted version among the others.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{Version: bundle.Version2})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
				r := duplicate(c, pkg)
				base := r.KID[:strings.LastIndex(r.KID, "/")+1]
				bad := *r
				bad.Versions = []string{base + "00000000000000000000000000000002", base + "00000000000000000000000000000003"}
				t := c.Toolset
				bad.Toolset = &t
				must(c.Append(online, r, replacePayload(&bad)))
				v.expectAt(online, 3)
				return nil
			}},
		{"version-1-receipt-with-versions", "malformed",
			"The standard version 1 ceremony whose receipt (online 3) lists two key versions: version 1 defines no versions member (a version 1 receipt names one version; the duplicate lives in the online station's ledger).",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
				r := must(c.ReceiptPayload(pkg))
				must(c.Append(online, r, replacePayload(duplicate(c, pkg))))
				v.expectAt(online, 3)
				return nil
			}},
	}
}
