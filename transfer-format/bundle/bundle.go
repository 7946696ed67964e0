package bundle

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
)

// Bundle is a parsed transfer bundle (§4): header, station signature and stored payload.
// Its payload is not available until the signature has been checked; see [Bundle.Open].
type Bundle struct {
	Header    Header
	Signature [SignatureSize]byte
	Stored    []byte // the stored (zstd) payload, exactly Header.StoredLen bytes

	id ID
}

// ID returns the bundle ID (§4.2).
func (b *Bundle) ID() ID { return b.id }

// Parse checks the structure of an encoded bundle: the header (§4.1) and the exact total
// length. It does not verify the signature and does not touch the payload beyond its length.
// Errors wrap *ParseError (and *UnsupportedVersionError for an unknown version). The returned
// bundle keeps a reference to data.
func Parse(data []byte) (*Bundle, error) {
	if len(data) > MaxFileSize {
		return nil, &ParseError{What: "bundle", Err: fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), MaxFileSize)}
	}
	h, err := ParseHeader(data)
	if err != nil {
		return nil, err
	}
	want := HeaderSize + SignatureSize + int(h.StoredLen)
	switch {
	case len(data) < want:
		return nil, errorf("bundle", "truncated: %d of %d bytes", len(data), want)
	case len(data) > want:
		return nil, errorf("bundle", "%d trailing bytes", len(data)-want)
	}
	b := &Bundle{Header: *h, Stored: data[HeaderSize+SignatureSize:], id: IDOfHeader(data[:HeaderSize])}
	copy(b.Signature[:], data[HeaderSize:HeaderSize+SignatureSize])
	return b, nil
}

// Marshal returns the encoded bundle.
func (b *Bundle) Marshal() []byte {
	out := make([]byte, 0, HeaderSize+SignatureSize+len(b.Stored))
	h := b.Header.Marshal()
	out = append(out, h[:]...)
	out = append(out, b.Signature[:]...)
	return append(out, b.Stored...)
}

// VerifySignature checks the station signature with pub. It returns ErrBadSignature if pub
// is not the key the header names or the signature does not verify.
func (b *Bundle) VerifySignature(pub crypto.PublicKey) error {
	v, err := NewVerifier(pub)
	if err != nil {
		return err
	}
	return b.VerifySignatureWith(v)
}

// VerifySignatureWith is VerifySignature with a key prepared by NewVerifier, for callers
// that check many bundles with one key.
func (b *Bundle) VerifySignatureWith(v *Verifier) error {
	if v.id != b.Header.Signer {
		return fmt.Errorf("%w: signed by key %s, not %s", ErrBadSignature, b.Header.Signer.Short(), v.id.Short())
	}
	if v.alg != b.Header.Alg {
		return fmt.Errorf("%w: header says %s, key is %s", ErrBadSignature, b.Header.Alg, v.alg)
	}
	return Verify(v.pub, SignatureMessage(b.Header.Version, b.id), b.Signature)
}

// Verifier is a public key that can sign bundles, with its key ID and algorithm computed
// once.
type Verifier struct {
	pub crypto.PublicKey
	id  ID
	alg Alg
}

// NewVerifier prepares pub, which must be a key KeyID accepts, for VerifySignatureWith.
func NewVerifier(pub crypto.PublicKey) (*Verifier, error) {
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	alg, err := AlgOf(pub)
	if err != nil {
		return nil, err
	}
	return &Verifier{pub: pub, id: id, alg: alg}, nil
}

// ID returns the key ID.
func (v *Verifier) ID() ID { return v.id }

// PublicKey returns the key.
func (v *Verifier) PublicKey() crypto.PublicKey { return v.pub }

// Open checks the stored payload against its digest, decompresses it within the declared
// length, checks the decoded digest and returns the payload. Call it only after
// VerifySignature succeeded: the digests are trustworthy only then.
func (b *Bundle) Open() ([]byte, error) {
	sd := sha256.Sum256(b.Stored)
	if subtle.ConstantTimeCompare(sd[:], b.Header.StoredDigest[:]) != 1 {
		return nil, &HashMismatchError{What: "stored payload", Want: b.Header.StoredDigest[:], Got: sd[:]}
	}
	p, err := decompress(b.Stored, b.Header.PayloadLen)
	if err != nil {
		return nil, err
	}
	pd := sha256.Sum256(p)
	if !bytes.Equal(pd[:], b.Header.PayloadDigest[:]) {
		return nil, &HashMismatchError{What: "payload", Want: b.Header.PayloadDigest[:], Got: pd[:]}
	}
	return p, nil
}

// Draft is what a station supplies to make a bundle; Seal fills in the rest.
type Draft struct {
	Version uint16 // format version; 0 means Version, the newest
	Kind    Kind
	Chain   Chain
	Seq     uint64
	Prev    ID
	PeerSeq uint64
	Peer    ID
	Policy  ID
	Created int64
	Expires int64
	Payload []byte // canonical payload bytes (see the payload package)
}

// Seal compresses the payload, fills the header, signs the bundle ID with signer and checks
// the result: the returned bundle parses, and its signature verifies with signer's public key
// (so a faulty HSM cannot put a bad signature on the media).
func Seal(d Draft, signer crypto.Signer, rand io.Reader) (*Bundle, error) {
	pub := signer.Public()
	alg, err := AlgOf(pub)
	if err != nil {
		return nil, err
	}
	kid, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	if len(d.Payload) > MaxPayload {
		return nil, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrTooLarge, len(d.Payload), MaxPayload)
	}
	stored := compress(d.Payload)
	v := d.Version
	if v == 0 {
		v = Version
	}
	h := Header{
		Version: v,
		Kind:    d.Kind, Chain: d.Chain, Alg: alg,
		Seq: d.Seq, Prev: d.Prev, PeerSeq: d.PeerSeq, Peer: d.Peer,
		Policy: d.Policy, Signer: kid,
		Created: d.Created, Expires: d.Expires,
		PayloadLen:    uint32(len(d.Payload)),
		StoredLen:     uint32(len(stored)),
		PayloadDigest: sha256.Sum256(d.Payload),
		StoredDigest:  sha256.Sum256(stored),
	}
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	b := &Bundle{Header: h, Stored: stored, id: h.ID()}
	b.Signature, err = Sign(signer, rand, SignatureMessage(h.Version, b.id))
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	out, err := Parse(b.Marshal())
	if err != nil {
		return nil, fmt.Errorf("seal: re-parse: %w", err)
	}
	if err := out.VerifySignature(pub); err != nil {
		return nil, fmt.Errorf("seal: the signer produced a signature that does not verify: %w", err)
	}
	return out, nil
}
