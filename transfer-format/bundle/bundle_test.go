package bundle_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/klauspost/compress/zstd"
)

// Fixed test keys: an Ed25519 key from the all-zero seed and a P-256 key from a fixed scalar.
var (
	edKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	ecKey = func() *ecdsa.PrivateKey {
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{0x5a}, 32))
		if err != nil {
			panic(err)
		}
		return k
	}()
	ecKey2 = func() *ecdsa.PrivateKey {
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{0x3c}, 32))
		if err != nil {
			panic(err)
		}
		return k
	}()
)

func mustKeyID(t *testing.T, pub crypto.PublicKey) bundle.ID {
	t.Helper()
	id, err := bundle.KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// validHeader returns a header that passes every rule: a key package at offline seq 7.
func validHeader(t *testing.T) bundle.Header {
	t.Helper()
	return bundle.Header{
		Version: bundle.Version1,
		Kind:    bundle.KindKeyPackage, Chain: bundle.ChainOffline, Alg: bundle.AlgECDSAP256,
		Seq: 7, Prev: bundle.ID{1}, PeerSeq: 3, Peer: bundle.ID{2}, Policy: bundle.ID{3},
		Signer:  mustKeyID(t, ecKey.Public()),
		Created: 1_767_603_600, Expires: 1_767_603_600 + 86400,
		PayloadLen: 100, StoredLen: 50,
		PayloadDigest: [32]byte{4}, StoredDigest: [32]byte{5},
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := validHeader(t)
	enc := h.Marshal()
	got, err := bundle.ParseHeader(enc[:])
	if err != nil {
		t.Fatalf("ParseHeader(Marshal(h)) = %v", err)
	}
	if *got != h {
		t.Errorf("ParseHeader(Marshal(h)) = %+v, want %+v", *got, h)
	}
	// The layout of §4.1, field by field.
	if string(enc[0:8]) != bundle.Magic || binary.BigEndian.Uint16(enc[8:10]) != 1 ||
		enc[10] != 4 || enc[11] != 1 || enc[12] != 1 || enc[13] != 1 ||
		binary.BigEndian.Uint64(enc[16:24]) != 7 || enc[24] != 1 ||
		binary.BigEndian.Uint64(enc[56:64]) != 3 || enc[64] != 2 || enc[96] != 3 ||
		!bytes.Equal(enc[128:160], h.Signer[:]) ||
		binary.BigEndian.Uint64(enc[160:168]) != 1_767_603_600 ||
		binary.BigEndian.Uint32(enc[176:180]) != 100 || binary.BigEndian.Uint32(enc[180:184]) != 50 ||
		enc[184] != 4 || enc[216] != 5 || !bytes.Equal(enc[248:256], make([]byte, 8)) {
		t.Errorf("Marshal() = %x, not the layout of §4.1", enc)
	}
	// The bundle ID is SHA-256 over the domain string, a zero byte and the header.
	want := sha256.Sum256(append([]byte("airgap-byok/v1/bundle-id\x00"), enc[:]...))
	if id := h.ID(); id != bundle.ID(want) || bundle.IDOfHeader(enc[:]) != id {
		t.Errorf("ID() = %s, want %x", id, want)
	}
}

func TestIDOfHeaderKnownAnswer(t *testing.T) {
	// Computed independently: printf 'airgap-byok/v1/bundle-id\0' + 256 zero bytes | sha256sum.
	const want = "9752c2c7f5c7d2e445e36bcb23c6a5f7c4efd90025d0206b5e4af83d0a972b2e"
	if got := bundle.IDOfHeader(make([]byte, bundle.HeaderSize)).String(); got != want {
		t.Errorf("IDOfHeader(zeros) = %s, want %s", got, want)
	}
}

func TestParseHeaderRules(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(h *bundle.Header) // applied before Marshal
		raw     func(b []byte)         // applied to the encoded header
		wantErr error                  // sentinel, or nil for "a ParseError only"
		ok      bool
	}{
		{name: "valid", ok: true},
		{name: "valid first policy without a policy ID", ok: true, edit: func(h *bundle.Header) { h.Kind, h.Policy = bundle.KindPolicy, bundle.ID{} }},
		{name: "valid genesis", ok: true, edit: func(h *bundle.Header) {
			h.Kind, h.Seq, h.Prev, h.Policy, h.PeerSeq, h.Peer = bundle.KindEnrollment, 1, bundle.ID{}, bundle.ID{}, 0, bundle.ID{}
		}},
		{name: "valid online receipt with ed25519", ok: true, edit: func(h *bundle.Header) {
			h.Kind, h.Chain, h.Alg = bundle.KindReceipt, bundle.ChainOnline, bundle.AlgEd25519
		}},
		{name: "valid largest lengths", ok: true, edit: func(h *bundle.Header) { h.PayloadLen, h.StoredLen = bundle.MaxPayload, bundle.MaxStored }},
		{name: "valid largest seq", ok: true, edit: func(h *bundle.Header) { h.Seq, h.PeerSeq = bundle.MaxSeq, bundle.MaxSeq }},
		{name: "bad magic", raw: func(b []byte) { b[1] = 'b' }},
		{name: "text-mode copy (CR LF to LF)", raw: func(b []byte) { copy(b[5:], b[6:]) }},
		{name: "version 0", raw: func(b []byte) { b[9] = 0 }, wantErr: &bundle.UnsupportedVersionError{}},
		{name: "valid version 2", ok: true, edit: func(h *bundle.Header) { h.Version = bundle.Version2 }},
		{name: "version 3", raw: func(b []byte) { b[9] = 3 }, wantErr: &bundle.UnsupportedVersionError{}},
		{name: "version 256", raw: func(b []byte) { b[8] = 1 }, wantErr: &bundle.UnsupportedVersionError{}},
		{name: "unknown kind 0", edit: func(h *bundle.Header) { h.Kind = 0 }},
		{name: "unknown kind 7", edit: func(h *bundle.Header) { h.Kind = 7 }},
		{name: "unknown chain", edit: func(h *bundle.Header) { h.Chain = 3 }},
		{name: "receipt on the offline chain", edit: func(h *bundle.Header) { h.Kind = bundle.KindReceipt }},
		{name: "kek offer on the offline chain", edit: func(h *bundle.Header) { h.Kind = bundle.KindKEKOffer }},
		{name: "key package on the online chain", edit: func(h *bundle.Header) { h.Chain = bundle.ChainOnline }},
		{name: "policy on the online chain", edit: func(h *bundle.Header) { h.Chain, h.Kind = bundle.ChainOnline, bundle.KindPolicy }},
		{name: "unknown alg", edit: func(h *bundle.Header) { h.Alg = 3 }},
		{name: "encoding 0", raw: func(b []byte) { b[13] = 0 }},
		{name: "encoding 2", raw: func(b []byte) { b[13] = 2 }},
		{name: "reserved byte 14", raw: func(b []byte) { b[14] = 1 }},
		{name: "reserved byte 15", raw: func(b []byte) { b[15] = 0x80 }},
		{name: "reserved byte 248", raw: func(b []byte) { b[248] = 1 }},
		{name: "reserved byte 255", raw: func(b []byte) { b[255] = 1 }},
		{name: "seq 0", edit: func(h *bundle.Header) { h.Seq = 0 }},
		{name: "seq beyond MaxSeq", edit: func(h *bundle.Header) { h.Seq = bundle.MaxSeq + 1 }},
		{name: "seq 1 with a previous ID", edit: func(h *bundle.Header) { h.Seq, h.Kind, h.Policy = 1, bundle.KindEnrollment, bundle.ID{} }},
		{name: "seq 2 without a previous ID", edit: func(h *bundle.Header) { h.Prev = bundle.ID{} }},
		{name: "genesis that is not an enrollment", edit: func(h *bundle.Header) { h.Seq, h.Prev = 1, bundle.ID{} }},
		{name: "enrollment after the genesis", edit: func(h *bundle.Header) { h.Kind, h.Policy = bundle.KindEnrollment, bundle.ID{} }},
		{name: "peer seq beyond MaxSeq", edit: func(h *bundle.Header) { h.PeerSeq = bundle.MaxSeq + 1 }},
		{name: "peer seq 0 with a peer ID", edit: func(h *bundle.Header) { h.PeerSeq = 0 }},
		{name: "peer seq without a peer ID", edit: func(h *bundle.Header) { h.Peer = bundle.ID{} }},
		{name: "enrollment with a policy ID", edit: func(h *bundle.Header) {
			h.Kind, h.Seq, h.Prev = bundle.KindEnrollment, 1, bundle.ID{}
		}},
		{name: "key package without a policy ID", edit: func(h *bundle.Header) { h.Policy = bundle.ID{} }},
		{name: "approval without a policy ID", edit: func(h *bundle.Header) { h.Kind, h.Policy = bundle.KindApproval, bundle.ID{} }},
		{name: "zero signer", edit: func(h *bundle.Header) { h.Signer = bundle.ID{} }},
		{name: "created 0", edit: func(h *bundle.Header) { h.Created = 0 }},
		{name: "created negative", edit: func(h *bundle.Header) { h.Created = -5 }},
		{name: "expires at creation", edit: func(h *bundle.Header) { h.Expires = h.Created }},
		{name: "expires before creation", edit: func(h *bundle.Header) { h.Expires = h.Created - 1 }},
		{name: "empty payload", edit: func(h *bundle.Header) { h.PayloadLen = 0 }},
		{name: "empty stored payload", edit: func(h *bundle.Header) { h.StoredLen = 0 }},
		{name: "payload beyond MaxPayload", edit: func(h *bundle.Header) { h.PayloadLen = bundle.MaxPayload + 1 }, wantErr: bundle.ErrTooLarge},
		{name: "stored beyond MaxStored", edit: func(h *bundle.Header) { h.StoredLen = bundle.MaxStored + 1 }, wantErr: bundle.ErrTooLarge},
		{name: "payload length 2^32-1", edit: func(h *bundle.Header) { h.PayloadLen = 1<<32 - 1 }, wantErr: bundle.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := validHeader(t)
			if tt.edit != nil {
				tt.edit(&h)
			}
			enc := h.Marshal()
			if tt.raw != nil {
				tt.raw(enc[:])
			}
			got, err := bundle.ParseHeader(enc[:])
			if tt.ok {
				if err != nil {
					t.Fatalf("ParseHeader() = %v, want success", err)
				}
				if again := got.Marshal(); again != enc {
					t.Errorf("Marshal(ParseHeader(b)) != b")
				}
				return
			}
			if got != nil {
				t.Errorf("ParseHeader() returned a header with error %v", err)
			}
			var pe *bundle.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseHeader() = %v, want a *ParseError", err)
			}
			switch want := tt.wantErr.(type) {
			case nil:
				if errors.Is(err, bundle.ErrTooLarge) {
					t.Errorf("ParseHeader() = %v, want a ParseError that is not ErrTooLarge", err)
				}
			case *bundle.UnsupportedVersionError:
				var uv *bundle.UnsupportedVersionError
				if !errors.As(err, &uv) {
					t.Errorf("ParseHeader() = %v, want an UnsupportedVersionError", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("ParseHeader() = %v, want %v", err, want)
				}
			}
		})
	}
}

func TestParseHeaderShort(t *testing.T) {
	h := validHeader(t)
	enc := h.Marshal()
	for _, n := range []int{0, 8, 10, 255} {
		_, err := bundle.ParseHeader(enc[:n])
		var pe *bundle.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("ParseHeader(%d bytes) = %v, want a *ParseError", n, err)
		}
	}
}

func TestUnsupportedVersionReported(t *testing.T) {
	h := validHeader(t)
	enc := h.Marshal()
	binary.BigEndian.PutUint16(enc[8:10], 513)
	// A later version may change everything after the version field: nothing else is read.
	for i := 10; i < bundle.HeaderSize; i++ {
		enc[i] = 0xff
	}
	_, err := bundle.ParseHeader(enc[:])
	var uv *bundle.UnsupportedVersionError
	if !errors.As(err, &uv) || uv.Version != 513 {
		t.Fatalf("ParseHeader() = %v, want UnsupportedVersionError{513}", err)
	}
}

func draft(kind bundle.Kind, c bundle.Chain, payload []byte) bundle.Draft {
	d := bundle.Draft{Kind: kind, Chain: c, Seq: 2, Prev: bundle.ID{9}, Policy: bundle.ID{8},
		Created: 1_767_603_600, Expires: 1_767_603_600 + 3600, Payload: payload}
	if kind == bundle.KindEnrollment {
		d.Seq, d.Prev, d.Policy = 1, bundle.ID{}, bundle.ID{}
	}
	return d
}

func TestSealParseVerifyOpen(t *testing.T) {
	payload := []byte(`{"example":"` + strings.Repeat("payload ", 200) + `"}`)
	tests := []struct {
		name   string
		signer crypto.Signer
		chain  bundle.Chain
		kind   bundle.Kind
		alg    bundle.Alg
	}{
		{"ecdsa offline key package", ecKey, bundle.ChainOffline, bundle.KindKeyPackage, bundle.AlgECDSAP256},
		{"ed25519 online receipt", edKey, bundle.ChainOnline, bundle.KindReceipt, bundle.AlgEd25519},
		{"ed25519 online enrollment", edKey, bundle.ChainOnline, bundle.KindEnrollment, bundle.AlgEd25519},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := bundle.Seal(draft(tt.kind, tt.chain, payload), tt.signer, nil)
			if err != nil {
				t.Fatalf("Seal() = %v", err)
			}
			if b.Header.Alg != tt.alg || b.Header.Signer != mustKeyID(t, tt.signer.Public()) {
				t.Errorf("Seal() header alg %s signer %s, want %s and the signer's key ID", b.Header.Alg, b.Header.Signer.Short(), tt.alg)
			}
			if int(b.Header.StoredLen) >= len(payload) {
				t.Errorf("stored %d bytes for a %d-byte repetitive payload: not compressed", b.Header.StoredLen, len(payload))
			}
			enc := b.Marshal()
			if len(enc) != bundle.HeaderSize+bundle.SignatureSize+int(b.Header.StoredLen) {
				t.Errorf("Marshal() = %d bytes, want header + signature + stored", len(enc))
			}
			p, err := bundle.Parse(enc)
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			if p.ID() != b.ID() || p.ID() != bundle.IDOfHeader(enc[:bundle.HeaderSize]) {
				t.Errorf("Parse().ID() = %s, want %s", p.ID().Short(), b.ID().Short())
			}
			if !bytes.Equal(p.Marshal(), enc) {
				t.Errorf("Marshal(Parse(b)) != b")
			}
			if err := p.VerifySignature(tt.signer.Public()); err != nil {
				t.Fatalf("VerifySignature() = %v", err)
			}
			if err := p.VerifySignature(ecKey2.Public()); !errors.Is(err, bundle.ErrBadSignature) {
				t.Errorf("VerifySignature(another key) = %v, want ErrBadSignature", err)
			}
			got, err := p.Open()
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("Open() = %.20q, %v; want the payload", got, err)
			}

			// The same draft seals to the same bytes: the ID is a content address.
			again, err := bundle.Seal(draft(tt.kind, tt.chain, payload), tt.signer, nil)
			if err != nil || !bytes.Equal(again.Marshal(), enc) {
				t.Errorf("sealing twice gave different bytes (%v)", err)
			}

			// A flipped bit in the signature, the header or the payload is caught.
			sig := bytes.Clone(enc)
			sig[bundle.HeaderSize+5] ^= 1
			if err := mustParse(t, sig).VerifySignature(tt.signer.Public()); !errors.Is(err, bundle.ErrBadSignature) {
				t.Errorf("VerifySignature(flipped signature) = %v, want ErrBadSignature", err)
			}
			hdr := bytes.Clone(enc)
			hdr[167] ^= 1 // creation time: still a valid header, another ID
			if err := mustParse(t, hdr).VerifySignature(tt.signer.Public()); !errors.Is(err, bundle.ErrBadSignature) {
				t.Errorf("VerifySignature(flipped header) = %v, want ErrBadSignature", err)
			}
			st := bytes.Clone(enc)
			st[len(st)-1] ^= 1
			var hm *bundle.HashMismatchError
			if _, err := mustParse(t, st).Open(); !errors.As(err, &hm) || hm.What != "stored payload" {
				t.Errorf("Open(flipped stored payload) = %v, want a stored payload HashMismatchError", err)
			}
		})
	}
}

func mustParse(t *testing.T, b []byte) *bundle.Bundle {
	t.Helper()
	p, err := bundle.Parse(b)
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	return p
}

func TestParseLength(t *testing.T) {
	b, err := bundle.Seal(draft(bundle.KindReceipt, bundle.ChainOnline, []byte(`{"a":1}`)), edKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	enc := b.Marshal()
	tests := []struct {
		name    string
		data    []byte
		tooLarg bool
	}{
		{"empty", nil, false},
		{"header only", enc[:bundle.HeaderSize], false},
		{"no payload", enc[:bundle.HeaderSize+bundle.SignatureSize], false},
		{"one byte short", enc[:len(enc)-1], false},
		{"one trailing byte", append(bytes.Clone(enc), 0), false},
		{"larger than MaxFileSize", append(bytes.Clone(enc), make([]byte, bundle.MaxFileSize)...), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bundle.Parse(tt.data)
			var pe *bundle.ParseError
			if got != nil || !errors.As(err, &pe) || errors.Is(err, bundle.ErrTooLarge) != tt.tooLarg {
				t.Errorf("Parse() = %v, %v; want nil and a ParseError (too large: %v)", got, err, tt.tooLarg)
			}
		})
	}
}

// faultySigner signs something other than what it is asked to, as a broken HSM might.
type faultySigner struct{ *ecdsa.PrivateKey }

func (s faultySigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	other := sha256.Sum256(digest)
	return s.PrivateKey.Sign(rand, other[:], opts)
}

func TestSealRefuses(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(nil, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := draft(bundle.KindKeyPackage, bundle.ChainOffline, []byte(`{}`))
	tests := []struct {
		name    string
		d       bundle.Draft
		signer  crypto.Signer
		wantErr error
	}{
		{"rsa signer", ok, rsaKey, bundle.ErrUnsupportedKey},
		{"p-384 signer", ok, p384, bundle.ErrUnsupportedKey},
		{"payload beyond MaxPayload", draft(bundle.KindKeyPackage, bundle.ChainOffline, make([]byte, bundle.MaxPayload+1)), ecKey, bundle.ErrTooLarge},
		{"empty payload", draft(bundle.KindKeyPackage, bundle.ChainOffline, nil), ecKey, nil},
		{"kind not on the chain", draft(bundle.KindReceipt, bundle.ChainOffline, []byte(`{}`)), ecKey, nil},
		{"signer produces a bad signature", ok, faultySigner{ecKey}, bundle.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := bundle.Seal(tt.d, tt.signer, nil)
			if err == nil || b != nil {
				t.Fatalf("Seal() = %v, %v; want an error", b, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Seal() = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifySignatureAlgMismatch(t *testing.T) {
	b, err := bundle.Seal(draft(bundle.KindKeyPackage, bundle.ChainOffline, []byte(`{}`)), ecKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A header that names the right key but the wrong algorithm does not verify.
	b.Header.Alg = bundle.AlgEd25519
	if err := b.VerifySignature(ecKey.Public()); !errors.Is(err, bundle.ErrBadSignature) {
		t.Errorf("VerifySignature() = %v, want ErrBadSignature", err)
	}
}

// highS returns the signature with s replaced by n - s.
func highS(sig [bundle.SignatureSize]byte) [bundle.SignatureSize]byte {
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(n, s)
	s.FillBytes(sig[32:])
	return sig
}

func TestECDSAHighSRefused(t *testing.T) {
	msg := bundle.SignatureMessage(bundle.Version1, bundle.ID{1, 2, 3})
	sig, err := bundle.Sign(ecKey, nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	half := new(big.Int).Rsh(elliptic.P256().Params().N, 1)
	if new(big.Int).SetBytes(sig[32:]).Cmp(half) > 0 {
		t.Fatalf("Sign() returned a high S")
	}
	if err := bundle.Verify(ecKey.Public(), msg, sig); err != nil {
		t.Fatalf("Verify(low S) = %v", err)
	}
	// (r, n-s) is a valid ECDSA signature of the same message, so crypto/ecdsa accepts it;
	// the format does not: one signature per key and nonce.
	hs := highS(sig)
	digest := sha256.Sum256(msg)
	if !ecdsa.Verify(&ecKey.PublicKey, digest[:], new(big.Int).SetBytes(hs[:32]), new(big.Int).SetBytes(hs[32:])) {
		t.Fatal("crypto/ecdsa refuses the high-S form; the test is not testing anything")
	}
	if err := bundle.Verify(ecKey.Public(), msg, hs); !errors.Is(err, bundle.ErrBadSignature) {
		t.Errorf("Verify(high S) = %v, want ErrBadSignature", err)
	}
}

// highSSigner returns DER signatures with a high S, as some HSMs do.
type highSSigner struct{ *ecdsa.PrivateKey }

func (s highSSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	der, err := s.PrivateKey.Sign(nil, digest, opts)
	if err != nil {
		return nil, err
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		return nil, err
	}
	half := new(big.Int).Rsh(elliptic.P256().Params().N, 1)
	if rs.S.Cmp(half) <= 0 {
		rs.S.Sub(elliptic.P256().Params().N, rs.S)
	}
	return asn1.Marshal(rs)
}

func TestSignNormalisesHighS(t *testing.T) {
	msg := bundle.ApprovalMessage(bundle.Version1, bundle.ID{7})
	sig, err := bundle.Sign(highSSigner{ecKey}, nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Verify(ecKey.Public(), msg, sig); err != nil {
		t.Errorf("Verify(Sign(high-S signer)) = %v, want the low-S form that verifies", err)
	}
}

func TestEd25519(t *testing.T) {
	msg := bundle.SignatureMessage(bundle.Version1, bundle.ID{42})
	sig, err := bundle.Sign(edKey, nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(edKey.Public().(ed25519.PublicKey), msg, sig[:]) {
		t.Fatal("Sign() is not a plain RFC 8032 signature over the message")
	}
	tests := []struct {
		name string
		pub  crypto.PublicKey
		msg  []byte
		sig  [bundle.SignatureSize]byte
		ok   bool
	}{
		{"valid", edKey.Public(), msg, sig, true},
		{"other message", edKey.Public(), bundle.SignatureMessage(bundle.Version1, bundle.ID{43}), sig, false},
		{"approval domain", edKey.Public(), bundle.ApprovalMessage(bundle.Version1, bundle.ID{42}), sig, false},
		{"version 2 domain", edKey.Public(), bundle.SignatureMessage(bundle.Version2, bundle.ID{42}), sig, false},
		{"flipped bit", edKey.Public(), msg, func() [64]byte { s := sig; s[63] ^= 0x10; return s }(), false},
		{"short public key", ed25519.PublicKey(edKey.Public().(ed25519.PublicKey)[:31]), msg, sig, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := bundle.Verify(tt.pub, tt.msg, tt.sig)
			if tt.ok != (err == nil) || (!tt.ok && !errors.Is(err, bundle.ErrBadSignature)) {
				t.Errorf("Verify() = %v, want ok=%v or ErrBadSignature", err, tt.ok)
			}
		})
	}
}

func TestApprovalDomainSeparation(t *testing.T) {
	id := bundle.ID{1}
	for _, v := range []uint16{bundle.Version1, bundle.Version2} {
		other := bundle.Version1 + bundle.Version2 - v
		sig, err := bundle.Approve(ecKey, nil, v, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := bundle.VerifyApproval(ecKey.Public(), v, id, sig); err != nil {
			t.Fatalf("VerifyApproval(v%d) = %v", v, err)
		}
		// An approval is not a station signature over the same ID, nor an approval of
		// another, nor an approval of the same ID in another format version.
		if err := bundle.Verify(ecKey.Public(), bundle.SignatureMessage(v, id), sig); !errors.Is(err, bundle.ErrBadSignature) {
			t.Errorf("v%d: an approval verifies as a station signature: %v", v, err)
		}
		if err := bundle.VerifyApproval(ecKey.Public(), v, bundle.ID{2}, sig); !errors.Is(err, bundle.ErrBadSignature) {
			t.Errorf("v%d: an approval verifies for another target: %v", v, err)
		}
		if err := bundle.VerifyApproval(ecKey2.Public(), v, id, sig); !errors.Is(err, bundle.ErrBadSignature) {
			t.Errorf("v%d: an approval verifies with another custodian's key: %v", v, err)
		}
		if err := bundle.VerifyApproval(ecKey.Public(), other, id, sig); !errors.Is(err, bundle.ErrBadSignature) {
			t.Errorf("a version %d approval verifies as one of version %d: %v", v, other, err)
		}
	}
}

func TestDomainStringsOfVersion2(t *testing.T) {
	// Version 2 hashes and signs under its own domain strings (SPEC.md §5.4), so an ID or a
	// signature of one version is never one of the other; key IDs are the same in both.
	h := validHeader(t)
	h.Version = bundle.Version2
	enc := h.Marshal()
	if binary.BigEndian.Uint16(enc[8:10]) != 2 {
		t.Fatalf("Marshal() writes version %d, want 2", binary.BigEndian.Uint16(enc[8:10]))
	}
	want := sha256.Sum256(append([]byte("airgap-byok/v2/bundle-id\x00"), enc[:]...))
	if id := h.ID(); id != bundle.ID(want) || bundle.IDOfHeader(enc[:]) != id {
		t.Errorf("ID() of a version 2 header = %s, want %x", id, want)
	}
	id := bundle.ID{9}
	for v, prefix := range map[uint16]string{1: "airgap-byok/v1/", 2: "airgap-byok/v2/"} {
		if got, want := string(bundle.SignatureMessage(v, id)), prefix+"bundle-signature\x00"+string(id[:]); got != want {
			t.Errorf("SignatureMessage(%d) = %q, want %q", v, got, want)
		}
		if got, want := string(bundle.ApprovalMessage(v, id)), prefix+"approval\x00"+string(id[:]); got != want {
			t.Errorf("ApprovalMessage(%d) = %q, want %q", v, got, want)
		}
	}
}

func TestSealWritesTheNewestVersion(t *testing.T) {
	d := bundle.Draft{Kind: bundle.KindEnrollment, Chain: bundle.ChainOnline, Seq: 1, Created: 1, Expires: 2, Payload: []byte("{}")}
	for _, tt := range []struct{ draft, want uint16 }{{0, bundle.Version2}, {bundle.Version1, bundle.Version1}, {bundle.Version2, bundle.Version2}} {
		d.Version = tt.draft
		b, err := bundle.Seal(d, edKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b.Header.Version != tt.want {
			t.Errorf("Seal(Version %d) wrote version %d, want %d", tt.draft, b.Header.Version, tt.want)
		}
		if err := b.VerifySignature(edKey.Public()); err != nil {
			t.Errorf("Seal(Version %d): %v", tt.draft, err)
		}
	}
	d.Version = 3
	var uv *bundle.UnsupportedVersionError
	if _, err := bundle.Seal(d, edKey, nil); !errors.As(err, &uv) {
		t.Errorf("Seal(Version 3) = %v, want UnsupportedVersionError", err)
	}
}

func TestKeyID(t *testing.T) {
	// Computed independently with OpenSSL: the DER SPKI of the Ed25519 key with the all-zero
	// seed (openssl pkey -pubout -outform DER), prefixed with "airgap-byok/v1/key-id\0",
	// through sha256sum.
	const want = "3cfb5376883efab09d93610e009f226509f9ef32fc668e552dbda1ee8fb21067"
	if got := mustKeyID(t, edKey.Public()).String(); got != want {
		t.Errorf("KeyID(ed25519 zero seed) = %s, want %s", got, want)
	}
	der, err := x509.MarshalPKIXPublicKey(ecKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	wantEC := sha256.Sum256(append([]byte("airgap-byok/v1/key-id\x00"), der...))
	if got := mustKeyID(t, ecKey.Public()); got != bundle.ID(wantEC) || bundle.KeyIDOfSPKI(der) != got {
		t.Errorf("KeyID(p256) = %s, want %x", got, wantEC)
	}
	if mustKeyID(t, ecKey.Public()) == mustKeyID(t, ecKey2.Public()) {
		t.Error("two keys have one key ID")
	}

	rsaKey, err := rsa.GenerateKey(nil, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, pub := range []crypto.PublicKey{rsaKey.Public(), p384.Public(), ed25519.PublicKey(make([]byte, 31))} {
		if _, err := bundle.KeyID(pub); !errors.Is(err, bundle.ErrUnsupportedKey) {
			t.Errorf("KeyID(%T) = %v, want ErrUnsupportedKey", pub, err)
		}
	}
}

func TestParsePublicKey(t *testing.T) {
	edDER, _ := x509.MarshalPKIXPublicKey(edKey.Public())
	ecDER, _ := x509.MarshalPKIXPublicKey(ecKey.Public())
	p384, err := ecdsa.GenerateKey(elliptic.P384(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p384DER, _ := x509.MarshalPKIXPublicKey(p384.Public())
	tests := []struct {
		name    string
		spki    []byte
		wantAlg bundle.Alg
	}{
		{"ed25519", edDER, bundle.AlgEd25519},
		{"p-256", ecDER, bundle.AlgECDSAP256},
		{"p-384", p384DER, 0},
		{"garbage", []byte{0x30, 0x03, 1, 2, 3}, 0},
		{"truncated", ecDER[:len(ecDER)-1], 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, alg, err := bundle.ParsePublicKey(tt.spki)
			if tt.wantAlg == 0 {
				var pe *bundle.ParseError
				if !errors.As(err, &pe) {
					t.Errorf("ParsePublicKey() = %v, want a ParseError", err)
				}
				return
			}
			if err != nil || alg != tt.wantAlg {
				t.Errorf("ParsePublicKey() = %s, %v; want %s", alg, err, tt.wantAlg)
			}
		})
	}
}

func TestShort(t *testing.T) {
	crockford := base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)
	var ff bundle.ID
	for i := range ff {
		ff[i] = 0xff
	}
	tests := []struct {
		id   bundle.ID
		want string
	}{
		{bundle.ID{}, "0000-0000-0000-0000"},
		{ff, "ZZZZ-ZZZZ-ZZZZ-ZZZZ"},
		{bundle.ID{0x08}, "1000-0000-0000-0000"},
		{bundle.ID{9: 0x01}, "0000-0000-0000-0001"},
		{bundle.ID{10: 0xff}, "0000-0000-0000-0000"}, // only the first 80 bits count
	}
	for i := range 8 {
		id := bundle.ID(sha256.Sum256([]byte{byte(i)}))
		enc := crockford.EncodeToString(id[:10])
		tests = append(tests, struct {
			id   bundle.ID
			want string
		}{id, enc[0:4] + "-" + enc[4:8] + "-" + enc[8:12] + "-" + enc[12:16]})
	}
	for _, tt := range tests {
		if got := tt.id.Short(); got != tt.want {
			t.Errorf("%x.Short() = %s, want %s", tt.id[:10], got, tt.want)
		}
		if got, err := bundle.ParseShort(tt.want); err != nil || got != tt.want {
			t.Errorf("ParseShort(%q) = %q, %v; want it unchanged", tt.want, got, err)
		}
	}
}

func TestParseShort(t *testing.T) {
	tests := []struct {
		in, want string // want "" for an error
	}{
		{"7KQ2-M9XD-4TNV-H3PA", "7KQ2-M9XD-4TNV-H3PA"},
		{"7kq2-m9xd-4tnv-h3pa", "7KQ2-M9XD-4TNV-H3PA"},
		{"7KQ2M9XD4TNVH3PA", "7KQ2-M9XD-4TNV-H3PA"},
		{" 7KQ2 M9XD 4TNV H3PA ", "7KQ2-M9XD-4TNV-H3PA"},
		{"7KQ2--M9XD-4TNV-H3PA", "7KQ2-M9XD-4TNV-H3PA"},
		{"OOOO-IIII-LLLL-oil0", "0000-1111-1111-0110"},
		{"7KQ2-M9XD-4TNV-H3PU", ""},  // U is not in the alphabet
		{"7KQ2-M9XD-4TNV-H3P", ""},   // 15 characters
		{"7KQ2-M9XD-4TNV-H3PAA", ""}, // 17 characters
		{"7KQ2-M9XD-4TNV-H3P!", ""},
		{"7KQ2-M9XD-4TNV-H3PÄ", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := bundle.ParseShort(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseShort(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseShort(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseID(t *testing.T) {
	id := bundle.ID(sha256.Sum256([]byte("x")))
	s := id.String()
	tests := []struct {
		in string
		ok bool
	}{
		{s, true},
		{strings.ToUpper(s), false},
		{s[:63], false},
		{s + "0", false},
		{"g" + s[1:], false},
		{"", false},
	}
	for _, tt := range tests {
		got, err := bundle.ParseID(tt.in)
		if tt.ok != (err == nil) || (tt.ok && got != id) {
			t.Errorf("ParseID(%q) = %s, %v; want ok=%v", tt.in, got, err, tt.ok)
		}
		var back bundle.ID
		if err := back.UnmarshalText([]byte(tt.in)); tt.ok != (err == nil) {
			t.Errorf("UnmarshalText(%q) = %v", tt.in, err)
		}
	}
	text, err := id.MarshalText()
	if err != nil || string(text) != hex.EncodeToString(id[:]) {
		t.Errorf("MarshalText() = %s, %v", text, err)
	}
}

func TestKindsAndChains(t *testing.T) {
	offline := map[bundle.Kind]bool{bundle.KindEnrollment: true, bundle.KindPolicy: true, bundle.KindKeyPackage: true, bundle.KindApproval: true}
	online := map[bundle.Kind]bool{bundle.KindEnrollment: true, bundle.KindKEKOffer: true, bundle.KindReceipt: true}
	for k := bundle.Kind(0); k < 8; k++ {
		if got := bundle.ChainOffline.Allows(k); got != offline[k] {
			t.Errorf("offline.Allows(%s) = %v", k, got)
		}
		if got := bundle.ChainOnline.Allows(k); got != online[k] {
			t.Errorf("online.Allows(%s) = %v", k, got)
		}
		if bundle.Chain(3).Allows(k) {
			t.Errorf("chain(3).Allows(%s)", k)
		}
		if offline[k] || online[k] {
			if got, err := bundle.ParseKind(k.String()); err != nil || got != k {
				t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, err)
			}
		}
	}
	if _, err := bundle.ParseKind("kind(9)"); err == nil {
		t.Error("ParseKind(kind(9)) succeeded")
	}
	if bundle.ChainOffline.Other() != bundle.ChainOnline || bundle.ChainOnline.Other() != bundle.ChainOffline {
		t.Error("Other() is not the other chain")
	}
}

// bundleWithStored returns a bundle whose header declares payload length n and the digests
// of stored and of decoded, as a properly signed bundle would; Open needs no signature.
func bundleWithStored(stored []byte, n uint32, decoded []byte) *bundle.Bundle {
	return &bundle.Bundle{
		Header: bundle.Header{PayloadLen: n, StoredLen: uint32(len(stored)),
			StoredDigest: sha256.Sum256(stored), PayloadDigest: sha256.Sum256(decoded)},
		Stored: stored,
	}
}

func zstdFrame(t *testing.T, p []byte) []byte {
	t.Helper()
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithSingleSegment(true))
	if err != nil {
		t.Fatal(err)
	}
	return e.EncodeAll(p, nil)
}

func TestOpenLimits(t *testing.T) {
	small := []byte(`{"a":"b"}`)
	big := bytes.Repeat([]byte("a"), 2<<20)
	bigFrame := zstdFrame(t, big)
	// The same 2 MiB frame, its declared size rewritten to 1 MiB: its blocks hold more than
	// it declares (a decompression bomb that passes the frame header check).
	lying := bytes.Clone(bigFrame)
	if lying[4]>>6 != 2 || lying[4]&0x20 == 0 {
		t.Fatalf("frame descriptor %#x: not single segment with a four-byte size", lying[4])
	}
	binary.LittleEndian.PutUint32(lying[5:9], bundle.MaxPayload)
	var stream bytes.Buffer
	w, err := zstd.NewWriter(&stream)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(small)
	w.Close()

	ze, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
	if err != nil {
		t.Fatal(err)
	}
	emptyFrame := ze.EncodeAll(nil, nil)
	skippable := []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4}

	tests := []struct {
		name     string
		b        *bundle.Bundle
		tooLarge bool
		what     string // HashMismatchError.What, or "" for a ParseError
	}{
		// The stored payload is exactly one frame: nothing may follow it, not even frames
		// that decode to nothing.
		{"empty frame after the frame", bundleWithStored(append(zstdFrame(t, small), emptyFrame...), uint32(len(small)), small), false, ""},
		{"skippable frame after the frame", bundleWithStored(append(zstdFrame(t, small), skippable...), uint32(len(small)), small), false, ""},
		{"a byte after the frame", bundleWithStored(append(zstdFrame(t, small), 0), uint32(len(small)), small), false, ""},
		{"frame cut short", func() *bundle.Bundle {
			f := zstdFrame(t, small)
			return bundleWithStored(f[:len(f)-1], uint32(len(small)), small)
		}(), false, ""},
		{"frame declares more than the header", bundleWithStored(zstdFrame(t, append(bytes.Clone(small), 'x')), uint32(len(small)), small), true, ""},
		{"frame declares less than the header", bundleWithStored(zstdFrame(t, small[:5]), uint32(len(small)), small), true, ""},
		{"frame declares 2 MiB", bundleWithStored(bigFrame, 100, small), true, ""},
		{"frame holds more than it declares", bundleWithStored(lying, bundle.MaxPayload, big[:bundle.MaxPayload]), true, ""},
		{"streaming frame without a declared size", bundleWithStored(stream.Bytes(), uint32(len(small)), small), false, ""},
		{"not zstd", bundleWithStored([]byte("plain text, not a zstd frame"), 5, small), false, ""},
		{"two frames", bundleWithStored(append(zstdFrame(t, small), zstdFrame(t, small)...), uint32(len(small)), small), false, ""},
		{"payload digest mismatch", bundleWithStored(zstdFrame(t, small), uint32(len(small)), []byte("other")), false, "payload"},
		{"stored digest mismatch", func() *bundle.Bundle {
			b := bundleWithStored(zstdFrame(t, small), uint32(len(small)), small)
			b.Header.StoredDigest[0] ^= 1
			return b
		}(), false, "stored payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.b.Open()
			if p != nil || err == nil {
				t.Fatalf("Open() = %d bytes, %v; want an error", len(p), err)
			}
			if tt.what != "" {
				var hm *bundle.HashMismatchError
				if !errors.As(err, &hm) || hm.What != tt.what {
					t.Errorf("Open() = %v, want a %s HashMismatchError", err, tt.what)
				}
				return
			}
			var pe *bundle.ParseError
			if !errors.As(err, &pe) || errors.Is(err, bundle.ErrTooLarge) != tt.tooLarge {
				t.Errorf("Open() = %v, want a ParseError (too large: %v)", err, tt.tooLarge)
			}
		})
	}
}

func TestVerifier(t *testing.T) {
	b, err := bundle.Seal(draft(bundle.KindKeyPackage, bundle.ChainOffline, []byte(`{}`)), ecKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := bundle.NewVerifier(ecKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	if v.ID() != mustKeyID(t, ecKey.Public()) || !ecKey.PublicKey.Equal(v.PublicKey()) {
		t.Errorf("Verifier ID %s, key %v", v.ID().Short(), v.PublicKey())
	}
	if err := b.VerifySignatureWith(v); err != nil {
		t.Errorf("VerifySignatureWith(signer) = %v", err)
	}
	other, err := bundle.NewVerifier(ecKey2.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.VerifySignatureWith(other); !errors.Is(err, bundle.ErrBadSignature) {
		t.Errorf("VerifySignatureWith(other key) = %v, want ErrBadSignature", err)
	}
	b.Signature[3] ^= 1
	if err := b.VerifySignatureWith(v); !errors.Is(err, bundle.ErrBadSignature) {
		t.Errorf("VerifySignatureWith(flipped signature) = %v, want ErrBadSignature", err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.NewVerifier(p384.Public()); !errors.Is(err, bundle.ErrUnsupportedKey) {
		t.Errorf("NewVerifier(p-384) = %v, want ErrUnsupportedKey", err)
	}
}
