package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// The vectors of the 1.0.1 clarifications (SPEC.md, Changes): each pins one reading of a
// place where the text of 1.0 could be read two ways.

// managedHSM is the configuration of a ceremony on a Managed HSM, whose KEK offers carry an
// attestation.
var managedHSM = chaintest.Config{Vault: "https://contoso-byok.managedhsm.azure.net", VaultKind: payload.VaultManagedHSM}

// editPayload returns an option that replaces old by new in the payload before it is sealed;
// the bundle is still properly signed. The payload must contain old.
func editPayload(old, new string) chaintest.Option {
	return chaintest.Mutate(func(d *bundle.Draft) {
		if !bytes.Contains(d.Payload, []byte(old)) {
			panic(buildError{fmt.Errorf("payload has no %s", old)})
		}
		d.Payload = bytes.Replace(d.Payload, []byte(old), []byte(new), 1)
	})
}

// tlv returns a DER element with tag and content.
func tlv(tag byte, content ...[]byte) []byte {
	c := bytes.Join(content, nil)
	n := len(c)
	var l []byte
	switch {
	case n < 0x80:
		l = []byte{byte(n)}
	case n < 0x100:
		l = []byte{0x81, byte(n)}
	default:
		l = []byte{0x82, byte(n >> 8), byte(n)}
	}
	return append(append([]byte{tag}, l...), c...)
}

// packageWith writes policy v1, a KEK offer and a key package of type kt whose payload edit
// changed, and returns the ceremony and the package.
func packageWith(v *vec, cfg chaintest.Config, kt payload.KeyType, edit func(k *payload.KeyPackage)) (*chaintest.Ceremony, *bundle.Bundle) {
	c := v.setup(cfg)
	off := must(c.Offer())
	k := must(c.PackagePayload(off.ID(), kt, "key-1"))
	edit(k)
	return c, must(c.Append(offline, k))
}

// enrollWith writes the online enrollment that e returns, sealed with the options it
// returns, then the offline enrollment and policy v1, pinned.
func enrollWith(v *vec, e func(c *chaintest.Ceremony) (*payload.Enrollment, []chaintest.Option)) *chaintest.Ceremony {
	c := must(v.ceremony(chaintest.Config{}))
	on, opts := e(c)
	must(c.Append(online, on, opts...))
	must(c.Append(offline, &payload.Enrollment{Station: "offline", Name: "offline-station", Key: must(payload.NewPublicKey(c.OfflineKey.Public())), Software: "chaintest",
		HSM: &payload.TokenInfo{Label: "station", Manufacturer: "chaintest", Model: "software"}}))
	b := must(c.Append(offline, c.NewPolicy()))
	c.Policy, c.PolicyID = c.NewPolicy(), b.ID()
	v.anchor = b.ID()
	return c
}

func onlineEnrollment(c *chaintest.Ceremony) *payload.Enrollment {
	return &payload.Enrollment{Station: "online", Name: "online-station", Key: must(payload.NewPublicKey(c.OnlineKey.Public())), Software: "chaintest"}
}

func errataVectors() []vector {
	var vs []vector
	for _, group := range [][]vector{emptyMemberVectors(), spkiVectors(), enrollmentVectors(), orderVectors(),
		mediumVectors(), approvalVectors(), vaultURLVectors(), keyOpsVectors()} {
		vs = append(vs, group...)
	}
	return vs
}

// emptyMemberVectors: a member marked "omitted if empty" is absent or holds a non-empty
// value; null, [] and {} are not canonical (§4.6; 1.0.1 items 1 and 2).
func emptyMemberVectors() []vector {
	return []vector{
		{"valid-omitted-optional-members", "success",
			"A Managed HSM ceremony whose KEK offer (online seq 2) has an attestation without certificates, and whose key package (offline seq 4) has no provenance.wrap.mechanisms and no provenance.key.attributes: the three members are omitted, which is their canonical form when empty.",
			func(v *vec) error {
				c := v.setup(managedHSM)
				o := c.OfferPayload("00000000000000000000000000000001")
				o.Attestation.Certificates = nil
				off := must(c.Append(online, o))
				c.RegisterOffer(off.ID(), o)
				k := must(c.PackagePayload(off.ID(), payload.RSA3072, "key-1"))
				k.Provenance.Wrap.Mechanisms, k.Provenance.Key.Attributes = nil, nil
				pkg := must(c.Append(offline, k))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
				must(c.Receipt(pkg))
				return nil
			}},
		{"noncanonical-null-mechanisms", "malformed",
			`The key package at offline seq 4 carries "mechanisms":null, properly sealed and signed: a member that is omitted when empty is absent or non-empty, and null is never a value of this format.`,
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				must(c.Package(off.ID(), payload.RSA3072, "key-1", editPayload(`"mechanisms":["CKM_RSA_AES_KEY_WRAP"]`, `"mechanisms":null`)))
				v.expectAt(offline, 4)
				return nil
			}},
		{"noncanonical-empty-attributes", "malformed",
			`The key package at offline seq 4 carries "attributes":{}, properly sealed and signed: an empty map is written by leaving the member out.`,
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				must(c.Package(off.ID(), payload.RSA3072, "key-1", editPayload(`"attributes":{"CKA_LOCAL":"true"}`, `"attributes":{}`)))
				v.expectAt(offline, 4)
				return nil
			}},
		{"noncanonical-empty-certificates", "malformed",
			`The KEK offer at online seq 2, from a Managed HSM, carries an attestation with "certificates":[], properly sealed and signed: an empty array is written by leaving the member out.`,
			func(v *vec) error {
				c := v.setup(managedHSM)
				o := c.OfferPayload("00000000000000000000000000000001")
				o.Attestation.Certificates = [][]byte{{0xaa}}
				must(c.Append(online, o, editPayload(`"certificates":["qg=="]`, `"certificates":[]`)))
				v.expectAt(online, 2)
				return nil
			}},
		{"noncanonical-null-custodians", "malformed",
			`Policy v1 (offline seq 2) carries "custodians":null, properly sealed and signed: null is never a value, and a policy has 1 to 16 custodians.`,
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				p := c.NewPolicy()
				b := must(c.Append(offline, p, chaintest.Mutate(func(d *bundle.Draft) {
					i := bytes.Index(d.Payload, []byte(`"custodians":[`))
					j := bytes.Index(d.Payload, []byte(`],"threshold"`))
					d.Payload = append(append(bytes.Clone(d.Payload[:i]), `"custodians":null`...), d.Payload[j+1:]...)
				})))
				v.anchor = b.ID()
				v.expectAt(offline, 2)
				return nil
			}},
		{"attestation-empty-format", "malformed",
			`The KEK offer at online seq 2 carries an attestation whose "format" is the empty string: an attestation's format is a non-empty text.`,
			func(v *vec) error {
				c := v.setup(managedHSM)
				o := c.OfferPayload("00000000000000000000000000000001")
				o.Attestation.Format = ""
				must(c.Append(online, o))
				v.expectAt(online, 2)
				return nil
			}},
		{"valid-hsm-token-info-empty-text", "success",
			"The standard ceremony, except that the offline enrollment's hsm object is present with every member the empty string: an object member is present whenever the writer has the object, whatever its members hold.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				must(c.Append(online, onlineEnrollment(c)))
				must(c.Append(offline, &payload.Enrollment{Station: "offline", Name: "offline-station", Key: must(payload.NewPublicKey(c.OfflineKey.Public())), Software: "", HSM: &payload.TokenInfo{}}))
				b := must(c.Append(offline, c.NewPolicy()))
				c.Policy, c.PolicyID = c.NewPolicy(), b.ID()
				v.anchor = b.ID()
				must(c.Approve(b.ID(), bundle.KindPolicy, 0, 1))
				return nil
			}},
	}
}

// spkiVectors: every SubjectPublicKeyInfo in a payload is the canonical DER encoding of a key
// of the kinds §5.1 and §7 name (1.0.1 item 4).
func spkiVectors() []vector {
	return []vector{
		{"noncanonical-spki-custodian", "malformed",
			"Policy v1 (offline seq 2) names custodian 3 by a P-256 key whose SubjectPublicKeyInfo has one more element (a NULL) at the end of its outer SEQUENCE. Some DER parsers skip it; the format takes only the canonical encoding, so the policy is malformed, whichever custodians later approve.",
			func(v *vec) error {
				v.setupWith(chaintest.Config{}, func(p *payload.Policy) {
					der := p.Custodians[2].Key.SPKI
					p.Custodians[2].Key.SPKI = tlv(0x30, der[2:], []byte{0x05, 0x00})
				})
				v.expectAt(offline, 2)
				return nil
			}},
		{"noncanonical-spki-target", "malformed",
			"The RSA-3072 key package at offline seq 4 carries a public_key whose RSAPublicKey is followed by two bytes of junk inside the BIT STRING. Some DER parsers ignore them; the format takes only the canonical encoding.",
			func(v *vec) error {
				packageWith(v, chaintest.Config{}, payload.RSA3072, func(k *payload.KeyPackage) {
					pub := must(x509.ParsePKIXPublicKey(k.PublicKey))
					rsaPub := must(x509.MarshalPKIXPublicKey(pub))
					// The BIT STRING is the second element of the outer SEQUENCE: the
					// 15-byte AlgorithmIdentifier, then 03 82 <len> 00 <RSAPublicKey>.
					inner := rsaPub[4+15+4+1:]
					alg := rsaPub[4 : 4+15]
					k.PublicKey = tlv(0x30, alg, tlv(0x03, []byte{0}, inner, []byte{0x05, 0x00}))
				})
				v.expectAt(offline, 4)
				return nil
			}},
		{"target-public-key-compressed-point", "malformed",
			"The EC P-256 key package at offline seq 4 carries its public key with the point compressed (02 or 03 and X). OpenSSL reads it; the format takes the uncompressed point only.",
			func(v *vec) error {
				packageWith(v, chaintest.Config{}, payload.ECP256, func(k *payload.KeyPackage) {
					der := k.PublicKey // 30 59 <AlgorithmIdentifier, 21 bytes> 03 42 00 04 X Y
					x, y := der[27:59], der[59:91]
					comp := []byte{0x02 | y[31]&1}
					comp = append(comp, x...)
					k.PublicKey = tlv(0x30, der[2:23], tlv(0x03, []byte{0}, comp))
				})
				v.expectAt(offline, 4)
				return nil
			}},
		{"receipt-public-key-ed25519", "malformed",
			"The receipt at online seq 3 carries an Ed25519 public key: Key Vault returns RSA and EC keys only, and a receipt's public_key is the canonical encoding of one of those.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
				r := must(c.ReceiptPayload(pkg))
				r.PublicKey = must(x509.MarshalPKIXPublicKey(ed25519.NewKeyFromSeed(make([]byte, 32)).Public()))
				must(c.Append(online, r))
				v.expectAt(online, 3)
				return nil
			}},
	}
}

// enrollmentVectors: the rules of an enrollment and where their failures are reported (1.0.1
// items 5, 6 and 8).
func enrollmentVectors() []vector {
	return []vector{
		{"online-enrollment-with-hsm", "malformed",
			"The online station's enrollment (online seq 1) carries an hsm member, which only the offline station's enrollment may have. An enrollment is checked when the first policy is, so the finding is reported at the policy, offline seq 2.",
			func(v *vec) error {
				c := enrollWith(v, func(c *chaintest.Ceremony) (*payload.Enrollment, []chaintest.Option) {
					e := onlineEnrollment(c)
					e.HSM = &payload.TokenInfo{Label: "none"}
					return e, nil
				})
				must(c.Approve(c.PolicyID, bundle.KindPolicy, 0, 1))
				v.expectAt(offline, 2)
				return nil
			}},
		{"enrollment-wrong-signer", "unknown signer",
			"The online enrollment (online seq 1) carries the online station's key but is sealed with another key. Policy v1 names the online station's key, so the enrollment's signer is not the one the policy names; the finding is reported at the policy, offline seq 2.",
			func(v *vec) error {
				c := enrollWith(v, func(c *chaintest.Ceremony) (*payload.Enrollment, []chaintest.Option) {
					return onlineEnrollment(c), []chaintest.Option{chaintest.SignWith(c.Key("impostor"))}
				})
				must(c.Approve(c.PolicyID, bundle.KindPolicy, 0, 1))
				v.expectAt(offline, 2)
				return nil
			}},
		{"enrollment-wrong-station", "policy violation",
			`The enrollment at online seq 1, sealed by the online station's key, says "station":"offline". Its station must be the chain it is on; the finding is reported at the policy, offline seq 2.`,
			func(v *vec) error {
				c := enrollWith(v, func(c *chaintest.Ceremony) (*payload.Enrollment, []chaintest.Option) {
					e := onlineEnrollment(c)
					e.Station = "offline"
					return e, nil
				})
				must(c.Approve(c.PolicyID, bundle.KindPolicy, 0, 1))
				v.expectAt(offline, 2)
				return nil
			}},
		{"rollback-enrollment-peer", "rollback",
			"The offline enrollment (offline seq 1) saw online seq 1; policy v1 (offline seq 2), properly signed, references no online bundle. An enrollment's peer reference counts like any other bundle's, so the policy saw less of the online chain than the bundle before it.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				b := must(c.Append(offline, c.NewPolicy(), chaintest.Mutate(func(d *bundle.Draft) { d.PeerSeq, d.Peer = 0, bundle.ID{} })))
				v.anchor = b.ID()
				v.expectAt(offline, 2)
				return nil
			}},
		{"rollback-after-first-policy", "rollback",
			"The approval at offline seq 3, properly signed, references online seq 0 although policy v1 before it (offline seq 2) saw online seq 1: the first policy is applied like any bundle, its peer reference included.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				b := must(c.Append(offline, c.NewPolicy()))
				v.anchor = b.ID()
				c.Policy, c.PolicyID = c.NewPolicy(), b.ID()
				must(c.Append(offline, c.Approval(b.ID(), bundle.KindPolicy, 0, 1), chaintest.Mutate(func(d *bundle.Draft) { d.PeerSeq, d.Peer = 0, bundle.ID{} })))
				v.expectAt(offline, 3)
				return nil
			}},
	}
}

// orderVectors: the order in which bundles are applied and checks run (1.0.1 items 3, 7, 10
// and 11, and the order of findings within one bundle).
func orderVectors() []vector {
	return []vector{
		{"trailing-empty-zstd-frame", "malformed",
			"The key package at offline seq 4 re-signed with its stored payload followed by an empty zstd frame (28 b5 2f fd 20 00 01 00 00, which decodes to nothing): the stored payload is exactly one frame.",
			func(v *vec) error {
				resealPkg(v, func(h, p, stored []byte) []byte {
					st := append(bytes.Clone(stored), 0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00)
					setStored(h, p, st)
					return st
				})
				return nil
			}},
		{"zstd-size-differs-and-trailing-frame", "too large",
			"The key package at offline seq 4 re-signed with a zstd frame that declares one byte more than the header's payload length, followed by a skippable frame: the declared content size is compared with payload_len before the end of the frame is looked for.",
			func(v *vec) error {
				resealPkg(v, func(h, p, _ []byte) []byte {
					st := append(compress(append(bytes.Clone(p), 'x')), 0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4)
					setStored(h, p, st)
					return st
				})
				return nil
			}},
		{"zstd-not-single-segment-size-differs", "malformed",
			"The key package at offline seq 4 re-signed with a zstd frame without the Single_Segment flag that declares one byte more than the header's payload length. The frame's shape is checked before its declared size, so the verdict is malformed, not too large.",
			func(v *vec) error {
				resealPkg(v, func(h, p, _ []byte) []byte {
					st := multiSegmentEncoder.EncodeAll(append(bytes.Clone(p), 'x'), nil)
					setStored(h, p, st)
					return st
				})
				return nil
			}},
		{"reserved-and-oversized-payload-len", "malformed",
			"The key package at offline seq 4 re-signed with reserved byte 14 set to 1 and payload_len MaxPayload + 1: the header rules are checked in order and the reserved bytes (rule 5) come before the limits (rule 15).",
			func(v *vec) error {
				resealPkg(v, func(h, _, stored []byte) []byte {
					h[14] = 1
					binary.BigEndian.PutUint32(h[176:180], bundle.MaxPayload+1)
					return stored
				})
				return nil
			}},
		{"flip-signature-and-stored-payload", "bad signature",
			"One bit flipped in the station signature and one in the stored payload of the key package at offline seq 4: the signature (step 6) is checked before the stored digest (step 7).",
			func(v *vec) error {
				b := v.base()
				check(rewrite(b.file(b.pkg), func(d []byte) []byte {
					d[bundle.HeaderSize+10] ^= 0x08
					d[len(d)-5] ^= 0x04
					return d
				}))
				v.expectAt(offline, 4)
				return nil
			}},
		{"merge-failed-offline-first", "malformed",
			"The key package at offline seq 4 is truncated; the KEK offer at online seq 2 (in a vault the policy does not list) is ready at the same time. A bundle that failed to read or parse is applied before a ready bundle of the other chain, so the replay stops at the package before the offer's finding.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				o := c.OfferPayload("00000000000000000000000000000001")
				o.Vault = "https://fabrikam-byok.vault.azure.net"
				o.KID = o.Vault + "/keys/kek/00000000000000000000000000000001"
				off := must(c.Append(online, o))
				c.RegisterOffer(off.ID(), o)
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				check(rewrite(c.File(pkg), func(d []byte) []byte { return d[:len(d)-1] }))
				v.expectAt(offline, 4)
				return nil
			}},
		{"merge-failed-online-first", "malformed",
			"The second KEK offer at online seq 3 is truncated; the key package at offline seq 4, which lives 30 days under a policy that allows 7, is ready at the same time. The failed bundle is applied first whichever chain it is on, so the replay stops at online seq 3 before the package's lifetime finding.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				must(c.Package(off.ID(), payload.RSA3072, "key-1", chaintest.Mutate(func(d *bundle.Draft) { d.Expires = d.Created + 30*86400 })))
				off2 := must(c.Offer())
				check(rewrite(c.File(off2), func(d []byte) []byte { return d[:len(d)-1] }))
				v.expectAt(online, 3)
				return nil
			}},
		{"offer-kek-size-and-expired", "policy violation",
			"The KEK offer at online seq 2 is an RSA-3072 KEK under a policy whose min_kek_bits is 4096, and the KEK expired in Key Vault before the offer was made. The rules of §9.5 are findings in the order listed: the size comes first.",
			func(v *vec) error {
				c := v.setupWith(chaintest.Config{}, func(p *payload.Policy) { p.MinKEKBits = 4096 })
				o := c.OfferPayload("00000000000000000000000000000001")
				o.Expires = c.Clock.Add(-time.Hour).Unix()
				must(c.Append(online, o))
				v.expectAt(online, 2)
				return nil
			}},
		{"path-folder-named-as-bundle", "chain break",
			"The key package file at offline seq 4 is replaced by a folder of the same name (holding a file, README): a name that is not a regular file is not a bundle; it is reported as a warning and ignored, so offline seq 4 is missing.",
			func(v *vec) error {
				b := v.base()
				p := b.file(b.pkg)
				check(os.Remove(p))
				check(writeFile(filepath.Join(p, "README"), []byte("not a bundle\n")))
				v.warnings = 1
				v.expectAt(offline, 5)
				return nil
			}},
		{"rollback-remembered-both-chains", "rollback",
			"The verifying station saw offline seq 6 and online seq 4, neither of which is on the medium: at the end of the medium the offline chain is compared first.",
			func(v *vec) error {
				b := v.base()
				v.remembered = heads(b.c)
				v.remembered.Offline.Seq++
				v.remembered.Online.Seq++
				v.expectAt(offline, 0)
				return nil
			}},
	}
}

// mediumVectors: a folder that is not a medium, and what a reader ignores on a medium and in
// remembered heads (1.0.1 items 9 and 15).
func mediumVectors() []vector {
	return []vector{
		{"not-a-medium-wrong-marker", "not a medium",
			`The standard ceremony's folder with a marker file AIRGAP-BYOK that holds "airgap-byok media v2\n": a verifier of this version refuses the folder as a whole before it reads any bundle.`,
			func(v *vec) error {
				v.base()
				return writeFile(filepath.Join(v.dir, media.MarkerName), []byte("airgap-byok media v2\n"))
			}},
		{"not-a-medium-no-marker", "not a medium",
			"The standard ceremony's folder without its marker file AIRGAP-BYOK: the bundles are all there, but a folder without the marker is not a medium.",
			func(v *vec) error {
				v.base()
				return os.Remove(filepath.Join(v.dir, media.MarkerName))
			}},
		{"valid-unknown-folders", "success",
			"The standard ceremony plus a folder notes/ at the top of the medium (two files), a folder offline/extra/ (two files) and a folder online/0000000000000/drafts/ (one file): each ignored name is one warning, and an ignored folder's content is not listed.",
			func(v *vec) error {
				b := v.base()
				for _, p := range []string{"notes/a.txt", "notes/b.txt", "offline/extra/1", "offline/extra/2"} {
					check(writeFile(filepath.Join(v.dir, filepath.FromSlash(p)), []byte("x\n")))
				}
				check(writeFile(filepath.Join(filepath.Dir(b.file(b.receipt)), "drafts", "1"), []byte("x\n")))
				v.warnings = 3
				return nil
			}},
		{"valid-remembered-heads-created-ignored", "success",
			"The standard ceremony replayed by a station that saw it up to offline seq 3 and online seq 2, with created times in its remembered heads that are not the bundles': only the seq and ID of a remembered head are compared.",
			func(v *vec) error {
				b := v.base()
				v.remembered = &chain.Heads{
					Offline: chain.Head{Seq: 3, ID: b.policyApproval.ID(), Created: 1},
					Online:  chain.Head{Seq: 2, ID: b.offer.ID()},
				}
				return nil
			}},
	}
}

// approvalVectors: what an approval with the wrong target_kind does, and what a rejected
// receipt may carry (1.0.1 items 12 and 13).
func approvalVectors() []vector {
	return []vector{
		{"approval-wrong-target-kind-package", "policy violation",
			`The approval at offline seq 5 of the key package says "target_kind":"policy". That is a finding at seq 5, and its signatures still count: the receipt at online seq 3 has no missing-approval finding, so the replay reports one finding in all.`,
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must(c.Approve(pkg.ID(), bundle.KindPolicy, 0, 1))
				must(c.Receipt(pkg))
				v.expectAt(offline, 5)
				v.findings = 1
				return nil
			}},
		{"approval-wrong-target-kind-policy", "policy violation",
			`The approval at offline seq 3 of policy v1 says "target_kind":"key_package". That is a finding at seq 3, and its signatures still count: the policy takes effect, and the key package, its approval and its receipt after it have no finding, so the replay reports one finding in all.`,
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{}))
				check(c.Enroll())
				b := must(c.Append(offline, c.NewPolicy()))
				c.Policy, c.PolicyID = c.NewPolicy(), b.ID()
				v.anchor = b.ID()
				must(c.Approve(b.ID(), bundle.KindKeyPackage, 0, 1))
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
				must(c.Receipt(pkg))
				v.expectAt(offline, 3)
				v.findings = 1
				return nil
			}},
		{"valid-rejected-with-created-and-tags", "success",
			"Key Vault rejects the first upload of a package; the rejected receipt (online seq 3) carries a created time and tags besides its error, which a rejected receipt may. The second upload imports the package.",
			func(v *vec) error {
				c := v.setup(chaintest.Config{})
				off := must(c.Offer())
				pkg := must(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 2))
				r := must(c.ReceiptPayload(pkg))
				r.Outcome, r.KID, r.PublicKey = payload.OutcomeRejected, "", nil
				r.Error = "Conflict: a key with this name is being deleted"
				must(c.Append(online, r))
				must(c.Receipt(pkg))
				return nil
			}},
	}
}

// vaultURLVectors: the grammar of a vault URL (1.0.1 item 14).
func vaultURLVectors() []vector {
	bad := func(name, url, why string) vector {
		return vector{"policy-vault-url-" + name, "malformed",
			"Policy v1 (offline seq 2) lists the vault " + url + ", " + why + ".",
			func(v *vec) error {
				v.setupWith(chaintest.Config{}, func(p *payload.Policy) {
					p.Vaults = append(p.Vaults, payload.Vault{URL: url, Kind: payload.VaultPremium, Region: "westeurope"})
				})
				v.expectAt(offline, 2)
				return nil
			}}
	}
	return []vector{
		bad("trailing-dot", "https://fabrikam-byok.vault.azure.net.", "whose host ends in a dot: every label of a host is 1 to 63 characters"),
		bad("uppercase", "https://Fabrikam-byok.vault.azure.net", "with an upper-case letter: a vault URL is in lower case"),
		bad("underscore", "https://fabrikam_byok.vault.azure.net", "with an underscore in its host: a label is letters, digits and inner dashes"),
		bad("port-leading-zero", "https://fabrikam-byok.vault.azure.net:0443", "whose port has a leading zero"),
		{"valid-vault-url-ipv6-port", "success",
			"A whole ceremony for a vault at https://[2001:db8::1]:8443 (a canonical IPv6 address and a port), which every key identifier of the ceremony names as written.",
			func(v *vec) error {
				c := must(v.ceremony(chaintest.Config{Vault: "https://[2001:db8::1]:8443"}))
				must(c.Full(payload.RSA3072))
				v.anchor = c.PolicyID
				return nil
			}},
	}
}

// keyOpsVectors: a target's key_ops are any non-empty sorted set of the operations its kty
// allows; there is no default in a bundle (1.0.1 item 16).
func keyOpsVectors() []vector {
	return []vector{
		{"valid-key-ops-subset", "success",
			`An RSA-3072 key package (offline seq 4) whose target has "key_ops":["sign","verify"], a subset of what RSA allows, approved and imported.`,
			func(v *vec) error {
				c, pkg := packageWith(v, chaintest.Config{}, payload.RSA3072, func(k *payload.KeyPackage) { k.Target.KeyOps = []string{"sign", "verify"} })
				must(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
				must(c.Receipt(pkg))
				return nil
			}},
		{"target-key-ops-not-allowed", "malformed",
			`An EC P-256 key package (offline seq 4) whose target has "key_ops":["encrypt","sign"]: Key Vault's EC keys sign and verify only.`,
			func(v *vec) error {
				packageWith(v, chaintest.Config{}, payload.ECP256, func(k *payload.KeyPackage) { k.Target.KeyOps = []string{"encrypt", "sign"} })
				v.expectAt(offline, 4)
				return nil
			}},
	}
}
