package main

import (
	"bytes"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// The vectors of rules that 1.0 stated without a vector: each MUST of SPEC.md that a
// medium can break has at least one (see the Changes section of 1.0.1).

func walkVectors() []vector {
	var vs []vector
	for _, group := range [][]vector{headerRuleVectors(), frameVectors(), firstPolicyVectors(), policyVersionVectors(),
		kindRuleVectors(), byokVectors()} {
		vs = append(vs, group...)
	}
	return vs
}

// headerRuleVectors: one vector per header rule of §4.1 that a bundle on a medium can break
// (rule 7, seq in range, cannot: a file name holds 1 to MaxSeq). Each re-signs the key
// package at offline seq 4 with one field changed and names it by its new ID.
func headerRuleVectors() []vector {
	rule := func(n int, name, why string, edit func(h []byte)) vector {
		return vector{fmt.Sprintf("header-rule-%02d-%s", n, name), "malformed",
			"The key package at offline seq 4 re-signed by the offline station and renamed, with " + why + fmt.Sprintf(": §4.1 header rule %d.", n),
			func(v *vec) error {
				resealPkg(v, func(h, _, stored []byte) []byte { edit(h); return stored })
				return nil
			}}
	}
	return []vector{
		rule(6, "kind-not-on-chain", "kind 3 (kek_offer), which belongs on the online chain", func(h []byte) { h[10] = 3 }),
		rule(8, "prev-zero", "a zero previous ID, which only seq 1 has", func(h []byte) { clear(h[24:56]) }),
		rule(9, "enrollment-not-genesis", "kind 1 (enrollment), which only seq 1 is", func(h []byte) { h[10] = 1 }),
		rule(10, "peer-zero", "peer_seq 2 and a zero peer ID", func(h []byte) { clear(h[64:96]) }),
		rule(11, "policy-zero", "a zero policy ID, which only an enrollment or a policy may have", func(h []byte) { clear(h[96:128]) }),
		rule(12, "signer-zero", "a zero signer key ID", func(h []byte) { clear(h[128:160]) }),
		rule(13, "expires-not-after-created", "expires equal to created", func(h []byte) { copy(h[168:176], h[160:168]) }),
		rule(14, "payload-len-zero", "payload_len 0", func(h []byte) { binary.BigEndian.PutUint32(h[176:180], 0) }),
	}
}

// frameVectors: the frame checks of §4.5 and the signature form of §5.2.
func frameVectors() []vector {
	return []vector{
		{"zstd-skippable-frame-only", "malformed",
			"The key package at offline seq 4 re-signed with a stored payload that is a skippable zstd frame alone: a stored payload is one Zstandard frame, and a skippable frame is not one.",
			func(v *vec) error {
				resealPkg(v, func(h, p, _ []byte) []byte {
					st := []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4}
					setStored(h, p, st)
					return st
				})
				return nil
			}},
		{"zstd-dictionary", "malformed",
			"The key package at offline seq 4 re-signed with a zstd frame whose header names dictionary 1 (a Dictionary_ID byte inserted after the frame header descriptor): dictionaries are not part of the format.",
			func(v *vec) error {
				resealPkg(v, func(h, p, stored []byte) []byte {
					st := append(bytes.Clone(stored[:5]), 0x01)
					st[4] |= 0x01
					st = append(st, stored[5:]...)
					setStored(h, p, st)
					return st
				})
				return nil
			}},
		{"zstd-bad-checksum", "malformed",
			"The key package at offline seq 4 re-signed with a zstd frame whose content checksum (its last four bytes) is wrong: a decoding error other than size is malformed.",
			func(v *vec) error {
				resealPkg(v, func(h, p, stored []byte) []byte {
					st := bytes.Clone(stored)
					st[len(st)-1] ^= 0xff
					setStored(h, p, st)
					return st
				})
				return nil
			}},
		{"ecdsa-high-s", "bad signature",
			"The station signature of the key package at offline seq 4 replaced by its other valid ECDSA form (r, n − s), whose s is above n/2: readers accept only the low-S form, so that a signature has one encoding.",
			func(v *vec) error {
				b := v.base()
				check(rewrite(b.file(b.pkg), func(d []byte) []byte {
					n := elliptic.P256().Params().N
					s := new(big.Int).SetBytes(d[bundle.HeaderSize+32 : bundle.HeaderSize+64])
					new(big.Int).Sub(n, s).FillBytes(d[bundle.HeaderSize+32 : bundle.HeaderSize+64])
					return d
				}))
				v.expectAt(offline, 4)
				return nil
			}},
	}
}

// firstPolicyVectors: the checks of the first policy (§9.2 step 4).
func firstPolicyVectors() []vector {
	return []vector{
		{"first-policy-version-2", "policy violation",
			"The first policy on the medium (offline seq 2) is version 2 (with a non-zero previous ID): the first policy is version 1.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				p := c.NewPolicy()
				p.Version, p.Previous = 2, bundle.ID{0x42}
				v.anchor = must(c.Append(offline, p)).ID()
				v.expectAt(offline, 2)
				return nil
			}},
		{"first-policy-under-a-policy", "policy violation",
			"Policy v1 (offline seq 2) names a non-zero policy ID in its header: version 1 is made under no policy.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				v.anchor = must(c.Append(offline, c.NewPolicy(), chaintest.UnderPolicy(bundle.ID{0x42}))).ID()
				v.expectAt(offline, 2)
				return nil
			}},
		{"first-policy-no-peer", "chain break",
			"The offline station enrolled (offline seq 1) before the online station (online seq 1), and policy v1 (offline seq 2) references no online bundle: the first policy must have seen the online enrollment it vouches for.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				must(c.Append(offline, &payload.Enrollment{Station: "offline", Name: "offline-station", Key: must(payload.NewPublicKey(c.OfflineKey.Public())), Software: "chaintest"}))
				must(c.Append(online, onlineEnrollment(c)))
				v.anchor = must(c.Append(offline, c.NewPolicy(), chaintest.NoSync())).ID()
				v.expectAt(offline, 2)
				return nil
			}},
		{"first-policy-wrong-signer", "unknown signer",
			"Policy v1 (offline seq 2) is sealed with a key other than the offline station key it names.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				v.anchor = must(c.Append(offline, c.NewPolicy(), chaintest.SignWith(c.Key("impostor")))).ID()
				v.expectAt(offline, 2)
				return nil
			}},
		{"first-policy-bad-signature", "bad signature",
			"One bit flipped in the station signature of policy v1 (offline seq 2), which keeps its name and ID: the pinned ID authenticates the header, and the signature must still verify.",
			func(v *vec) error {
				b := v.base()
				check(rewrite(b.file(b.policy), flip(bundle.HeaderSize+7, 1)))
				v.expectAt(offline, 2)
				return nil
			}},
	}
}

// policyVersionVectors: proposals of a next policy version (§9.3).
func policyVersionVectors() []vector {
	return []vector{
		{"policy-version-skipped", "policy violation",
			"While policy v1 is in force, the bundle at offline seq 4 proposes version 3: the next version is 2.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				p := c.NewPolicy()
				p.Version, p.Previous = 3, c.PolicyID
				must(c.Append(offline, p))
				v.expectAt(offline, 4)
				return nil
			}},
		{"policy-wrong-previous", "policy violation",
			"While policy v1 is in force, the bundle at offline seq 4 proposes version 2 whose previous ID is not v1's.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				p := c.NewPolicy()
				p.Version, p.Previous = 2, bundle.ID{0x42}
				must(c.Append(offline, p, chaintest.UnderPolicy(c.PolicyID)))
				v.expectAt(offline, 4)
				return nil
			}},
		{"policy-before-first-in-force", "unknown signer",
			"Policy v1 awaits approval (offline seq 2) and another policy bundle follows at offline seq 3: before a policy is in force only approvals of the first one may follow it.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				b := must(c.Append(offline, c.NewPolicy()))
				v.anchor = b.ID()
				p := c.NewPolicy()
				p.Version, p.Previous = 2, b.ID()
				must(c.Append(offline, p))
				v.expectAt(offline, 3)
				return nil
			}},
		{"approval-of-nothing-pending", "policy violation",
			"The approval at offline seq 4 approves the policy v1 that is already in force: it is neither a policy awaiting approval nor a key package awaiting upload (rule approval-target).",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				must(c.Approve(c.PolicyID, bundle.KindPolicy, 2))
				v.expectAt(offline, 4)
				return nil
			}},
	}
}

// kindRuleVectors: the rules of §9.5 to §9.7 that 1.0 had no vector for.
func kindRuleVectors() []vector {
	return []vector{
		{"offer-kek-expired", "expired",
			"The KEK offer at online seq 2 says its KEK expired in Key Vault an hour before the offer was made.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				o := c.OfferPayload("00000000000000000000000000000001")
				o.Expires = c.Clock.Add(-time.Hour).Unix()
				must(c.Append(online, o))
				v.expectAt(online, 2)
				return nil
			}},
		{"package-offer-not-seen", "chain break",
			"The key package at offline seq 4 names a KEK offer ID that is on no chain (its kid is the offer's): a package follows the offer it uses.",
			func(v *vec) error {
				packageWith(v, chaintest.Config{}, payload.RSA3072, func(k *payload.KeyPackage) { k.KEK.Offer[0] ^= 1 })
				v.expectAt(offline, 4)
				return nil
			}},
		{"package-kek-kid-differs", "policy violation",
			"The key package at offline seq 4 names the KEK offer at online seq 2 but another version of the KEK (its kek.kid and its .byok's kid agree with each other, not with the offer): rule kek.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				o := *c.OfferPayload("00000000000000000000000000000001")
				o.KID = strings.Replace(o.KID, "/00000000000000000000000000000001", "/00000000000000000000000000000099", 1)
				c.RegisterOffer(bundle.ID{0x99}, &o)
				k := must(c.PackagePayload(bundle.ID{0x99}, payload.RSA3072, "key-1"))
				k.KEK.Offer = off.ID()
				must(c.Append(offline, k))
				v.expectAt(offline, 4)
				return nil
			}},
		{"package-kek-expired", "expired",
			"The key package at offline seq 4 is made three days after the KEK offer at online seq 2, whose KEK expired in Key Vault a day after the offer; the offer bundle itself lives seven days: rule 9 of §9.6.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				o := c.OfferPayload("00000000000000000000000000000001")
				o.Expires = c.Clock.Add(day).Unix()
				off := must(c.Append(online, o))
				c.RegisterOffer(off.ID(), o)
				c.Clock = c.Clock.Add(3 * day)
				must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				v.expectAt(offline, 4)
				return nil
			}},
		{"package-byok-wrong-kek-size", "policy violation",
			"On a Managed HSM, the AES-128 key package at offline seq 4 carries a .byok wrapped for a 2048-bit KEK (256 + 24 bytes) but names the RSA-3072 KEK offer at online seq 2: 280 bytes cannot hold a 384-byte RSA part and a wrapped key (rule byok).",
			func(v *vec) error {
				c := v.setup(managedHSM)
				off := must(c.Offer())
				o := c.OfferPayload("00000000000000000000000000000001")
				small := *o
				kek := chaintest.RSAKey("kek-2048")
				small.N, small.KeySize = kek.N.Bytes(), 2048
				c.RegisterOffer(bundle.ID{0x99}, &small)
				k := must(c.PackagePayload(bundle.ID{0x99}, payload.AES128, "key-1"))
				k.KEK.Offer = off.ID()
				must(c.Append(offline, k))
				v.expectAt(offline, 4)
				return nil
			}},
		{"receipt-package-not-seen", "chain break",
			"The receipt at online seq 3 is for the key package at offline seq 4, but it references offline seq 3 only: the online station reports an upload of a package it had not seen.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must(c.Receipt(pkg, chaintest.NoSync()))
				v.expectAt(online, 3)
				return nil
			}},
		{"receipt-other-vault", "policy violation",
			"The receipt at online seq 3 says the key was imported into another vault of the policy than the one the package names (rule vault).",
			func(v *vec) error {
				c := v.setupWith(chaintest.Config{}, func(p *payload.Policy) {
					p.Vaults = append(p.Vaults, payload.Vault{URL: "https://fabrikam-byok.vault.azure.net", Kind: payload.VaultPremium, Region: "northeurope"})
				})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
				r := must(c.ReceiptPayload(pkg))
				r.Vault = "https://fabrikam-byok.vault.azure.net"
				r.KID = strings.Replace(r.KID, "https://contoso-byok.vault.azure.net", r.Vault, 1)
				must(c.Append(online, r))
				v.expectAt(online, 3)
				return nil
			}},
	}
}

// byokVectors: the .byok a key package carries is canonical (§10.2) and names the package's
// KEK (§7.4).
func byokVectors() []vector {
	bad := func(name, why string, edit func(c *chaintest.Ceremony, k *payload.KeyPackage)) vector {
		return vector{"byok-" + name, "malformed",
			"The key package at offline seq 4 carries a .byok " + why + ".",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				k := must(c.PackagePayload(off.ID(), payload.RSA3072, "key-1"))
				edit(c, k)
				must(c.Append(offline, k))
				v.expectAt(offline, 4)
				return nil
			}}
	}
	return []vector{
		bad("noncanonical-whitespace", "with a space after its first colon: a key package carries the canonical bytes only",
			func(_ *chaintest.Ceremony, k *payload.KeyPackage) {
				k.BYOK = bytes.Replace(k.BYOK, []byte(`":`), []byte(`": `), 1)
			}),
		bad("kid-differs", "whose header.kid is another version of the KEK than the package's kek.kid",
			func(_ *chaintest.Ceremony, k *payload.KeyPackage) {
				k.BYOK = bytes.Replace(k.BYOK, []byte("/00000000000000000000000000000001"), []byte("/00000000000000000000000000000002"), 1)
			}),
		bad("ciphertext-too-short", "whose ciphertext is 264 bytes: at least 272 (a 2048-bit RSA part and a 16-byte wrapped key)",
			func(_ *chaintest.Ceremony, k *payload.KeyPackage) {
				i := bytes.Index(k.BYOK, []byte(`"ciphertext":"`)) + len(`"ciphertext":"`)
				j := i + bytes.IndexByte(k.BYOK[i:], '"')
				short := base64.RawURLEncoding.EncodeToString(make([]byte, 264))
				k.BYOK = append(append(bytes.Clone(k.BYOK[:i]), short...), k.BYOK[j:]...)
			}),
	}
}
