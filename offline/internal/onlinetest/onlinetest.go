// Package onlinetest plays the online station in byok-offline's tests: on a medium that the
// real byok-offline writes to, it writes what an honest (or deliberately faulty) byok-online
// would write: its enrollment, KEK offers and upload receipts. It is built on
// transfer-format/chaintest, whose fixed test keys it uses: the KEK private keys are public
// test fixtures, so tests can unwrap every .byok byok-offline makes.
//
// It is test support only; no production code imports it.
package onlinetest

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// DefaultSeed derives the online station key when no other seed is given.
const DefaultSeed = 1

// DefaultVault is the premium vault of the tests.
const DefaultVault = "https://contoso-byok.vault.azure.net"

// KEK returns the private half of the test KEK of the given size (2048, 3072 or 4096).
func KEK(bits int) *rsa.PrivateKey { return chaintest.RSAKey(fmt.Sprintf("kek-%d", bits)) }

// Station is the online station of a test, on one medium.
type Station struct {
	C   *chaintest.Ceremony
	dir string
}

// Open returns the online station for the medium in dir (created if needed), with its key
// derived from seed, positioned after whatever both chains on the medium hold.
func Open(dir string, seed uint64) (*Station, error) {
	// It writes the format version byok-online writes, recording the running binary as
	// byok-online does.
	ts, err := station.Toolset()
	if err != nil {
		return nil, err
	}
	c, err := chaintest.New(chaintest.Config{Dir: dir, Seed: seed, Step: time.Second, Version: bundle.Version})
	if err != nil {
		return nil, err
	}
	c.Toolset = ts
	s := &Station{C: c, dir: dir}
	if err := s.sync(); err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the medium.
func (s *Station) Close() error { return s.C.Close() }

// Fingerprint returns the short form of the online station key's ID for seed: what the
// online operator reads aloud at init.
func Fingerprint(seed uint64) (string, error) {
	dir, err := os.MkdirTemp("", "onlinetest-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	c, err := chaintest.New(chaintest.Config{Dir: dir, Seed: seed, FastWrite: true})
	if err != nil {
		return "", err
	}
	defer c.Close()
	pk, err := payload.NewPublicKey(c.OnlineKey.Public())
	if err != nil {
		return "", err
	}
	return pk.ID().Short(), nil
}

// Fingerprint returns the short form of this station's key ID.
func (s *Station) Fingerprint() string {
	pk, err := payload.NewPublicKey(s.C.OnlineKey.Public())
	if err != nil {
		panic(err)
	}
	return pk.ID().Short()
}

// head reads the last bundle of chain c on the medium.
func (s *Station) head(c bundle.Chain) (chain.Head, *bundle.Bundle, error) {
	e, ok, err := s.C.M.Head(c)
	if err != nil || !ok {
		return chain.Head{}, nil, err
	}
	return s.headOf(e)
}

// headOf reads the bundle of entry e as a chain head.
func (s *Station) headOf(e media.Entry) (chain.Head, *bundle.Bundle, error) {
	data, err := s.C.M.Read(e)
	if err != nil {
		return chain.Head{}, nil, err
	}
	b, err := bundle.Parse(data)
	if err != nil {
		return chain.Head{}, nil, err
	}
	return chain.Head{Seq: b.Header.Seq, ID: b.ID(), Created: b.Header.Created}, b, nil
}

// sync reads both heads and the policy in force from the medium, and sets the clock to now
// or later (a chain's times never go back).
func (s *Station) sync() error {
	on, _, err := s.head(bundle.ChainOnline)
	if err != nil {
		return fmt.Errorf("online head: %w", err)
	}
	off, _, err := s.head(bundle.ChainOffline)
	if err != nil {
		return fmt.Errorf("offline head: %w", err)
	}
	s.C.Heads.Online, s.C.Heads.Offline = on, off
	clock := time.Now().Truncate(time.Second)
	for _, h := range []chain.Head{on, off} {
		if t := time.Unix(h.Created, 0); t.After(clock) {
			clock = t
		}
	}
	s.C.Clock = clock
	s.C.PolicyID = bundle.ID{}
	for e, err := range s.C.M.Entries(bundle.ChainOffline, 1, nil) {
		if err != nil {
			return err
		}
		data, err := s.C.M.Read(e)
		if err != nil {
			return err
		}
		h, err := bundle.ParseHeader(data)
		if err != nil {
			return err
		}
		if h.Kind == bundle.KindPolicy {
			s.C.PolicyID = e.ID
		}
	}
	return nil
}

// Enroll writes the online station's enrollment (the online chain's genesis).
func (s *Station) Enroll() (*bundle.Bundle, error) {
	pk, err := payload.NewPublicKey(s.C.OnlineKey.Public())
	if err != nil {
		return nil, err
	}
	return s.C.Append(bundle.ChainOnline, &payload.Enrollment{Station: "online", Name: "online-station", Key: pk, Software: "onlinetest"})
}

// OfferOptions describe a KEK offer. Zero values take defaults.
type OfferOptions struct {
	Vault      string        // default DefaultVault
	ManagedHSM bool          // the vault is a Managed HSM: the offer carries an attestation
	Bits       int           // KEK size, default 3072
	KEKExpires time.Duration // the KEK's expiry, relative to now; default 30 days
	Lifetime   time.Duration // the offer bundle's lifetime; default 7 days
	Name       string        // the KEK's name in the vault; default "kek"
}

// Offer writes a KEK offer on the online chain and returns it with its payload.
func (s *Station) Offer(o OfferOptions) (*bundle.Bundle, *payload.KEKOffer, error) {
	if o.Vault == "" {
		o.Vault = DefaultVault
	}
	if o.Bits == 0 {
		o.Bits = 3072
	}
	if o.KEKExpires == 0 {
		o.KEKExpires = 30 * 24 * time.Hour
	}
	if o.Name == "" {
		o.Name = "kek"
	}
	kek := KEK(o.Bits)
	version := fmt.Sprintf("%032x", s.C.Heads.Online.Seq+1)
	offer := &payload.KEKOffer{
		Vault: o.Vault, KID: o.Vault + "/keys/" + o.Name + "/" + version,
		Kty: "RSA-HSM", KeySize: o.Bits, KeyOps: []string{"import"},
		N: kek.N.Bytes(), E: big.NewInt(int64(kek.E)).Bytes(),
		Expires: s.C.Clock.Add(o.KEKExpires).Unix(),
	}
	if o.ManagedHSM {
		offer.Attestation = s.C.Attestation()
	}
	var opts []chaintest.Option
	if o.Lifetime != 0 {
		created := s.C.Clock.Unix()
		life := int64(o.Lifetime / time.Second)
		opts = append(opts, chaintest.Mutate(func(d *bundle.Draft) { d.Expires = created + life }))
	}
	b, err := s.C.Append(bundle.ChainOnline, offer, opts...)
	if err != nil {
		return nil, nil, err
	}
	s.C.RegisterOffer(b.ID(), offer)
	return b, offer, nil
}

// Rewind positions the station's online head at seq-1, so that its next bundle is a second,
// validly signed bundle at seq: a fork made by someone holding the online station's key.
func (s *Station) Rewind(seq uint64) error {
	if seq < 2 || seq > s.C.Heads.Online.Seq {
		return fmt.Errorf("rewind to seq %d: the online chain holds seqs 1 to %d", seq, s.C.Heads.Online.Seq)
	}
	e, err := s.C.M.Find(bundle.ChainOnline, seq-1)
	if err != nil {
		return err
	}
	h, _, err := s.headOf(e)
	s.C.Heads.Online = h
	return err
}

// AttestationRootPEM returns the certificate that the stand-in Managed HSM attestations of
// this station chain to, PEM encoded.
func (s *Station) AttestationRootPEM() []byte {
	a := s.C.Attestation()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Certificates[len(a.Certificates)-1]})
}

// Receipt outcomes Receipt can write, beyond the payload's.
const (
	// OutcomeWrongKey is an "imported" receipt whose public key is not the packaged one, as
	// if Key Vault held another key.
	OutcomeWrongKey = "wrong-key"
)

// Receipt writes a receipt for the key package with the given ID on the online chain:
// payload.OutcomeImported (honest), payload.OutcomeRejected, payload.OutcomePublicKeyMismatch
// or OutcomeWrongKey.
func (s *Station) Receipt(pkg bundle.ID, outcome string) (*bundle.Bundle, error) {
	e, err := s.find(pkg)
	if err != nil {
		return nil, err
	}
	data, err := s.C.M.Read(e)
	if err != nil {
		return nil, err
	}
	b, err := bundle.Parse(data)
	if err != nil {
		return nil, err
	}
	r, err := s.C.ReceiptPayload(b)
	if err != nil {
		return nil, err
	}
	other, err := x509.MarshalPKIXPublicKey(s.C.Key("not-the-packaged-key").Public())
	if err != nil {
		return nil, err
	}
	switch outcome {
	case payload.OutcomeImported:
	case payload.OutcomeRejected:
		r.Outcome, r.KID, r.PublicKey, r.Created, r.Tags = payload.OutcomeRejected, "", nil, 0, nil
		r.Error = "BadParameter: the key could not be imported"
	case payload.OutcomePublicKeyMismatch:
		r.Outcome, r.PublicKey = payload.OutcomePublicKeyMismatch, other
	case OutcomeWrongKey:
		r.PublicKey = other
	default:
		return nil, fmt.Errorf("unknown receipt outcome %q", outcome)
	}
	return s.C.Append(bundle.ChainOnline, r)
}

// find returns the entry of the offline bundle with the given ID.
func (s *Station) find(id bundle.ID) (media.Entry, error) {
	for e, err := range s.C.M.Entries(bundle.ChainOffline, 1, nil) {
		if err != nil {
			return media.Entry{}, err
		}
		if e.ID == id {
			return e, nil
		}
	}
	return media.Entry{}, fmt.Errorf("no offline bundle %s on the medium", id.Short())
}

// Packages returns the IDs of the key packages on the offline chain that have no receipt
// on the online chain, in order.
func (s *Station) Packages() ([]bundle.ID, error) {
	var pkgs []bundle.ID
	for e, err := range s.C.M.Entries(bundle.ChainOffline, 1, nil) {
		if err != nil {
			return nil, err
		}
		data, err := s.C.M.Read(e)
		if err != nil {
			return nil, err
		}
		if h, err := bundle.ParseHeader(data); err == nil && h.Kind == bundle.KindKeyPackage {
			pkgs = append(pkgs, e.ID)
		}
	}
	done := map[bundle.ID]bool{}
	for e, err := range s.C.M.Entries(bundle.ChainOnline, 1, nil) {
		if err != nil {
			return nil, err
		}
		data, err := s.C.M.Read(e)
		if err != nil {
			return nil, err
		}
		b, err := bundle.Parse(data)
		if err != nil || b.Header.Kind != bundle.KindReceipt {
			continue
		}
		p, err := b.Open()
		if err != nil {
			return nil, err
		}
		var r payload.Receipt
		if err := payload.Unmarshal(p, &r); err != nil {
			return nil, err
		}
		if r.Outcome != payload.OutcomeRejected {
			done[r.Package] = true
		}
	}
	var out []bundle.ID
	for _, id := range pkgs {
		if !done[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// File returns the path of bundle b on the medium.
func (s *Station) File(b *bundle.Bundle) string { return s.C.File(b) }

// Tamper flips one bit of the file at path, in the stored payload when the file is long
// enough, as a faulty stick or a forger would.
func Tamper(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return errors.New("tamper: empty file")
	}
	i := len(data) - 1
	if len(data) > bundle.HeaderSize+bundle.SignatureSize+8 {
		i = bundle.HeaderSize + bundle.SignatureSize + 4
	}
	data[i] ^= 0x01
	if err := os.Chmod(path, 0o644); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o444)
}
