package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

var (
	offline = bundle.ChainOffline
	online  = bundle.ChainOnline
)

// vectors returns every vector, valid ones first.
func vectors() []vector {
	var vs []vector
	vs = append(vs, validVectors()...)
	vs = append(vs, headerFlipVectors()...)
	vs = append(vs, structureVectors()...)
	vs = append(vs, chainVectors()...)
	vs = append(vs, ruleVectors()...)
	vs = append(vs, limitVectors()...)
	vs = append(vs, pathVectors()...)
	vs = append(vs, errataVectors()...)
	vs = append(vs, walkVectors()...)
	vs = append(vs, version2Vectors()...)
	vs = append(vs, regionVectors()...)
	vs = append(vs, receiptVersionVectors()...)
	return vs
}

func validVectors() []vector {
	return []vector{
		{"valid-full-ceremony", "success",
			"A whole ceremony on a Managed HSM with an RSA-4096 KEK: one key package of every key type (RSA 2048/3072/4096, EC P-256/384/521, AES 128/192/256), each approved by 2 of 3 custodians and imported. The policy sets allow_weaker_kek, which the P-384, P-521, AES-192 and AES-256 targets need (RSA-4096 has 152-bit strength).",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{Vault: "https://contoso-byok.managedhsm.azure.net", VaultKind: payload.VaultManagedHSM, KEKBits: 4096, AllowWeakerKEK: true}))
				must(c.Full(payload.KeyTypes...))
				v.anchor = c.PolicyID
				return nil
			}},
		{"valid-one-key", "success",
			"The standard small ceremony the negative vectors mutate: enrollments, policy v1 approved by 2 of 3 custodians, an RSA-3072 KEK offer, one RSA-3072 key package approved by 2 custodians, and its receipt.",
			func(v *vec) error { v.base(); return nil }},
		{"valid-trust-on-first-use", "success",
			"The standard ceremony replayed without an anchor: the first policy is trusted on first use, which the result reports; nothing else changes.",
			func(v *vec) error { v.base(); v.anchor = bundle.ID{}; return nil }},
		{"valid-remembered-heads", "success",
			"The standard ceremony replayed by a station that saw it up to offline seq 3 and online seq 2: the medium extends what it saw.",
			func(v *vec) error {
				b := v.base()
				v.remembered = &chain.Heads{
					Offline: chain.Head{Seq: 3, ID: b.policyApproval.ID(), Created: b.policyApproval.Header.Created},
					Online:  chain.Head{Seq: 2, ID: b.offer.ID(), Created: b.offer.Header.Created},
				}
				return nil
			}},
		{"valid-enrollments-only", "success",
			"Only the two enrollments, the first step of a ceremony. Nothing is verified yet (an enrollment is checked when the first policy names its key), and nothing is wrong.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				return nil
			}},
		{"valid-kind-policy", "success",
			"Enrollments and policy v1 awaiting its approvals: the policy is pinned and verifies the enrollments, but is not in force yet.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				v.anchor = must(c.Append(offline, c.NewPolicy())).ID()
				return nil
			}},
		{"valid-kind-approval", "success",
			"Enrollments, policy v1 and the approval (2 of 3 custodians) that puts it in force.",
			func(v *vec) error { v.setup(chaintest.Config{}); return nil }},
		{"valid-kind-kek-offer", "success",
			"Policy v1 in force and a KEK offer from the online station.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				must(c.Offer())
				return nil
			}},
		{"valid-kind-key-package", "success",
			"Policy v1 in force, a KEK offer and a key package not approved or uploaded yet: an outstanding package is not a finding.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				must(c.Package(off.ID(), payload.ECP256, "key-1"))
				return nil
			}},
		{"valid-policy-rotation", "success",
			"Policy v1 (custodians 1-3, threshold 2) is replaced by v2 (custodian 3 and two new ones, threshold 2): v2 is approved first by two v1 custodians, which alone does not put it in force, then by the two new custodians, which does. A key package made under v2 is approved by v2 custodians and imported.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				rotate(c, []int{2}, []*ecdsa.PrivateKey{c.Key("new-custodian-1"), c.Key("new-custodian-2")}, 2)
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA2048, "key-1"))
				must(c.Append(offline, c.ApprovalBy(pkg.ID(), bundle.KindKeyPackage, c.Custodians[2], c.Key("new-custodian-1"))))
				must(c.Receipt(pkg))
				return nil
			}},
		{"valid-rejected-then-imported", "success",
			"Key Vault rejects the first upload of a package (a receipt with outcome rejected, which does not consume the package); the second upload imports it.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 2))
				r := must(c.ReceiptPayload(pkg))
				r.Outcome, r.KID, r.PublicKey, r.Created, r.Tags = payload.OutcomeRejected, "", nil, 0, nil
				r.Error = "BadParameter: the key could not be imported"
				must(c.Append(online, r))
				must(c.Receipt(pkg))
				return nil
			}},
		{"valid-leftover-and-unknown-files", "success",
			"The standard ceremony plus a temporary file left by an interrupted write in a shard folder and an unknown file in the offline chain folder: both are reported as warnings and ignored.",
			func(v *vec) error {
				b := v.base()
				shard := filepath.Dir(b.file(b.pkg))
				check(writeFile(filepath.Join(shard, ".tmp-0123456789ab-"+media.Name(6, bundle.ID{6})), []byte("partial")))
				check(writeFile(filepath.Join(v.dir, "offline", "README.txt"), []byte("notes\n")))
				v.warnings = 2
				return nil
			}},
	}
}

// Header field regions (SPEC.md §4.1): the byte and bit each flip vector changes.
var headerFlips = []struct {
	name   string
	off    int
	bit    uint
	expect string
	why    string
}{
	{"magic", 3, 0, "malformed", "the magic no longer matches, so the file is not a bundle"},
	{"version", 9, 1, "unsupported version", "the version reads 3, which this implementation does not know; it is checked before anything else"},
	{"kind", 10, 0, "hash mismatch", "kind 4 (key_package) becomes 5 (approval), still allowed on the offline chain, so the header parses; its ID no longer matches the file name"},
	{"chain", 11, 0, "malformed", "chain 1 becomes 0, which is not a chain"},
	{"alg", 12, 0, "malformed", "signature algorithm 1 becomes 0, which is not an algorithm"},
	{"encoding", 13, 0, "malformed", "payload encoding 1 (zstd) becomes 0"},
	{"reserved-14", 14, 0, "malformed", "a reserved byte after the encoding must be zero"},
	{"seq", 23, 0, "hash mismatch", "seq 4 becomes 5; the header is well formed, but its ID no longer matches the file name, which is checked before the sequence number"},
	{"prev", 55, 0, "hash mismatch", "the previous ID changes; the ID no longer matches the file name"},
	{"peer-seq", 63, 0, "hash mismatch", "the peer sequence number 2 becomes 3; the ID no longer matches the file name. The reader must say so even though the changed reference now points at a bundle the other chain only reaches later"},
	{"peer", 95, 0, "hash mismatch", "the peer ID changes; the ID no longer matches the file name"},
	{"policy", 127, 0, "hash mismatch", "the policy ID changes; the ID no longer matches the file name"},
	{"signer", 159, 0, "hash mismatch", "the signer key ID changes; the ID no longer matches the file name, which is checked before the signer"},
	{"created", 167, 0, "hash mismatch", "the creation time changes by a second; the ID no longer matches the file name"},
	{"created-sign", 160, 7, "malformed", "the sign bit of the creation time is set: a negative time is out of range"},
	{"expires", 175, 0, "hash mismatch", "the expiry changes by a second; the ID no longer matches the file name"},
	{"payload-len", 179, 0, "hash mismatch", "the decoded length changes by one; the ID no longer matches the file name"},
	{"payload-len-high", 176, 7, "too large", "the decoded length gains 2^31: a declared length beyond MaxPayload is refused while parsing the header"},
	{"stored-len", 183, 0, "malformed", "the stored length changes by one, so the file is one byte short of or past what the header declares"},
	{"payload-digest", 215, 0, "hash mismatch", "the digest of the decoded payload changes; the ID no longer matches the file name"},
	{"stored-digest", 247, 0, "hash mismatch", "the digest of the stored payload changes; the ID no longer matches the file name"},
	{"reserved-tail", 255, 0, "malformed", "the last of the eight reserved bytes at the end of the header must be zero"},
}

func headerFlipVectors() []vector {
	var vs []vector
	for _, f := range headerFlips {
		vs = append(vs, vector{"flip-header-" + f.name, f.expect,
			fmt.Sprintf("One bit flipped (byte %d, bit %d) in the header of the key package at offline seq 4, which keeps its file name: %s.", f.off, f.bit, f.why),
			func(v *vec) error {
				b := v.base()
				check(rewrite(b.file(b.pkg), flip(f.off, f.bit)))
				v.expectAt(offline, 4)
				return nil
			}})
	}
	return vs
}

func structureVectors() []vector {
	truncate := func(name string, n func(size int) int, where string) vector {
		return vector{"truncated-" + name, "malformed",
			"The key package at offline seq 4 cut short " + where + ": the file is shorter than the header declares (or than a header).",
			func(v *vec) error {
				b := v.base()
				check(rewrite(b.file(b.pkg), func(d []byte) []byte { return d[:n(len(d))] }))
				v.expectAt(offline, 4)
				return nil
			}}
	}
	return []vector{
		{"flip-signature", "bad signature",
			"One bit flipped in the ECDSA station signature of the key package at offline seq 4.",
			func(v *vec) error {
				b := v.base()
				check(rewrite(b.file(b.pkg), flip(bundle.HeaderSize+10, 3)))
				v.expectAt(offline, 4)
				return nil
			}},
		{"flip-signature-ed25519", "bad signature",
			"One bit flipped in the Ed25519 station signature of the receipt at online seq 3.",
			func(v *vec) error {
				b := v.base()
				check(rewrite(b.file(b.receipt), flip(bundle.HeaderSize+40, 0)))
				v.expectAt(online, 3)
				return nil
			}},
		{"flip-stored-payload", "hash mismatch",
			"One bit flipped in the stored (compressed) payload of the key package at offline seq 4: the signature verifies, the stored digest does not.",
			func(v *vec) error {
				b := v.base()
				check(rewrite(b.file(b.pkg), func(d []byte) []byte { d[len(d)-5] ^= 0x04; return d }))
				v.expectAt(offline, 4)
				return nil
			}},
		truncate("empty", func(int) int { return 0 }, "to nothing"),
		truncate("header", func(int) int { return 100 }, "inside the header (100 bytes)"),
		truncate("signature", func(int) int { return bundle.HeaderSize + 30 }, "inside the signature"),
		truncate("payload", func(n int) int { return n - 1 }, "by the last byte of the stored payload"),
		{"trailing-bytes", "malformed",
			"Four bytes appended to the key package at offline seq 4: a bundle is exactly header, signature and the declared stored length.",
			func(v *vec) error {
				b := v.base()
				check(rewrite(b.file(b.pkg), func(d []byte) []byte { return append(d, 0, 0, 0, 0) }))
				v.expectAt(offline, 4)
				return nil
			}},
		{"unsupported-version-resigned", "unsupported version",
			"The key package at offline seq 4 rewritten as format version 3: the header is otherwise unchanged, properly re-signed by the offline station and named by its new ID. Readers refuse versions they do not know rather than guess. (Until revision 2.0.0 this vector was version 2, which readers now implement: see version-2-signed-as-version-1.)",
			func(v *vec) error {
				b := v.base()
				h := header(b.pkg)
				binary.BigEndian.PutUint16(h[8:10], 3)
				must(forge(b.c, b.pkg, h, b.pkg.Stored, b.c.OfflineKey))
				v.expectAt(offline, 4)
				return nil
			}},
		{"version-2-signed-as-version-1", "hash mismatch",
			"The key package at offline seq 4 with its version field set to 2 and nothing else changed, re-signed and named with version 1's domain strings (the bytes of the vector unsupported-version-resigned before revision 2.0.0). Version 2's bundle ID hashes the header under airgap-byok/v2/bundle-id, so the ID in the file name is not the bundle's: an ID or signature of one version is never valid in another.",
			func(v *vec) error {
				b := v.base()
				h := header(b.pkg)
				binary.BigEndian.PutUint16(h[8:10], 2)
				must(forgeAs(b.c, b.pkg, bundle.Version1, h, b.pkg.Stored, b.c.OfflineKey))
				v.expectAt(offline, 4)
				return nil
			}},
		{"swapped-payload", "hash mismatch",
			"Two key packages, each approved by two custodians (offline seq 5 and 7, stored payloads of equal length). The approval at seq 7 carries the stored payload of the one at seq 5 under its own header and valid signature: the stored digest the signature covers does not match.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				pkg1 := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				a1 := must(c.Approve(pkg1.ID(), bundle.KindKeyPackage, 0, 1))
				pkg2 := must(c.Package(off.ID(), payload.RSA3072, "key-2"))
				// Pick the pair of custodians whose approval compresses to the same length.
				for _, pair := range [][]int{{0, 1}, {0, 2}, {1, 2}} {
					a2 := must(c.Append(offline, c.Approval(pkg2.ID(), bundle.KindKeyPackage, pair...), chaintest.NoWrite()))
					if len(a2.Stored) != len(a1.Stored) {
						continue
					}
					a2 = must(c.Approve(pkg2.ID(), bundle.KindKeyPackage, pair...))
					check(rewrite(c.File(a2), func(d []byte) []byte {
						copy(d[bundle.HeaderSize+bundle.SignatureSize:], a1.Stored)
						return d
					}))
					v.expectAt(offline, 7)
					return nil
				}
				return fmt.Errorf("no approval of the second package has a stored payload of %d bytes", len(a1.Stored))
			}},
		noncanonical("whitespace", "a space after the first colon", func(p []byte) []byte {
			return bytes.Replace(p, []byte(`":`), []byte(`": `), 1)
		}),
		noncanonical("reordered-members", "its members sorted by name instead of in the order of the format", func(p []byte) []byte {
			return must(reorderJSON(p))
		}),
		noncanonical("unknown-member", `an extra member "comment" at the end`, func(p []byte) []byte {
			return append(p[:len(p)-1], []byte(`,"comment":"hello"}`)...)
		}),
		noncanonical("duplicate-member", `the "vault" member twice`, func(p []byte) []byte {
			i := bytes.Index(p, []byte(`"vault":`))
			j := i + bytes.IndexByte(p[i:], ',')
			return append(bytes.Clone(p[:j+1]), append(bytes.Clone(p[i:j+1]), p[j+1:]...)...)
		}),
		noncanonical("escaped-character", `the first "a" of a member name written as \u0061`, func(p []byte) []byte {
			return bytes.Replace(p, []byte(`"package"`), []byte(`"p\u0061ckage"`), 1)
		}),
	}
}

// noncanonical is a receipt whose payload JSON is not in canonical form, sealed and signed
// properly by the online station.
func noncanonical(name, what string, edit func([]byte) []byte) vector {
	return vector{"noncanonical-payload-" + name, "malformed",
		"The receipt at online seq 3 carries its payload with " + what + ", compressed, sealed and signed properly: the payload decodes to the same value, but only the canonical encoding is accepted.",
		func(v *vec) error {
			c := v.setup(chaintest.Config{})
			off := must(c.Offer())
			pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
			must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
			must(c.Receipt(pkg, chaintest.Mutate(func(d *bundle.Draft) { d.Payload = edit(d.Payload) })))
			v.expectAt(online, 3)
			return nil
		}}
}

func chainVectors() []vector {
	return []vector{
		{"gap", "chain break",
			"The key package file at offline seq 4 removed: offline seq 5 follows seq 3.",
			func(v *vec) error {
				b := v.base()
				check(os.Remove(b.file(b.pkg)))
				v.expectAt(offline, 5)
				return nil
			}},
		{"reordered", "chain break",
			"The key package (offline seq 4) and its approval (seq 5) swap sequence numbers, each re-signed by the offline station and renamed, their previous IDs unchanged: the bundle now at seq 4 names the package as its predecessor, not the bundle at seq 3.",
			func(v *vec) error {
				b := v.base()
				hp, ha := header(b.pkg), header(b.approval)
				binary.BigEndian.PutUint64(hp[16:24], 5)
				binary.BigEndian.PutUint64(ha[16:24], 4)
				must(forge(b.c, b.pkg, hp, b.pkg.Stored, b.c.OfflineKey))
				must(forge(b.c, b.approval, ha, b.approval.Stored, b.c.OfflineKey))
				v.expectAt(offline, 4)
				return nil
			}},
		{"wrong-prev", "chain break",
			"The key package at offline seq 4 re-signed with a previous ID naming the policy (seq 2) instead of its approval (seq 3), and renamed.",
			func(v *vec) error {
				b := v.base()
				h := header(b.pkg)
				id := b.policy.ID()
				copy(h[24:56], id[:])
				must(forge(b.c, b.pkg, h, b.pkg.Stored, b.c.OfflineKey))
				v.expectAt(offline, 4)
				return nil
			}},
		{"time-goes-backwards", "chain break",
			"The key package at offline seq 4 is created ten minutes before the bundle it follows: creation times never decrease along a chain.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				c.Clock = c.Clock.Add(-10 * time.Minute)
				must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				v.expectAt(offline, 4)
				return nil
			}},
		{"forked", "fork",
			"Two valid approvals, both signed by the offline station, at offline seq 5 (one by custodians 1 and 2, one by custodians 1 and 3): a station wrote two bundles at one place.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				alt := must(c.Append(offline, c.Approval(pkg.ID(), bundle.KindKeyPackage, 0, 2), chaintest.NoWrite()))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
				must(c.Receipt(pkg))
				must(c.M.Write(alt))
				v.expectAt(offline, 5)
				return nil
			}},
		{"forked-peer", "fork",
			"The receipt at online seq 3 references offline seq 5 by an ID that is not the bundle there (properly signed): the two chains disagree about the offline chain.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
				must(c.Receipt(pkg, chaintest.Mutate(func(d *bundle.Draft) { d.Peer[0] ^= 1 })))
				v.expectAt(online, 3)
				return nil
			}},
		{"remembered-fork", "fork",
			"The verifying station remembers a different bundle at offline seq 3 than the one on the medium.",
			func(v *vec) error {
				b := v.base()
				other := b.policyApproval.ID()
				other[0] ^= 1
				v.remembered = &chain.Heads{Offline: chain.Head{Seq: 3, ID: other, Created: b.policyApproval.Header.Created}}
				v.expectAt(offline, 3)
				return nil
			}},
		{"rollback-remembered", "rollback",
			"The verifying station saw offline seq 6 (a second approval), which has since been removed from the medium: the medium is behind what was seen.",
			func(v *vec) error {
				b := v.base()
				extra := must(b.c.Approve(b.pkg.ID(), bundle.KindKeyPackage, 2))
				v.remembered = heads(b.c)
				check(os.Remove(b.file(extra)))
				v.expectAt(offline, 0)
				return nil
			}},
		{"rollback-peer", "rollback",
			"The approval at offline seq 5 references online seq 1 (properly signed) although the package before it (seq 4) had seen online seq 2: a chain's view of the other never goes backwards.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				enr := c.Written[0] // online seq 1
				must(c.Append(offline, c.Approval(pkg.ID(), bundle.KindKeyPackage, 0, 1),
					chaintest.Mutate(func(d *bundle.Draft) { d.PeerSeq, d.Peer = 1, enr.ID() })))
				v.expectAt(offline, 5)
				return nil
			}},
		{"missing-peer", "rollback",
			"The online receipt (seq 3) saw offline seq 5, but the offline chain on the medium ends at seq 4: the medium lost what the online station saw.",
			func(v *vec) error {
				b := v.base()
				check(os.Remove(b.file(b.approval)))
				v.expectAt(online, 3)
				return nil
			}},
	}
}

func ruleVectors() []vector {
	// pkgThen builds policy v1, a KEK offer and an RSA-3072 key package, then runs rest.
	pkgThen := func(v *vec, cfg chaintest.Config, rest func(c *chaintest.Ceremony, pkg *bundle.Bundle)) {
		c := v.setup(cfg)
		off := must(c.Offer())
		rest(c, must(c.Package(off.ID(), payload.RSA3072, "key-1")))
	}
	approvedThen := func(v *vec, rest func(c *chaintest.Ceremony, pkg *bundle.Bundle)) {
		pkgThen(v, chaintest.Config{}, func(c *chaintest.Ceremony, pkg *bundle.Bundle) {
			must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
			rest(c, pkg)
		})
	}
	keyPackage := func(v *vec, cfg chaintest.Config, kt payload.KeyType, opts ...chaintest.Option) {
		c := v.setup(cfg)
		off := must(c.Offer())
		must(c.Package(off.ID(), kt, "key-1", opts...))
		v.expectAt(offline, 4)
	}
	return []vector{
		{"missing-approval", "missing approval",
			"The key package is approved by one custodian, the threshold is two, and it is uploaded anyway: the receipt at online seq 3 is the finding.",
			func(v *vec) error {
				pkgThen(v, chaintest.Config{}, func(c *chaintest.Ceremony, pkg *bundle.Bundle) {
					must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0))
					must(c.Receipt(pkg))
				})
				v.expectAt(online, 3)
				return nil
			}},
		{"replayed-receipt", "replay",
			"A second receipt (online seq 4) for a key package that the first receipt already consumed: a package is imported at most once.",
			func(v *vec) error {
				b := v.base()
				must(b.c.Receipt(b.pkg))
				v.expectAt(online, 4)
				return nil
			}},
		{"replayed-approval", "replay",
			"Custodian 1 approves the key package at offline seq 5 and again, with custodian 2, at seq 6: the second signature of custodian 1 is a replay (and does not count twice).",
			func(v *vec) error {
				pkgThen(v, chaintest.Config{}, func(c *chaintest.Ceremony, pkg *bundle.Bundle) {
					must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0))
					must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
					must(c.Receipt(pkg))
				})
				v.expectAt(offline, 6)
				return nil
			}},
		{"approval-unknown-custodian", "unknown signer",
			"An approval at offline seq 5 signed by a key that is not a custodian of the policy; custodians 1 and 2 approve at seq 6 and the package is imported.",
			func(v *vec) error {
				pkgThen(v, chaintest.Config{}, func(c *chaintest.Ceremony, pkg *bundle.Bundle) {
					must(c.Append(offline, c.ApprovalBy(pkg.ID(), bundle.KindKeyPackage, c.Key("stranger"))))
					must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
					must(c.Receipt(pkg))
				})
				v.expectAt(offline, 5)
				return nil
			}},
		{"approval-by-retired-custodian", "unknown signer",
			"Policy v2 (custodian 3 and two new ones) replaces v1; custodian 1, a custodian of v1 only, then approves a key package made under v2 (offline seq 8). The signature is valid, but custodian 1 may no longer approve.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				rotate(c, []int{2}, []*ecdsa.PrivateKey{c.Key("new-custodian-1"), c.Key("new-custodian-2")}, 2)
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA2048, "key-1"))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0))
				v.expectAt(offline, 8)
				return nil
			}},
		{"approval-bad-signature", "bad signature",
			"The approval at offline seq 5 names the key package as its target, but custodian 1's signature in it is over the policy's ID.",
			func(v *vec) error {
				pkgThen(v, chaintest.Config{}, func(c *chaintest.Ceremony, pkg *bundle.Bundle) {
					a := c.Approval(c.PolicyID, bundle.KindKeyPackage, 0)
					a.Target = pkg.ID()
					must(c.Append(offline, a))
				})
				v.expectAt(offline, 5)
				return nil
			}},
		{"expired-approval", "expired",
			"Custodians approve the key package (offline seq 5) eight days after it was made; it expired after seven (the bundle lifetime).",
			func(v *vec) error {
				pkgThen(v, chaintest.Config{}, func(c *chaintest.Ceremony, pkg *bundle.Bundle) {
					c.Clock = c.Clock.Add(8 * day)
					must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
				})
				v.expectAt(offline, 5)
				return nil
			}},
		{"expired-offer", "expired",
			"The key package at offline seq 4 is made eight days after the KEK offer it uses; the offer expired after seven.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				c.Clock = c.Clock.Add(8 * day)
				must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				v.expectAt(offline, 4)
				return nil
			}},
		{"expired-receipt", "expired",
			"The key package is uploaded (receipt at online seq 3) eight days after it was made; it expired after seven.",
			func(v *vec) error {
				approvedThen(v, func(c *chaintest.Ceremony, pkg *bundle.Bundle) {
					c.Clock = c.Clock.Add(8 * day)
					must(c.Receipt(pkg))
				})
				v.expectAt(online, 3)
				return nil
			}},
		{"clock-skew", "clock skew",
			"The online station's clock runs an hour ahead: the key package at offline seq 4 is created 59 minutes before the KEK offer it saw, beyond the policy's 5-minute tolerance.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				t := c.Clock
				c.Clock = t.Add(time.Hour)
				off := must(c.Offer())
				c.Clock = t.Add(time.Minute)
				must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				v.expectAt(offline, 4)
				return nil
			}},
		{"untrusted-anchor", "untrusted",
			"The standard ceremony replayed by a station that pinned another deployment's policy (the policy v1 of a ceremony with another seed).",
			func(v *vec) error {
				v.base()
				v.anchor = otherPolicyID()
				v.expectAt(offline, 2)
				return nil
			}},
		{"wrong-signer-custodian", "unknown signer",
			"The key package at offline seq 4 is sealed with custodian 1's key instead of the offline station's.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				must(c.Package(off.ID(), payload.RSA3072, "key-1", chaintest.SignWith(c.Custodians[0])))
				v.expectAt(offline, 4)
				return nil
			}},
		{"wrong-signer-other-station", "unknown signer",
			"The key package at offline seq 4 is sealed with a P-256 station key the policy does not name (as another deployment's offline station would).",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				must(c.Package(off.ID(), payload.RSA3072, "key-1", chaintest.SignWith(c.Key("another-offline-station"))))
				v.expectAt(offline, 4)
				return nil
			}},
		{"wrong-signer-online", "unknown signer",
			"The receipt at online seq 3 is sealed with the offline station's key: each chain has its own station key.",
			func(v *vec) error {
				approvedThen(v, func(c *chaintest.Ceremony, pkg *bundle.Bundle) {
					must(c.Receipt(pkg, chaintest.SignWith(c.OfflineKey)))
				})
				v.expectAt(online, 3)
				return nil
			}},
		{"policy-vault-not-allowed", "policy violation",
			"The online station offers a KEK in a vault the policy does not list (online seq 2), and a key package is made for it.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				o := c.OfferPayload("00000000000000000000000000000001")
				o.Vault = "https://fabrikam-byok.vault.azure.net"
				o.KID = o.Vault + "/keys/kek/00000000000000000000000000000001"
				off := must(c.Append(online, o))
				c.RegisterOffer(off.ID(), o)
				must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				v.expectAt(online, 2)
				return nil
			}},
		{"policy-weak-kek", "policy violation",
			"An EC P-384 target (192-bit strength) wrapped with an RSA-3072 KEK (128-bit) under a policy without allow_weaker_kek.",
			func(v *vec) error { keyPackage(v, chaintest.Config{}, payload.ECP384); return nil }},
		{"policy-key-type", "policy violation",
			"An RSA-2048 key package under a policy that allows only RSA-3072.",
			func(v *vec) error {
				keyPackage(v, chaintest.Config{KeyTypes: []payload.KeyType{payload.RSA3072}}, payload.RSA2048)
				return nil
			}},
		{"policy-oct-on-premium", "policy violation",
			"An AES-128 key package (oct-HSM) for a premium vault: Key Vault imports AES keys only into a Managed HSM.",
			func(v *vec) error { keyPackage(v, chaintest.Config{}, payload.AES128); return nil }},
		{"policy-kek-size", "policy violation",
			"An RSA-3072 KEK offer (online seq 2) under a policy whose min_kek_bits is 4096.",
			func(v *vec) error {
				c := v.setupWith(chaintest.Config{}, func(p *payload.Policy) { p.MinKEKBits = 4096 })
				must(c.Offer())
				v.expectAt(online, 2)
				return nil
			}},
		{"policy-attestation-missing", "policy violation",
			"A KEK offer (online seq 2) from a Managed HSM without the key attestation a Managed HSM provides.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{Vault: "https://contoso-byok.managedhsm.azure.net", VaultKind: payload.VaultManagedHSM})
				o := c.OfferPayload("00000000000000000000000000000001")
				o.Attestation = nil
				must(c.Append(online, o))
				v.expectAt(online, 2)
				return nil
			}},
		{"policy-wrong-policy-id", "policy violation",
			"The key package at offline seq 4 says it was made under a policy ID that is not the policy in force.",
			func(v *vec) error {
				keyPackage(v, chaintest.Config{}, payload.RSA3072, chaintest.UnderPolicy(bundle.ID{0x42}))
				return nil
			}},
		{"policy-lifetime", "policy violation",
			"The key package at offline seq 4 expires 30 days after it was made; the policy allows bundles to live 7 days.",
			func(v *vec) error {
				keyPackage(v, chaintest.Config{}, payload.RSA3072, chaintest.Mutate(func(d *bundle.Draft) { d.Expires = d.Created + 30*86400 }))
				return nil
			}},
		{"policy-key-name", "policy violation",
			"The receipt at online seq 3 reports the key imported under another name than the package's.",
			func(v *vec) error {
				approvedThen(v, func(c *chaintest.Ceremony, pkg *bundle.Bundle) {
					r := must(c.ReceiptPayload(pkg))
					r.KID = strings.Replace(r.KID, "/keys/key-1/", "/keys/key-2/", 1)
					must(c.Append(online, r))
				})
				v.expectAt(online, 3)
				return nil
			}},
		{"key-mismatch-public-key", "key mismatch",
			"The receipt at online seq 3 records a public key returned by Key Vault that is not the packaged key's (it is the KEK's).",
			func(v *vec) error {
				approvedThen(v, func(c *chaintest.Ceremony, pkg *bundle.Bundle) {
					r := must(c.ReceiptPayload(pkg))
					r.PublicKey = must(x509.MarshalPKIXPublicKey(&c.KEK.PublicKey))
					must(c.Append(online, r))
				})
				v.expectAt(online, 3)
				return nil
			}},
		{"key-mismatch-outcome", "key mismatch",
			"The receipt at online seq 3 has outcome public_key_mismatch: the online station saw Key Vault return another public key.",
			func(v *vec) error {
				approvedThen(v, func(c *chaintest.Ceremony, pkg *bundle.Bundle) {
					r := must(c.ReceiptPayload(pkg))
					r.Outcome = payload.OutcomePublicKeyMismatch
					must(c.Append(online, r))
				})
				v.expectAt(online, 3)
				return nil
			}},
	}
}

// resealPkg replaces the key package of the standard ceremony by a bundle whose header and
// stored payload edit returns, given the header (to change in place), the decoded payload
// and the stored payload; properly signed by the offline station and named.
func resealPkg(v *vec, edit func(hdr, p, stored []byte) []byte) {
	b := v.base()
	p := must(b.pkg.Open())
	h := header(b.pkg)
	stored := edit(h, p, b.pkg.Stored)
	must(forge(b.c, b.pkg, h, stored, b.c.OfflineKey))
	v.expectAt(offline, 4)
}

func limitVectors() []vector {
	const maxPayload = bundle.MaxPayload
	return []vector{
		{"bomb-frame-declares-more", "too large",
			"The key package at offline seq 4 re-signed with a stored payload whose zstd frame declares one byte more than the header's payload length (the frame holds the payload and one more byte): the frame header is checked against the signed length before decoding.",
			func(v *vec) error {
				resealPkg(v, func(h, p, _ []byte) []byte {
					stored := compress(append(bytes.Clone(p), 'x'))
					setStored(h, p, stored)
					return stored
				})
				return nil
			}},
		{"bomb-2mib", "too large",
			"The key package at offline seq 4 re-signed with a stored payload of a few hundred bytes that decodes to 2 MiB (a zstd frame that declares 2 MiB), while the header declares the original length.",
			func(v *vec) error {
				resealPkg(v, func(h, p, _ []byte) []byte {
					stored := compress(bytes.Repeat([]byte("a"), 2<<20))
					setStored(h, p, stored)
					return stored
				})
				return nil
			}},
		{"bomb-exceeds-max-payload", "too large",
			"The key package at offline seq 4 re-signed with a header declaring a payload of exactly MaxPayload (1 MiB) and a zstd frame whose declared size was rewritten to 1 MiB although its blocks decode to 2 MiB: decoding stops at the declared length and reports the excess.",
			func(v *vec) error {
				resealPkg(v, func(h, _, _ []byte) []byte {
					frame := compress(bytes.Repeat([]byte("a"), 2<<20))
					stored := must(setFrameContentSize(frame, maxPayload))
					setStored(h, bytes.Repeat([]byte("a"), maxPayload), stored)
					return stored
				})
				return nil
			}},
		{"trailing-zstd-frame", "malformed",
			"The key package at offline seq 4 re-signed with its stored payload followed by a skippable zstd frame (which decodes to nothing): the stored payload is exactly one frame.",
			func(v *vec) error {
				resealPkg(v, func(h, p, stored []byte) []byte {
					st := append(bytes.Clone(stored), 0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4)
					setStored(h, p, st)
					return st
				})
				return nil
			}},
		{"oversized-declared-payload", "too large",
			"The key package at offline seq 4 re-signed with a header declaring a decoded payload of MaxPayload + 1 bytes.",
			func(v *vec) error {
				resealPkg(v, func(h, _, stored []byte) []byte {
					binary.BigEndian.PutUint32(h[176:180], maxPayload+1)
					return stored
				})
				return nil
			}},
		{"oversized-declared-stored", "too large",
			"The key package at offline seq 4 re-signed with a header declaring a stored payload of MaxStored + 1 bytes (the file is not that long).",
			func(v *vec) error {
				resealPkg(v, func(h, _, stored []byte) []byte {
					binary.BigEndian.PutUint32(h[180:184], bundle.MaxStored+1)
					return stored
				})
				return nil
			}},
		{"oversized-file", "too large",
			"The key package file at offline seq 4 padded with zeros to one byte more than MaxFileSize: the size is checked before the file is read.",
			func(v *vec) error {
				b := v.base()
				check(rewrite(b.file(b.pkg), func(d []byte) []byte { return append(d, make([]byte, bundle.MaxFileSize+1-len(d))...) }))
				v.expectAt(offline, 4)
				return nil
			}},
	}
}

func pathVectors() []vector {
	// moved replaces the key package file at offline seq 4 by something else and expects
	// the chain break at seq 5 that its absence causes.
	moved := func(name, comment string, to func(v *vec, b *base, from string) error) vector {
		return vector{name, "chain break", comment + " The file is reported as a warning and ignored, so offline seq 4 is missing.",
			func(v *vec) error {
				b := v.base()
				v.warnings = 1
				check(to(v, b, b.file(b.pkg)))
				v.expectAt(offline, 5)
				return nil
			}}
	}
	return []vector{
		moved("path-symlink", "The key package file at offline seq 4 is moved to stash/ at the top of the medium and a symbolic link with its name, pointing there, takes its place: following it would give a complete chain, but links are never followed. The folder stash/ is reported too, as an unknown name at the top of the medium.",
			func(v *vec, b *base, from string) error {
				v.warnings = 2
				to := filepath.Join(v.dir, "stash", filepath.Base(from))
				if err := move(from, to); err != nil {
					return err
				}
				return os.Symlink(filepath.Join("..", "..", "stash", filepath.Base(from)), from)
			}),
		moved("path-dotdot-name", `The key package file at offline seq 4 is renamed to start with "..".`,
			func(v *vec, b *base, from string) error {
				return move(from, filepath.Join(filepath.Dir(from), ".."+filepath.Base(from)))
			}),
		moved("path-uppercase-hex", "The key package file at offline seq 4 is renamed with its ID in uppercase hex; names are lowercase only, so every bundle has one name.",
			func(v *vec, b *base, from string) error {
				name := filepath.Base(from)
				return move(from, filepath.Join(filepath.Dir(from), name[:17]+strings.ToUpper(name[17:81])+name[81:]))
			}),
		{"path-wrong-shard", "success",
			"The receipt at online seq 3, the last bundle, is moved to shard folder 0000000000001 (seq 3 belongs to 0000000000000): it is reported as a warning and ignored, and what is left is a valid medium on which the key package awaits upload.",
			func(v *vec) error {
				b := v.base()
				from := b.file(b.receipt)
				check(move(from, filepath.Join(v.dir, "online", "0000000000001", filepath.Base(from))))
				v.warnings = 1
				return nil
			}},
	}
}
