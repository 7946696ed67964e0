package bundle

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Format constants (§3, §4.1, §6).
const (
	// Magic is the first eight bytes of every bundle: a non-ASCII byte, the name, CR LF and
	// SUB, so that text-mode copies and truncated transfers are caught (as PNG does).
	Magic = "\x89BYOK\r\n\x1a"
	// Version1 is the first format version (SPEC.md §3). Its bundles keep verifying under
	// its rules exactly as before.
	Version1 uint16 = 1
	// Version2 adds the writer's toolset to every payload and the allowed toolsets to the
	// policy (§3, §7); its domain-separation strings name version 2 (§5.4).
	Version2 uint16 = 2
	// Version is the format version writers write: the newest this package implements.
	Version = Version2
	// HeaderSize is the fixed size of the header.
	HeaderSize = 256
	// SignatureSize is the fixed size of the station signature that follows the header.
	SignatureSize = 64
	// MaxPayload is the largest decoded payload, in bytes.
	MaxPayload = 1 << 20
	// MaxStored is the largest stored (compressed) payload, in bytes.
	MaxStored = MaxPayload + 4096
	// MaxFileSize is the largest bundle file.
	MaxFileSize = HeaderSize + SignatureSize + MaxStored
	// MaxSeq is the largest sequence number (16 decimal digits in file names).
	MaxSeq = 9_999_999_999_999_999
)

// Kind is the type of a bundle's payload (§7).
type Kind uint8

// Bundle kinds. Values are part of the format and never change.
const (
	KindEnrollment Kind = 1 // a station's public key; the genesis of each chain
	KindPolicy     Kind = 2 // keys, custodians, threshold, vaults, limits
	KindKEKOffer   Kind = 3 // a Key Exchange Key created in a vault
	KindKeyPackage Kind = 4 // a wrapped key (.byok) and its manifest
	KindApproval   Kind = 5 // custodian signatures over another bundle's ID
	KindReceipt    Kind = 6 // the outcome of an upload
)

var kindNames = map[Kind]string{
	KindEnrollment: "enrollment",
	KindPolicy:     "policy",
	KindKEKOffer:   "kek_offer",
	KindKeyPackage: "key_package",
	KindApproval:   "approval",
	KindReceipt:    "receipt",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind returns the Kind named s.
func ParseKind(s string) (Kind, error) {
	for k, n := range kindNames {
		if n == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown bundle kind %q", s)
}

// Chain names one of the two hash chains (§4.3).
type Chain uint8

// The two chains. Values are part of the format.
const (
	ChainOffline Chain = 1 // written by byok-offline
	ChainOnline  Chain = 2 // written by byok-online
)

func (c Chain) String() string {
	switch c {
	case ChainOffline:
		return "offline"
	case ChainOnline:
		return "online"
	}
	return fmt.Sprintf("chain(%d)", uint8(c))
}

// Other returns the other chain.
func (c Chain) Other() Chain {
	if c == ChainOffline {
		return ChainOnline
	}
	return ChainOffline
}

// Allows reports whether kind k may appear on chain c (§7).
func (c Chain) Allows(k Kind) bool {
	switch c {
	case ChainOffline:
		return k == KindEnrollment || k == KindPolicy || k == KindKeyPackage || k == KindApproval
	case ChainOnline:
		return k == KindEnrollment || k == KindKEKOffer || k == KindReceipt
	}
	return false
}

// Alg is a signature algorithm (§5.2).
type Alg uint8

// Signature algorithms. Values are part of the format.
const (
	AlgECDSAP256 Alg = 1 // ECDSA over P-256 with SHA-256, r||s, 32 bytes each, low-S
	AlgEd25519   Alg = 2 // Ed25519 (RFC 8032)
)

func (a Alg) String() string {
	switch a {
	case AlgECDSAP256:
		return "ecdsa-p256"
	case AlgEd25519:
		return "ed25519"
	}
	return fmt.Sprintf("alg(%d)", uint8(a))
}

// EncodingZstd is the only payload encoding of version 1.
const EncodingZstd uint8 = 1

// Header is the fixed-size, signed header of a bundle (§4.1). Every field is covered by the
// bundle ID and so by the station signature.
type Header struct {
	Version       uint16 // format version: Version1 or Version2
	Kind          Kind
	Chain         Chain
	Alg           Alg    // algorithm of the station signature
	Seq           uint64 // position on the chain, 1 for the genesis
	Prev          ID     // ID of the previous bundle on the same chain; zero for the genesis
	PeerSeq       uint64 // sequence number of the latest verified bundle of the other chain; 0 if none
	Peer          ID     // ID of that bundle; zero if none
	Policy        ID     // ID of the policy this bundle is made under; zero where none applies
	Signer        ID     // key ID of the station key that signs this bundle
	Created       int64  // Unix seconds
	Expires       int64  // Unix seconds; the bundle must not be acted on after this
	PayloadLen    uint32 // decoded payload length
	StoredLen     uint32 // stored (compressed) payload length
	PayloadDigest [32]byte
	StoredDigest  [32]byte
}

// CreatedTime returns Created as a time.Time in UTC.
func (h *Header) CreatedTime() time.Time { return time.Unix(h.Created, 0).UTC() }

// ExpiresTime returns Expires as a time.Time in UTC.
func (h *Header) ExpiresTime() time.Time { return time.Unix(h.Expires, 0).UTC() }

// ID returns the bundle ID: SHA-256 over a domain string and the encoded header (§4.2).
func (h *Header) ID() ID {
	b := h.Marshal()
	return IDOfHeader(b[:])
}

// IDOfHeader returns the bundle ID of an encoded header, with the domain string of the
// version its bytes 8 and 9 name (§4.2). A header too short to name one, or of a version this
// package does not implement, is hashed as version 1: it has no ID of its own, and a reader
// refuses it before it looks at one.
func IDOfHeader(b []byte) ID {
	v := Version1
	if len(b) >= 10 {
		v = binary.BigEndian.Uint16(b[8:10])
	}
	return hashWithDomain(domainsOf(v).bundleID, b)
}

// Supported reports whether v is a format version this package reads and verifies.
func Supported(v uint16) bool { return v == Version1 || v == Version2 }

// domains are the domain-separation strings of one format version (§5.4).
type domains struct {
	bundleID, signature, approval string
}

var (
	domainsV1 = domains{
		bundleID:  "airgap-byok/v1/bundle-id",
		signature: "airgap-byok/v1/bundle-signature",
		approval:  "airgap-byok/v1/approval",
	}
	domainsV2 = domains{
		bundleID:  "airgap-byok/v2/bundle-id",
		signature: "airgap-byok/v2/bundle-signature",
		approval:  "airgap-byok/v2/approval",
	}
)

// domainsOf returns the strings of version v; version 1's for any version but 2.
func domainsOf(v uint16) domains {
	if v == Version2 {
		return domainsV2
	}
	return domainsV1
}

// domainKeyID is the domain string of key IDs (§5.1). A key ID names a key, not a bundle:
// it is the same in every format version, so that a policy, its approvals and the
// fingerprints people compared keep naming the same keys when a chain moves to version 2.
const domainKeyID = "airgap-byok/v1/key-id"

// Marshal encodes the header in its canonical 256-byte form.
func (h *Header) Marshal() [HeaderSize]byte {
	var b [HeaderSize]byte
	copy(b[0:8], Magic)
	binary.BigEndian.PutUint16(b[8:10], h.Version)
	b[10] = byte(h.Kind)
	b[11] = byte(h.Chain)
	b[12] = byte(h.Alg)
	b[13] = EncodingZstd
	binary.BigEndian.PutUint64(b[16:24], h.Seq)
	copy(b[24:56], h.Prev[:])
	binary.BigEndian.PutUint64(b[56:64], h.PeerSeq)
	copy(b[64:96], h.Peer[:])
	copy(b[96:128], h.Policy[:])
	copy(b[128:160], h.Signer[:])
	binary.BigEndian.PutUint64(b[160:168], uint64(h.Created))
	binary.BigEndian.PutUint64(b[168:176], uint64(h.Expires))
	binary.BigEndian.PutUint32(b[176:180], h.PayloadLen)
	binary.BigEndian.PutUint32(b[180:184], h.StoredLen)
	copy(b[184:216], h.PayloadDigest[:])
	copy(b[216:248], h.StoredDigest[:])
	return b
}

// ParseHeader decodes and checks a header (§4.1). b must hold at least HeaderSize bytes;
// only the first HeaderSize are read. It rejects anything Marshal would not produce.
func ParseHeader(b []byte) (*Header, error) {
	if len(b) < HeaderSize {
		return nil, errorf("header", "truncated: %d of %d bytes", len(b), HeaderSize)
	}
	if string(b[0:8]) != Magic {
		return nil, errorf("header", "not a transfer bundle (bad magic)")
	}
	v := binary.BigEndian.Uint16(b[8:10])
	if !Supported(v) {
		return nil, &ParseError{What: "header", Err: &UnsupportedVersionError{Version: v}}
	}
	h := &Header{
		Version:    v,
		Kind:       Kind(b[10]),
		Chain:      Chain(b[11]),
		Alg:        Alg(b[12]),
		Seq:        binary.BigEndian.Uint64(b[16:24]),
		PeerSeq:    binary.BigEndian.Uint64(b[56:64]),
		Created:    int64(binary.BigEndian.Uint64(b[160:168])),
		Expires:    int64(binary.BigEndian.Uint64(b[168:176])),
		PayloadLen: binary.BigEndian.Uint32(b[176:180]),
		StoredLen:  binary.BigEndian.Uint32(b[180:184]),
	}
	copy(h.Prev[:], b[24:56])
	copy(h.Peer[:], b[64:96])
	copy(h.Policy[:], b[96:128])
	copy(h.Signer[:], b[128:160])
	copy(h.PayloadDigest[:], b[184:216])
	copy(h.StoredDigest[:], b[216:248])

	if b[13] != EncodingZstd {
		return nil, errorf("header", "unknown payload encoding %d", b[13])
	}
	if b[14] != 0 || b[15] != 0 {
		return nil, errorf("header", "reserved bytes 14-15 are not zero")
	}
	for _, c := range b[248:256] {
		if c != 0 {
			return nil, errorf("header", "reserved bytes 248-255 are not zero")
		}
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	return h, nil
}

// check enforces the header rules that do not need any other bundle (§4.1).
func (h *Header) check() error {
	if !Supported(h.Version) {
		return &ParseError{What: "header", Err: &UnsupportedVersionError{Version: h.Version}}
	}
	if _, ok := kindNames[h.Kind]; !ok {
		return errorf("header", "unknown kind %d", h.Kind)
	}
	if h.Chain != ChainOffline && h.Chain != ChainOnline {
		return errorf("header", "unknown chain %d", h.Chain)
	}
	if !h.Chain.Allows(h.Kind) {
		return errorf("header", "kind %s not allowed on the %s chain", h.Kind, h.Chain)
	}
	if h.Alg != AlgECDSAP256 && h.Alg != AlgEd25519 {
		return errorf("header", "unknown signature algorithm %d", h.Alg)
	}
	if h.Seq == 0 || h.Seq > MaxSeq {
		return errorf("header", "sequence number %d out of range", h.Seq)
	}
	if (h.Seq == 1) != h.Prev.IsZero() {
		return errorf("header", "previous ID must be zero exactly at the genesis")
	}
	if (h.Seq == 1) != (h.Kind == KindEnrollment) {
		return errorf("header", "the genesis of a chain must be an enrollment, and only the genesis")
	}
	if h.PeerSeq > MaxSeq {
		return errorf("header", "peer sequence number %d out of range", h.PeerSeq)
	}
	if (h.PeerSeq == 0) != h.Peer.IsZero() {
		return errorf("header", "peer ID must be zero exactly when the peer sequence number is 0")
	}
	switch {
	case h.Kind == KindEnrollment && !h.Policy.IsZero():
		return errorf("header", "policy ID must be zero in an enrollment")
	case h.Kind != KindEnrollment && h.Kind != KindPolicy && h.Policy.IsZero():
		// Only an enrollment and the first policy are made under no policy.
		return errorf("header", "policy ID is zero in a %s", h.Kind)
	}
	if h.Signer.IsZero() {
		return errorf("header", "signer key ID is zero")
	}
	if h.Created <= 0 || h.Expires <= h.Created {
		return errorf("header", "times out of range: created %d, expires %d", h.Created, h.Expires)
	}
	if h.PayloadLen == 0 || h.StoredLen == 0 {
		return errorf("header", "empty payload")
	}
	if h.PayloadLen > MaxPayload {
		return &ParseError{What: "header", Err: fmt.Errorf("%w: declared payload of %d bytes exceeds %d", ErrTooLarge, h.PayloadLen, MaxPayload)}
	}
	if h.StoredLen > MaxStored {
		return &ParseError{What: "header", Err: fmt.Errorf("%w: declared stored payload of %d bytes exceeds %d", ErrTooLarge, h.StoredLen, MaxStored)}
	}
	return nil
}
