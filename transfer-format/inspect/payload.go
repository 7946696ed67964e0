package inspect

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// The payload views below follow the payload types member for member (same names, same
// order), with bytes rendered for their meaning and times in RFC 3339 UTC.

// SigningKey is a station's or a custodian's public key (§5.1).
type SigningKey struct {
	Alg  string `json:"alg"`
	ID   ID     `json:"id"`   // key ID
	SPKI string `json:"spki"` // DER SubjectPublicKeyInfo, standard base64
}

func signingKey(k payload.PublicKey) SigningKey {
	return SigningKey{Alg: k.Alg, ID: newID(k.ID()), SPKI: base64.StdEncoding.EncodeToString(k.SPKI)}
}

// PublicKey is an RSA or EC public key: a KEK, a target key, a key Key Vault returned.
type PublicKey struct {
	Type   string `json:"type,omitempty"` // key type (§7.4) such as "RSA-3072"; empty if none fits
	SPKI   string `json:"spki"`           // DER SubjectPublicKeyInfo, standard base64
	SHA256 string `json:"sha256"`         // SHA-256 of the DER SubjectPublicKeyInfo, hex
}

func publicKeyOfSPKI(spki []byte) *PublicKey {
	if len(spki) == 0 {
		return nil
	}
	sum := sha256.Sum256(spki)
	k := &PublicKey{SPKI: base64.StdEncoding.EncodeToString(spki), SHA256: hex.EncodeToString(sum[:])}
	if pub, err := x509.ParsePKIXPublicKey(spki); err == nil {
		if t, err := payload.KeyTypeOfPublic(pub); err == nil {
			k.Type = string(t)
		}
	}
	return k
}

// Blob is opaque data shown by size and digest.
type Blob struct {
	Length int    `json:"length"`
	SHA256 string `json:"sha256"` // hex
}

func blob(b []byte) Blob {
	sum := sha256.Sum256(b)
	return Blob{Length: len(b), SHA256: hex.EncodeToString(sum[:])}
}

// Enrollment is the payload of an enrollment bundle (§7.1).
type Enrollment struct {
	Station  string             `json:"station"`
	Name     string             `json:"name"`
	Key      SigningKey         `json:"key"`
	Software string             `json:"software"`
	HSM      *payload.TokenInfo `json:"hsm,omitempty"`
	Toolset  *payload.Toolset   `json:"toolset,omitempty"` // version 2: the program that wrote the bundle
}

// Custodian is a custodian named by a policy (§5.3).
type Custodian struct {
	Name string     `json:"name"`
	Key  SigningKey `json:"key"`
}

// Policy is the payload of a policy bundle (§7.2).
type Policy struct {
	Version               uint64            `json:"version"`
	Previous              *ID               `json:"previous"` // null in version 1
	OfflineStation        SigningKey        `json:"offline_station"`
	OnlineStation         SigningKey        `json:"online_station"`
	Custodians            []Custodian       `json:"custodians"`
	Threshold             int               `json:"threshold"`
	Regions               []payload.Region  `json:"regions,omitempty"`
	GlobalApproval        bool              `json:"global_approval,omitempty"`
	Vaults                []payload.Vault   `json:"vaults"`
	MinKEKBits            int               `json:"min_kek_bits"`
	KeyTypes              []payload.KeyType `json:"key_types"`
	AllowWeakerKEK        bool              `json:"allow_weaker_kek"`
	BundleLifetimeSeconds int64             `json:"bundle_lifetime_seconds"`
	MaxClockSkewSeconds   int64             `json:"max_clock_skew_seconds"`
	AllowedToolsets       []string          `json:"allowed_toolsets,omitempty"` // version 2
	Toolset               *payload.Toolset  `json:"toolset,omitempty"`          // version 2: the program that wrote the bundle
}

// KEKOffer is the payload of a KEK offer bundle (§7.3).
type KEKOffer struct {
	Vault       string           `json:"vault"`
	KID         string           `json:"kid"`
	Kty         string           `json:"kty"`
	KeySize     int              `json:"key_size"`
	KeyOps      []string         `json:"key_ops"`
	PublicKey   *PublicKey       `json:"public_key"` // built from n and e
	E           int64            `json:"e"`
	Expires     string           `json:"expires"`
	Attestation *Attestation     `json:"attestation,omitempty"`
	Toolset     *payload.Toolset `json:"toolset,omitempty"` // version 2: the program that wrote the bundle
}

// Attestation is a Managed HSM's key attestation (§7.3).
type Attestation struct {
	Format       string        `json:"format"`
	Data         Blob          `json:"data"`
	Certificates []Certificate `json:"certificates"`
}

// Certificate is an X.509 certificate of an attestation chain.
type Certificate struct {
	Subject   string `json:"subject"`
	Issuer    string `json:"issuer"`
	Serial    string `json:"serial"` // hex
	NotBefore string `json:"not_before"`
	NotAfter  string `json:"not_after"`
	SHA256    string `json:"sha256"` // of the DER certificate, hex
}

// KEKRef names the KEK a key package is wrapped with (§7.4).
type KEKRef struct {
	Offer ID     `json:"offer"`
	KID   string `json:"kid"`
}

// Target describes the key to create in Key Vault (§7.4).
type Target struct {
	Kty       string            `json:"kty"`
	KeySize   int               `json:"key_size,omitempty"`
	Curve     string            `json:"crv,omitempty"`
	KeyOps    []string          `json:"key_ops"`
	Enabled   bool              `json:"enabled"`
	NotBefore string            `json:"not_before,omitempty"`
	Expires   string            `json:"expires,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
}

// BYOK is a .byok file (§10) without its ciphertext.
type BYOK struct {
	Size          int        `json:"size"`   // bytes of the file
	SHA256        string     `json:"sha256"` // of the file, hex: compare with the plain copy
	SchemaVersion string     `json:"schema_version"`
	Header        BYOKHeader `json:"header"`
	Ciphertext    Ciphertext `json:"ciphertext"`
	Generator     string     `json:"generator"`
}

// BYOKHeader is the header member of a .byok file.
type BYOKHeader struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	Enc string `json:"enc"`
}

// Ciphertext describes a .byok ciphertext without showing it.
type Ciphertext struct {
	Length int `json:"length"` // bytes: the RSA part (the KEK modulus length) and the RFC 5649 part
}

// KeyPackage is the payload of a key package bundle (§7.4).
type KeyPackage struct {
	Vault      string             `json:"vault"`
	KeyName    string             `json:"key_name"`
	KeyType    string             `json:"key_type"`
	Regions    []string           `json:"regions,omitempty"` // residency (format version 2)
	KEK        KEKRef             `json:"kek"`
	Target     Target             `json:"target"`
	PublicKey  *PublicKey         `json:"public_key,omitempty"`
	KCV        string             `json:"kcv,omitempty"` // hex
	BYOK       BYOK               `json:"byok"`
	Provenance payload.Provenance `json:"provenance"`
	Toolset    *payload.Toolset   `json:"toolset,omitempty"` // version 2: the program that wrote the bundle
}

// Approver is one custodian's approval signature (§5.3).
type Approver struct {
	Custodian ID     `json:"custodian"` // key ID
	Verified  bool   `json:"verified"`  // verified with the caller's key of that ID
	Error     string `json:"error,omitempty"`
	Sig       string `json:"sig"` // hex
}

// Approval is the payload of an approval bundle (§7.5).
type Approval struct {
	Target     ID               `json:"target"`
	TargetKind string           `json:"target_kind"`
	Signatures []Approver       `json:"signatures"`
	Toolset    *payload.Toolset `json:"toolset,omitempty"` // version 2: the program that wrote the bundle
}

// Receipt is the payload of a receipt bundle (§7.6).
type Receipt struct {
	Package   ID                `json:"package"`
	Vault     string            `json:"vault"`
	Outcome   string            `json:"outcome"`
	KID       string            `json:"kid,omitempty"`
	PublicKey *PublicKey        `json:"public_key,omitempty"`
	Created   string            `json:"created,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	Error     string            `json:"error,omitempty"`
	Toolset   *payload.Toolset  `json:"toolset,omitempty"` // version 2: the program that wrote the bundle
}

// renderPayload returns the view of a decoded, validated payload and appends any note a
// reader must not miss.
func renderPayload(version uint16, v any, keys map[bundle.ID]crypto.PublicKey, notes []string) (any, []string) {
	r, notes := renderKind(version, v, keys, notes)
	switch p := r.(type) {
	case *Enrollment:
		p.Toolset = payload.ToolsetOf(v)
	case *Policy:
		p.Toolset = payload.ToolsetOf(v)
		p.AllowedToolsets = v.(*payload.Policy).AllowedToolsets
	case *KEKOffer:
		p.Toolset = payload.ToolsetOf(v)
	case *KeyPackage:
		p.Toolset = payload.ToolsetOf(v)
	case *Approval:
		p.Toolset = payload.ToolsetOf(v)
	case *Receipt:
		p.Toolset = payload.ToolsetOf(v)
	}
	return r, notes
}

// renderKind returns the view of the members a payload's kind defines.
func renderKind(version uint16, v any, keys map[bundle.ID]crypto.PublicKey, notes []string) (any, []string) {
	switch p := v.(type) {
	case *payload.Enrollment:
		return &Enrollment{Station: p.Station, Name: p.Name, Key: signingKey(p.Key), Software: p.Software, HSM: p.HSM}, notes
	case *payload.Policy:
		return renderPolicy(p), notes
	case *payload.KEKOffer:
		return renderOffer(p), notes
	case *payload.KeyPackage:
		k := renderPackage(p)
		if p.Provenance.Wrap.TrailingZeroPadding {
			notes = append(notes, "the wrapped key carries trailing zero bytes after its DER encoding (SoftHSM2 2.6.1, SPEC.md §10.5)")
		}
		return k, notes
	case *payload.Approval:
		return renderApproval(version, p, keys), notes
	case *payload.Receipt:
		return &Receipt{Package: newID(p.Package), Vault: p.Vault, Outcome: p.Outcome, KID: p.KID,
			PublicKey: publicKeyOfSPKI(p.PublicKey), Created: optTime(p.Created), Tags: p.Tags, Error: p.Error}, notes
	}
	// payload.Decode returns only the types above.
	return nil, append(notes, fmt.Sprintf("no rendering for payload type %T", v))
}

func renderPolicy(p *payload.Policy) *Policy {
	out := &Policy{
		Version:               p.Version,
		Previous:              optID(p.Previous),
		OfflineStation:        signingKey(p.OfflineStation),
		OnlineStation:         signingKey(p.OnlineStation),
		Custodians:            make([]Custodian, len(p.Custodians)),
		Threshold:             p.Threshold,
		Regions:               p.Regions,
		GlobalApproval:        p.GlobalApproval,
		Vaults:                p.Vaults,
		MinKEKBits:            p.MinKEKBits,
		KeyTypes:              p.KeyTypes,
		AllowWeakerKEK:        p.AllowWeakerKEK,
		BundleLifetimeSeconds: p.BundleLifetimeSeconds,
		MaxClockSkewSeconds:   p.MaxClockSkewSeconds,
	}
	for i, c := range p.Custodians {
		out.Custodians[i] = Custodian{Name: c.Name, Key: signingKey(c.Key)}
	}
	return out
}

func renderOffer(o *payload.KEKOffer) *KEKOffer {
	out := &KEKOffer{Vault: o.Vault, KID: o.KID, Kty: o.Kty, KeySize: o.KeySize, KeyOps: o.KeyOps,
		E: new(big.Int).SetBytes(o.E).Int64(), Expires: unixTime(o.Expires)}
	// Validate checked n and e: an RSA key of key_size bits with an odd exponent of at most
	// 32 bits, which MarshalPKIXPublicKey encodes.
	if spki, err := x509.MarshalPKIXPublicKey(o.PublicKey()); err == nil {
		out.PublicKey = publicKeyOfSPKI(spki)
	} else {
		out.PublicKey = &PublicKey{Type: fmt.Sprintf("RSA-%d", o.KeySize)}
	}
	if a := o.Attestation; a != nil {
		att := &Attestation{Format: a.Format, Data: blob(a.Data), Certificates: make([]Certificate, 0, len(a.Certificates))}
		for _, der := range a.Certificates {
			c := Certificate{SHA256: blob(der).SHA256}
			if cert, err := x509.ParseCertificate(der); err == nil {
				c.Subject, c.Issuer = cert.Subject.String(), cert.Issuer.String()
				c.Serial = hexBig(cert.SerialNumber)
				c.NotBefore = cert.NotBefore.UTC().Format(time.RFC3339)
				c.NotAfter = cert.NotAfter.UTC().Format(time.RFC3339)
			}
			att.Certificates = append(att.Certificates, c)
		}
		out.Attestation = att
	}
	return out
}

func hexBig(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}

func renderPackage(k *payload.KeyPackage) *KeyPackage {
	out := &KeyPackage{
		Vault:   k.Vault,
		KeyName: k.KeyName,
		Regions: k.Regions,
		KEK:     KEKRef{Offer: newID(k.KEK.Offer), KID: k.KEK.KID},
		Target: Target{Kty: k.Target.Kty, KeySize: k.Target.KeySize, Curve: k.Target.Curve, KeyOps: k.Target.KeyOps,
			Enabled: k.Target.Enabled, NotBefore: optTime(k.Target.NotBefore), Expires: optTime(k.Target.Expires), Tags: k.Target.Tags},
		PublicKey:  publicKeyOfSPKI(k.PublicKey),
		BYOK:       BYOK{Size: len(k.BYOK), SHA256: blob(k.BYOK).SHA256},
		Provenance: k.Provenance,
	}
	if kt, err := k.Target.KeyType(); err == nil {
		out.KeyType = string(kt)
	}
	if len(k.KCV) > 0 {
		out.KCV = hex.EncodeToString(k.KCV)
	}
	// Validate parsed the .byok strictly; parse it again for its members.
	if f, err := byok.Parse(k.BYOK); err == nil {
		out.BYOK.SchemaVersion = f.SchemaVersion
		out.BYOK.Header = BYOKHeader{KID: f.Header.KID, Alg: f.Header.Alg, Enc: f.Header.Enc}
		out.BYOK.Ciphertext = Ciphertext{Length: len(f.Ciphertext)}
		out.BYOK.Generator = f.Generator
	}
	return out
}

func renderApproval(version uint16, a *payload.Approval, keys map[bundle.ID]crypto.PublicKey) *Approval {
	out := &Approval{Target: newID(a.Target), TargetKind: a.TargetKind, Signatures: make([]Approver, len(a.Signatures))}
	for i, s := range a.Signatures {
		ap := Approver{Custodian: newID(s.Custodian), Sig: hex.EncodeToString(s.Sig)}
		pub, ok := keys[s.Custodian]
		switch {
		case !ok:
			ap.Error = fmt.Sprintf("%v %s", ErrNoKey, s.Custodian.Short())
		case len(s.Sig) != bundle.SignatureSize:
			ap.Error = fmt.Sprintf("signature of %d bytes", len(s.Sig))
		default:
			if kid, err := bundle.KeyID(pub); err != nil || kid != s.Custodian {
				ap.Error = "the key supplied under this ID has another ID"
				break
			}
			if err := bundle.VerifyApproval(pub, version, a.Target, [bundle.SignatureSize]byte(s.Sig)); err != nil {
				ap.Error = err.Error()
				break
			}
			ap.Verified = true
		}
		out.Signatures[i] = ap
	}
	return out
}
