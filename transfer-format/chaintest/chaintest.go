// Package chaintest builds transfer media for tests: whole ceremonies with software keys, and
// deliberately broken variants of them.
//
// Everything is derived from a seed: equal configurations give byte-identical media (ECDSA
// signatures use RFC 6979 nonces, Ed25519 is deterministic, and the RSA keys are fixed test
// keys embedded in the package). The keys are public test fixtures: never use them for
// anything real.
package chaintest

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

//go:embed testdata/*.pem
var fixtures embed.FS

// RSAKey returns one of the embedded RSA test keys: "kek-2048", "kek-3072", "kek-4096",
// "target-rsa-2048", "target-rsa-3072", "target-rsa-4096".
func RSAKey(name string) *rsa.PrivateKey {
	b, err := fixtures.ReadFile("testdata/" + name + ".pem")
	if err != nil {
		panic(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		panic(err)
	}
	return k.(*rsa.PrivateKey)
}

// Config describes a ceremony. The zero value of every field has a default.
type Config struct {
	Dir        string        // medium folder (required)
	Seed       uint64        // derives every key and random byte
	Start      time.Time     // time of the first bundle; default 2026-01-05 09:00 UTC
	Step       time.Duration // clock advance per bundle; default 1 minute
	Custodians int           // default 3
	Threshold  int           // default 2
	Vault      string        // default https://contoso-byok.vault.azure.net
	VaultKind  string        // default premium
	KEKBits    int           // default 3072
	Lifetime   time.Duration // bundle lifetime; default 7 days
	// KeyTypes allowed by the policy; default all.
	KeyTypes       []payload.KeyType
	AllowWeakerKEK bool
	// FastWrite writes each bundle straight to its final path, without a temporary file,
	// fsync or read-back: the same bytes at the same paths as the media package writes, in a
	// fraction of the time. It is for large fixtures such as benchmarks; tests of the media
	// package's crash safety must not use it.
	FastWrite bool
	// Version is the format version the stations write; default 1 (the version the test
	// vectors of version 1 were made with). Ceremony.Version changes it midway.
	Version uint16
}

// TestToolset is the toolset chaintest records in version 2 payloads: a fixed value, not a
// real binary's.
var TestToolset = payload.Toolset{Version: "chaintest", SHA256: "7e57ba5e000000000000000000000000000000000000000000000000000000c4"}

// Ceremony is both stations of a ceremony in software.
type Ceremony struct {
	cfg        Config
	M          *media.Media
	OfflineKey *ecdsa.PrivateKey
	OnlineKey  ed25519.PrivateKey
	Custodians []*ecdsa.PrivateKey
	KEK        *rsa.PrivateKey // private half of the KEK that Offer offers
	Clock      time.Time
	Policy     *payload.Policy
	PolicyID   bundle.ID
	Heads      chain.Heads
	// Seen is what each station has seen of the other chain: Seen.Offline is the offline
	// station's view of the online chain. Append updates it from Heads unless told not to.
	Seen    chain.Heads
	Written []*bundle.Bundle // every bundle, in the order written
	// Version is the format version Append writes and Approval signs for; Toolset is what a
	// version 2 payload records unless it records one already.
	Version uint16
	Toolset payload.Toolset
	rnd     io.Reader
	offers  map[bundle.ID]*payload.KEKOffer
	kekPriv map[string]*rsa.PrivateKey // by kid
	targets map[bundle.ID]any          // private target key by package ID
}

// New creates the stations' keys and opens (initialising) the medium. It writes nothing.
func New(cfg Config) (*Ceremony, error) {
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	}
	if cfg.Step == 0 {
		cfg.Step = time.Minute
	}
	if cfg.Custodians == 0 {
		cfg.Custodians = 3
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = 2
	}
	if cfg.Vault == "" {
		cfg.Vault = "https://contoso-byok.vault.azure.net"
	}
	if cfg.VaultKind == "" {
		cfg.VaultKind = payload.VaultPremium
	}
	if cfg.KEKBits == 0 {
		cfg.KEKBits = 3072
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 7 * 24 * time.Hour
	}
	if cfg.KeyTypes == nil {
		cfg.KeyTypes = payload.KeyTypes
	}
	if cfg.Version == 0 {
		cfg.Version = bundle.Version1
	}
	m, err := initMedia(cfg)
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], cfg.Seed)
	c := &Ceremony{
		cfg: cfg, M: m, Clock: cfg.Start, Version: cfg.Version, Toolset: TestToolset,
		rnd:     rand.NewChaCha8(seed),
		offers:  map[bundle.ID]*payload.KEKOffer{},
		kekPriv: map[string]*rsa.PrivateKey{},
		targets: map[bundle.ID]any{},
	}
	c.OfflineKey = c.ecKey(elliptic.P256(), "offline")
	c.OnlineKey = ed25519.NewKeyFromSeed(c.derive("online"))
	for i := range cfg.Custodians {
		c.Custodians = append(c.Custodians, c.ecKey(elliptic.P256(), "custodian-"+strconv.Itoa(i)))
	}
	c.KEK = RSAKey("kek-" + strconv.Itoa(cfg.KEKBits))
	return c, nil
}

// initMedia is media.Init, or for fast writes its result without the fsyncs: the folder
// and the marker file.
func initMedia(cfg Config) (*media.Media, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	if !cfg.FastWrite {
		return media.Init(cfg.Dir)
	}
	f, err := os.OpenFile(filepath.Join(cfg.Dir, media.MarkerName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	switch {
	case err == nil:
		_, err = f.WriteString(media.MarkerContent)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	case !errors.Is(err, fs.ErrExist):
		return nil, err
	}
	return media.Open(cfg.Dir)
}

// Close closes the medium.
func (c *Ceremony) Close() error { return c.M.Close() }

// derive returns 32 bytes derived from the seed and a label.
func (c *Ceremony) derive(label string) []byte {
	h := sha256.Sum256([]byte(fmt.Sprintf("chaintest/%d/%s", c.cfg.Seed, label)))
	return h[:]
}

func (c *Ceremony) ecKey(curve elliptic.Curve, label string) *ecdsa.PrivateKey {
	size := (curve.Params().BitSize + 7) / 8
	for i := 0; ; i++ {
		d := c.derive(label + "/" + strconv.Itoa(i))
		for len(d) < size {
			d = append(d, c.derive(label+"/more/"+strconv.Itoa(len(d)))...)
		}
		d = d[:size]
		if curve == elliptic.P521() {
			d[0] &= 1
		}
		k, err := ecdsa.ParseRawPrivateKey(curve, d)
		if err == nil {
			return k
		}
	}
}

// Rand returns the ceremony's deterministic random stream.
func (c *Ceremony) Rand() io.Reader { return c.rnd }

func (c *Ceremony) signer(ch bundle.Chain) crypto.Signer {
	if ch == bundle.ChainOffline {
		return c.OfflineKey
	}
	return c.OnlineKey
}

// Option changes one Append.
type Option func(*appendOpts)

type appendOpts struct {
	mutate func(*bundle.Draft)
	signer crypto.Signer
	noSync bool
	write  bool
	policy *bundle.ID
}

// Mutate edits the draft before it is sealed; the bundle is still properly signed.
func Mutate(f func(*bundle.Draft)) Option { return func(o *appendOpts) { o.mutate = f } }

// SignWith seals the bundle with another key.
func SignWith(s crypto.Signer) Option { return func(o *appendOpts) { o.signer = s } }

// NoSync keeps the station's view of the other chain as it was.
func NoSync() Option { return func(o *appendOpts) { o.noSync = true } }

// NoWrite seals the bundle but neither writes it nor advances the chain.
func NoWrite() Option { return func(o *appendOpts) { o.write = false } }

// UnderPolicy overrides the policy ID in the header.
func UnderPolicy(id bundle.ID) Option { return func(o *appendOpts) { o.policy = &id } }

// Append seals payload v as the next bundle of chain ch, signed by the station key, and
// writes it to the medium. Before writing, the station syncs: it sees the other chain's head.
func (c *Ceremony) Append(ch bundle.Chain, v any, opts ...Option) (*bundle.Bundle, error) {
	o := appendOpts{write: true}
	for _, f := range opts {
		f(&o)
	}
	seen := c.Seen.Of(ch)
	if !o.noSync {
		*seen = *c.Heads.Of(ch.Other())
	}
	ts := c.Toolset
	pos := chain.Position{Chain: ch, Head: *c.Heads.Of(ch), Peer: *seen, Policy: c.PolicyID, Version: c.Version, Toolset: &ts}
	if _, ok := v.(*payload.Enrollment); ok {
		pos.Policy = bundle.ID{}
	}
	if p, ok := v.(*payload.Policy); ok {
		pos.Policy = p.Previous
	}
	if o.policy != nil {
		pos.Policy = *o.policy
	}
	d, err := chain.Draft(pos, v, c.Clock, c.cfg.Lifetime)
	if err != nil {
		return nil, err
	}
	if o.mutate != nil {
		o.mutate(&d)
	}
	s := o.signer
	if s == nil {
		s = c.signer(ch)
	}
	// A nil random source gives RFC 6979 ECDSA signatures: reproducible media.
	b, err := bundle.Seal(d, s, nil)
	if err != nil {
		return nil, err
	}
	if !o.write {
		return b, nil
	}
	if err := c.write(b); err != nil {
		return nil, err
	}
	c.Clock = c.Clock.Add(c.cfg.Step)
	*c.Heads.Of(ch) = chain.Head{Seq: b.Header.Seq, ID: b.ID(), Created: b.Header.Created}
	c.Written = append(c.Written, b)
	return b, nil
}

// write puts b on the medium, through the media package unless the configuration asks for
// fast writes.
func (c *Ceremony) write(b *bundle.Bundle) error {
	if !c.cfg.FastWrite {
		_, err := c.M.Write(b)
		return err
	}
	p := c.File(b)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if _, err := f.Write(b.Marshal()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// File returns the path of bundle b on the medium (whether or not it was written).
func (c *Ceremony) File(b *bundle.Bundle) string {
	return filepath.Join(c.M.Dir(), filepath.FromSlash(media.Path(b.Header.Chain, b.Header.Seq, b.ID())))
}

// Key returns an ECDSA P-256 key derived from the seed and label, e.g. for a custodian added
// by a later policy version or for a station of another ceremony. The station and custodian
// keys of New are Key("offline") and Key("custodian-<i>").
func (c *Ceremony) Key(label string) *ecdsa.PrivateKey { return c.ecKey(elliptic.P256(), label) }

// Forge returns the bundle file made of header (256 bytes, taken as they are, so a test can
// write any version or length), the station signature of signer over the resulting bundle
// ID, and stored; and that ID. It is for test vectors that need a properly signed bundle the
// bundle package would refuse to seal.
func Forge(header []byte, stored []byte, signer crypto.Signer) ([]byte, bundle.ID, error) {
	if len(header) != bundle.HeaderSize {
		return nil, bundle.ID{}, fmt.Errorf("forge: header of %d bytes, want %d", len(header), bundle.HeaderSize)
	}
	id := bundle.IDOfHeader(header)
	sig, err := bundle.Sign(signer, nil, bundle.SignatureMessage(binary.BigEndian.Uint16(header[8:10]), id))
	if err != nil {
		return nil, bundle.ID{}, fmt.Errorf("forge: %w", err)
	}
	out := make([]byte, 0, len(header)+len(sig)+len(stored))
	out = append(out, header...)
	out = append(out, sig[:]...)
	return append(out, stored...), id, nil
}

func pubKey(k crypto.PublicKey) payload.PublicKey {
	p, err := payload.NewPublicKey(k)
	if err != nil {
		panic(err)
	}
	return p
}

// NewPolicy returns version 1 of the policy the configuration describes.
func (c *Ceremony) NewPolicy() *payload.Policy {
	p := &payload.Policy{
		Version:               1,
		OfflineStation:        pubKey(c.OfflineKey.Public()),
		OnlineStation:         pubKey(c.OnlineKey.Public()),
		Threshold:             c.cfg.Threshold,
		Vaults:                []payload.Vault{{URL: c.cfg.Vault, Kind: c.cfg.VaultKind, Region: "westeurope"}},
		MinKEKBits:            2048,
		KeyTypes:              payload.SortKeyTypes(c.cfg.KeyTypes),
		AllowWeakerKEK:        c.cfg.AllowWeakerKEK,
		BundleLifetimeSeconds: int64(c.cfg.Lifetime / time.Second),
		MaxClockSkewSeconds:   300,
	}
	for i, k := range c.Custodians {
		p.Custodians = append(p.Custodians, payload.Custodian{Name: "custodian-" + strconv.Itoa(i+1), Key: pubKey(k.Public())})
	}
	return p
}

// Enroll writes the online enrollment, then the offline one.
func (c *Ceremony) Enroll() error {
	if _, err := c.Append(bundle.ChainOnline, &payload.Enrollment{Station: "online", Name: "online-station", Key: pubKey(c.OnlineKey.Public()), Software: "chaintest"}); err != nil {
		return err
	}
	_, err := c.Append(bundle.ChainOffline, &payload.Enrollment{Station: "offline", Name: "offline-station", Key: pubKey(c.OfflineKey.Public()), Software: "chaintest",
		HSM: &payload.TokenInfo{Label: "station", Manufacturer: "chaintest", Model: "software"}})
	return err
}

// Setup writes both enrollments, policy version 1 and the approval that puts it in force.
func (c *Ceremony) Setup() error { return c.SetupWith(nil) }

// SetupWith is Setup with policy version 1 changed by edit (if not nil) before it is
// written.
func (c *Ceremony) SetupWith(edit func(p *payload.Policy)) error {
	if err := c.Enroll(); err != nil {
		return err
	}
	p := c.NewPolicy()
	if edit != nil {
		edit(p)
	}
	b, err := c.Append(bundle.ChainOffline, p)
	if err != nil {
		return err
	}
	c.Policy, c.PolicyID = p, b.ID()
	idx := make([]int, c.cfg.Threshold)
	for i := range idx {
		idx[i] = i
	}
	_, err = c.Approve(b.ID(), bundle.KindPolicy, idx...)
	return err
}

// Approval returns an approval of target by the custodians with the given indexes.
func (c *Ceremony) Approval(target bundle.ID, kind bundle.Kind, custodians ...int) *payload.Approval {
	keys := make([]*ecdsa.PrivateKey, len(custodians))
	for j, i := range custodians {
		keys[j] = c.Custodians[i]
	}
	return c.ApprovalBy(target, kind, keys...)
}

// ApprovalBy returns an approval of target signed by the given keys, which need not be
// custodians of any policy.
func (c *Ceremony) ApprovalBy(target bundle.ID, kind bundle.Kind, keys ...*ecdsa.PrivateKey) *payload.Approval {
	a := &payload.Approval{Target: target, TargetKind: kind.String()}
	for _, k := range keys {
		sig, err := bundle.Approve(k, nil, c.Version, target)
		if err != nil {
			panic(err)
		}
		a.Signatures = append(a.Signatures, payload.Signature{Custodian: pubKey(k.Public()).ID(), Sig: sig[:]})
	}
	payload.SortSignatures(a.Signatures)
	return a
}

// Approve writes an approval of target by the custodians with the given indexes.
func (c *Ceremony) Approve(target bundle.ID, kind bundle.Kind, custodians ...int) (*bundle.Bundle, error) {
	return c.Append(bundle.ChainOffline, c.Approval(target, kind, custodians...))
}

// OfferPayload returns a KEK offer for the configured vault, with the ceremony's KEK. For a
// Managed HSM it carries an attestation, as an honest online station's does (see
// Attestation).
func (c *Ceremony) OfferPayload(version string) *payload.KEKOffer {
	pub := &c.KEK.PublicKey
	o := &payload.KEKOffer{
		Vault: c.cfg.Vault, KID: c.cfg.Vault + "/keys/kek/" + version,
		Kty: "RSA-HSM", KeySize: pub.N.BitLen(), KeyOps: []string{"import"},
		N: pub.N.Bytes(), E: big.NewInt(int64(pub.E)).Bytes(),
		Expires: c.Clock.Add(30 * 24 * time.Hour).Unix(),
	}
	if c.cfg.VaultKind == payload.VaultManagedHSM {
		o.Attestation = c.Attestation()
	}
	return o
}

// Attestation returns a stand-in for a Managed HSM key attestation: a fixed blob and one
// self-signed Ed25519 certificate derived from the seed. It has the shape the format checks
// (§7.3), not the content of a real one.
func (c *Ceremony) Attestation() *payload.Attestation {
	key := ed25519.NewKeyFromSeed(c.derive("attestation"))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "chaintest attestation root"},
		NotBefore:    c.cfg.Start.Add(-24 * time.Hour),
		NotAfter:     c.cfg.Start.Add(10 * 365 * 24 * time.Hour),
		IsCA:         true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	// Ed25519 signatures are deterministic and CreateCertificate draws nothing else from
	// rand, so the certificate is a function of the seed.
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	return &payload.Attestation{Format: "chaintest", Data: c.derive("attestation/data"), Certificates: [][]byte{der}}
}

// Offer writes a KEK offer on the online chain.
func (c *Ceremony) Offer(opts ...Option) (*bundle.Bundle, error) {
	return c.OfferIn(c.cfg.Vault, opts...)
}

// OfferIn writes a KEK offer for vault (of the configured kind) on the online chain, with the
// ceremony's KEK.
func (c *Ceremony) OfferIn(vault string, opts ...Option) (*bundle.Bundle, error) {
	o := c.OfferPayload(fmt.Sprintf("%032x", len(c.offers)+1))
	o.Vault, o.KID = vault, strings.Replace(o.KID, c.cfg.Vault, vault, 1)
	b, err := c.Append(bundle.ChainOnline, o, opts...)
	if err != nil {
		return nil, err
	}
	c.offers[b.ID()] = o
	c.kekPriv[o.KID] = c.KEK
	return b, nil
}

// TargetKey returns a software target key of type kt derived from the seed, its encoding for
// wrapping (PKCS#8, or raw AES bytes), and its public SPKI or AES check value.
func (c *Ceremony) TargetKey(kt payload.KeyType, label string) (priv any, encoded, spki, kcv []byte) {
	switch {
	case kt.Kty() == "RSA-HSM":
		k := RSAKey("target-rsa-" + strconv.Itoa(kt.Size()))
		priv = k
	case kt.Kty() == "EC-HSM":
		curves := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}
		priv = c.ecKey(curves[kt.Curve()], "target/"+label)
	default:
		key := c.derive("aes/" + label)[:kt.Size()/8]
		return key, key, nil, AESCheckValue(key)
	}
	encoded, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		panic(err)
	}
	spki, err = x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
	if err != nil {
		panic(err)
	}
	return priv, encoded, spki, nil
}

// AESCheckValue returns the key check value the manifest carries for AES keys: the first
// three bytes of AES-ECB of a zero block.
func AESCheckValue(key []byte) []byte {
	blk, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	var out [aes.BlockSize]byte
	blk.Encrypt(out[:], out[:])
	return out[:3]
}

// PackagePayload returns a key package of a software key of type kt named name, wrapped with
// the KEK of the given offer.
func (c *Ceremony) PackagePayload(offer bundle.ID, kt payload.KeyType, name string) (*payload.KeyPackage, error) {
	o, ok := c.offers[offer]
	if !ok {
		return nil, fmt.Errorf("no offer %s", offer.Short())
	}
	_, enc, spki, kcv := c.TargetKey(kt, name)
	ct, err := keywrap.WrapRSAAES(c.rnd, o.PublicKey(), enc)
	if err != nil {
		return nil, err
	}
	f, err := byok.New(o.KID, ct, "chaintest")
	if err != nil {
		return nil, err
	}
	return &payload.KeyPackage{
		Vault: o.Vault, KeyName: name,
		KEK:       payload.KEKRef{Offer: offer, KID: o.KID},
		Target:    payload.Target{Kty: kt.Kty(), KeySize: kt.Size(), Curve: kt.Curve(), KeyOps: kt.DefaultKeyOps(), Enabled: true},
		PublicKey: spki, KCV: kcv,
		BYOK: f.Marshal(),
		Provenance: payload.Provenance{Tool: "chaintest",
			Token: payload.TokenInfo{Label: "station", Manufacturer: "chaintest", Model: "software"},
			Key:   payload.KeyAttributes{Label: name, ID: "01", Attributes: map[string]string{"CKA_LOCAL": "true"}},
			Wrap:  payload.WrapInfo{Path: "software", Mechanisms: []string{"CKM_RSA_AES_KEY_WRAP"}, EphemeralKeyDestroyed: true}},
	}, nil
}

// RegisterOffer makes a KEK offer made elsewhere (by a real online station) usable by
// Package.
func (c *Ceremony) RegisterOffer(id bundle.ID, o *payload.KEKOffer) { c.offers[id] = o }

// Package writes a key package on the offline chain.
func (c *Ceremony) Package(offer bundle.ID, kt payload.KeyType, name string, opts ...Option) (*bundle.Bundle, error) {
	k, err := c.PackagePayload(offer, kt, name)
	if err != nil {
		return nil, err
	}
	return c.Append(bundle.ChainOffline, k, opts...)
}

// ReceiptPayload returns the receipt an honest online station writes after importing pkg.
func (c *Ceremony) ReceiptPayload(pkg *bundle.Bundle) (*payload.Receipt, error) {
	p, err := pkg.Open()
	if err != nil {
		return nil, err
	}
	var k payload.KeyPackage
	if err := payload.Unmarshal(p, &k); err != nil {
		return nil, err
	}
	return &payload.Receipt{
		Package: pkg.ID(), Vault: k.Vault, Outcome: payload.OutcomeImported,
		KID:       k.Vault + "/keys/" + k.KeyName + "/" + fmt.Sprintf("%032x", pkg.Header.Seq),
		PublicKey: k.PublicKey, Created: c.Clock.Unix(),
		Tags: map[string]string{"byok-package": pkg.ID().String()},
	}, nil
}

// Receipt writes an honest receipt for pkg on the online chain.
func (c *Ceremony) Receipt(pkg *bundle.Bundle, opts ...Option) (*bundle.Bundle, error) {
	r, err := c.ReceiptPayload(pkg)
	if err != nil {
		return nil, err
	}
	return c.Append(bundle.ChainOnline, r, opts...)
}

// Full runs a whole ceremony: setup, a KEK offer, one package of each given key type
// approved by the threshold, and a receipt for each. It returns the packages.
func (c *Ceremony) Full(types ...payload.KeyType) ([]*bundle.Bundle, error) {
	if err := c.Setup(); err != nil {
		return nil, err
	}
	off, err := c.Offer()
	if err != nil {
		return nil, err
	}
	var pkgs []*bundle.Bundle
	for i, kt := range types {
		p, err := c.Package(off.ID(), kt, fmt.Sprintf("key-%d", i+1))
		if err != nil {
			return nil, err
		}
		idx := make([]int, c.cfg.Threshold)
		for j := range idx {
			idx[j] = j
		}
		if _, err := c.Approve(p.ID(), bundle.KindKeyPackage, idx...); err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
	for _, p := range pkgs {
		if _, err := c.Receipt(p); err != nil {
			return nil, err
		}
	}
	return pkgs, nil
}

// Bytes returns the encoded bundle, for tests that mutate files.
func Bytes(b *bundle.Bundle) []byte { return bytes.Clone(b.Marshal()) }
