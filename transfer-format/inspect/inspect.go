package inspect

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// ErrNoKey means the caller supplied no key with the ID a bundle's header names as its
// signer (or, for an approval signature, as the custodian), so nothing could be verified.
var ErrNoKey = errors.New("no key for the signer")

// Options configure Bundle.
type Options struct {
	// Keys are the public keys the caller knows, by key ID (SPEC.md §5.1): station keys
	// verify the bundle's signature, custodian keys the approvals an approval bundle
	// carries. Nil means none.
	Keys map[bundle.ID]crypto.PublicKey
	// Unverified decodes the payload even if the station signature did not verify, for
	// forensic use. The rendering then says that the payload is not authenticated.
	Unverified bool
}

// Payload states, the values of Rendering.PayloadState.
const (
	// PayloadDecoded: the signature verified and the payload decoded.
	PayloadDecoded = "decoded"
	// PayloadDecodedUnverified: the signature did not verify, Options.Unverified was set
	// and the payload decoded. Nothing in it is authenticated.
	PayloadDecodedUnverified = "decoded_unverified"
	// PayloadWithheld: the signature did not verify, so the payload was not opened.
	PayloadWithheld = "withheld"
	// PayloadInvalid: the payload was opened and did not decode: a digest mismatch, a
	// malformed zstd frame, or JSON that is not a canonical, valid payload of its kind.
	PayloadInvalid = "invalid"
)

// Rendering is a bundle rendered for people and tools. Its JSON form (see JSON) is the
// output of the inspect commands; its field set only ever grows.
type Rendering struct {
	Format       string    `json:"format"` // "airgap-byok transfer bundle"
	ID           ID        `json:"id"`     // the bundle ID (§4.2)
	Path         string    `json:"path"`   // where the bundle belongs on a medium (§8.2)
	Size         int       `json:"size"`   // bytes
	Header       Header    `json:"header"`
	Signature    Signature `json:"signature"`
	PayloadState string    `json:"payload_state"` // one of the Payload* constants
	PayloadError string    `json:"payload_error,omitempty"`
	// Payload is the decoded payload: *Enrollment, *Policy, *KEKOffer, *KeyPackage,
	// *Approval or *Receipt; nil unless PayloadState is decoded or decoded_unverified.
	Payload any      `json:"payload,omitempty"`
	Notes   []string `json:"notes,omitempty"` // things a reader must not miss

	sigErr     error
	payloadErr error
}

// ID is a bundle ID or key ID in both of its spellings.
type ID struct {
	Hex   string `json:"hex"`   // 64 lowercase hex digits
	Short string `json:"short"` // the fingerprint people compare (§4.4)
}

func newID(id bundle.ID) ID { return ID{Hex: id.String(), Short: id.Short()} }

// optID returns nil for the zero ID, which the format uses for "none".
func optID(id bundle.ID) *ID {
	if id.IsZero() {
		return nil
	}
	v := newID(id)
	return &v
}

// Header is the fixed-size header (§4.1).
type Header struct {
	Version         uint16 `json:"version"`
	Kind            string `json:"kind"`
	Chain           string `json:"chain"`
	Alg             string `json:"alg"`
	Encoding        string `json:"encoding"`
	Seq             uint64 `json:"seq"`
	Prev            *ID    `json:"prev"` // null at the genesis
	PeerSeq         uint64 `json:"peer_seq"`
	Peer            *ID    `json:"peer"`   // null if peer_seq is 0
	Policy          *ID    `json:"policy"` // null in an enrollment and the first policy
	Signer          ID     `json:"signer"` // key ID of the station key
	Created         string `json:"created"`
	Expires         string `json:"expires"`
	LifetimeSeconds int64  `json:"lifetime_seconds"`
	PayloadLen      uint32 `json:"payload_len"`
	StoredLen       uint32 `json:"stored_len"`
	PayloadDigest   string `json:"payload_digest"` // SHA-256 of the decoded payload, hex
	StoredDigest    string `json:"stored_digest"`  // SHA-256 of the stored payload, hex
}

// Signature is the station signature (§5.2) and what became of its verification.
type Signature struct {
	Alg      string `json:"alg"`
	Signer   ID     `json:"signer"`
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"` // why it did not verify
	Value    string `json:"value"`           // the 64 bytes, hex
}

// Bundle renders an encoded bundle. It parses the header and, only if the station signature
// verifies with the key opts.Keys holds under the header's signer ID (or if opts.Unverified
// is set, saying so in the rendering), opens and decodes the payload. It never panics on any
// input.
//
// It returns an error wrapping *bundle.ParseError if data is not a well-formed bundle
// (*bundle.UnsupportedVersionError for an unknown version, bundle.ErrTooLarge over the
// limits). Everything after the header is reported in the rendering; see Rendering.Err.
func Bundle(data []byte, opts Options) (*Rendering, error) {
	b, err := bundle.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	h := &b.Header
	id := b.ID()
	r := &Rendering{
		Format: "airgap-byok transfer bundle",
		ID:     newID(id),
		Path:   media.Path(h.Chain, h.Seq, id),
		Size:   len(data),
		Header: Header{
			Version:         h.Version,
			Kind:            h.Kind.String(),
			Chain:           h.Chain.String(),
			Alg:             h.Alg.String(),
			Encoding:        "zstd",
			Seq:             h.Seq,
			Prev:            optID(h.Prev),
			PeerSeq:         h.PeerSeq,
			Peer:            optID(h.Peer),
			Policy:          optID(h.Policy),
			Signer:          newID(h.Signer),
			Created:         unixTime(h.Created),
			Expires:         unixTime(h.Expires),
			LifetimeSeconds: h.Expires - h.Created, // Parse checked 0 < created < expires
			PayloadLen:      h.PayloadLen,
			StoredLen:       h.StoredLen,
			PayloadDigest:   hex.EncodeToString(h.PayloadDigest[:]),
			StoredDigest:    hex.EncodeToString(h.StoredDigest[:]),
		},
		Signature: Signature{
			Alg:    h.Alg.String(),
			Signer: newID(h.Signer),
			Value:  hex.EncodeToString(b.Signature[:]),
		},
	}

	if pub, ok := opts.Keys[h.Signer]; ok {
		r.sigErr = b.VerifySignature(pub)
	} else {
		r.sigErr = fmt.Errorf("%w %s", ErrNoKey, h.Signer.Short())
	}
	r.Signature.Verified = r.sigErr == nil
	if r.sigErr != nil {
		r.Signature.Error = r.sigErr.Error()
		if !opts.Unverified {
			r.PayloadState = PayloadWithheld
			return r, nil
		}
	}

	v, err := open(b)
	if err != nil {
		r.PayloadState = PayloadInvalid
		r.payloadErr = err
		r.PayloadError = err.Error()
		return r, nil
	}
	r.PayloadState = PayloadDecoded
	if r.sigErr != nil {
		r.PayloadState = PayloadDecodedUnverified
		r.Notes = append(r.Notes, "the payload was decoded although the signature did not verify: its content is not authenticated")
	}
	r.Payload, r.Notes = renderPayload(h.Version, v, opts.Keys, r.Notes)
	return r, nil
}

// open checks the digests, decompresses within the header's limits and decodes the payload
// strictly (§9.2 step 7).
func open(b *bundle.Bundle) (any, error) {
	p, err := b.Open()
	if err != nil {
		return nil, err
	}
	return payload.DecodeVersion(b.Header.Version, b.Header.Kind, p)
}

// Err returns nil if the station signature verified and the payload decoded. Otherwise it
// returns why not: an error wrapping ErrNoKey or bundle.ErrBadSignature (or
// bundle.ErrUnsupportedKey for a caller's key the format cannot verify with) if the signature
// did not verify, else one wrapping *bundle.HashMismatchError or *bundle.ParseError (which
// may wrap bundle.ErrTooLarge) if the payload did not open.
func (r *Rendering) Err() error {
	if r.sigErr != nil {
		return r.sigErr
	}
	return r.payloadErr
}

// JSON returns the rendering as indented JSON: fields in a fixed order, two-space indent,
// ASCII only, ending in a newline.
func (r *Rendering) JSON() []byte {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if err := e.Encode(r); err != nil {
		// Every field is a string, number, bool, slice, string map or struct of those:
		// encoding cannot fail. Say so in JSON rather than panic if it ever does.
		return fmt.Appendf(nil, "{\n  \"error\": %s\n}\n", strconv.QuoteToASCII(err.Error()))
	}
	return asciiJSON(buf.Bytes())
}

// asciiJSON escapes every byte of b outside printable ASCII and whitespace as \uXXXX (a
// surrogate pair beyond the basic plane). In JSON such bytes occur only inside strings, so
// the result is equivalent JSON. encoding/json already escapes control characters and
// replaces invalid UTF-8.
func asciiJSON(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] < utf8.RuneSelf && b[i] != 0x7f {
		i++
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/8)
	out = append(out, b[:i]...)
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf && c != 0x7f {
			out = append(out, c)
			i++
			continue
		}
		rn, size := utf8.DecodeRune(b[i:])
		i += size
		if rn > 0xffff {
			r1, r2 := utf16.EncodeRune(rn)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
			continue
		}
		out = fmt.Appendf(out, `\u%04x`, rn)
	}
	return out
}

// unixTime renders Unix seconds as RFC 3339 in UTC.
func unixTime(s int64) string { return time.Unix(s, 0).UTC().Format(time.RFC3339) }

// optTime renders Unix seconds, or "" for 0, which payloads use for "not set".
func optTime(s int64) string {
	if s == 0 {
		return ""
	}
	return unixTime(s)
}

// PolicyKeys returns the station and custodian keys that the given policies name, by key ID:
// what Options.Keys needs to verify the bundles made under those policies and the approvals
// of their custodians. Nil policies are skipped, and so are keys that do not parse (a policy
// that passed payload validation has none).
func PolicyKeys(policies ...*payload.Policy) map[bundle.ID]crypto.PublicKey {
	keys := map[bundle.ID]crypto.PublicKey{}
	add := func(k payload.PublicKey) {
		if pub, err := k.Parse(); err == nil {
			keys[k.ID()] = pub
		}
	}
	for _, p := range policies {
		if p == nil {
			continue
		}
		add(p.OfflineStation)
		add(p.OnlineStation)
		for _, c := range p.Custodians {
			add(c.Key)
		}
	}
	return keys
}
