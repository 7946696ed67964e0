package payload

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
)

// Limits on list sizes (§6).
const (
	MaxCustodians = 16
	MaxVaults     = 64
	MaxTags       = 15 // Key Vault allows 15 tags per key
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	regionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	// keyNameRE and textRE are checked by isKeyName and isText (a replay checks a dozen
	// strings of every key package); the expressions state the rule, and a test holds the
	// functions to them.
	keyNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	textRE    = regexp.MustCompile(`^[\x20-\x7e]{0,256}$`)
)

// isText reports whether textRE matches s: at most 256 printable ASCII characters.
func isText(s string) bool {
	if len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// isKeyName reports whether keyNameRE matches s: 1 to 127 ASCII letters, digits and dashes.
func isKeyName(s string) bool {
	if len(s) < 1 || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '-':
		default:
			return false
		}
	}
	return true
}

// Vault kinds (§7.2).
const (
	VaultPremium    = "premium"
	VaultManagedHSM = "managed_hsm"
)

// CanonicalVaultURL returns the canonical spelling of a vault URL: "https://" + lowercase
// host (+ ":port"), no path, query, fragment or user information.
func CanonicalVaultURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("vault URL %q: %v", s, err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("vault URL %q: want https://<host>", s)
	}
	c := "https://" + strings.ToLower(u.Host)
	// The host must be one a key identifier can name (§10.3), or no KEK, package or receipt
	// could ever match the vault.
	if _, err := byok.ParseKeyID(c + "/keys/k/1"); err != nil {
		return "", fmt.Errorf("vault URL %q: host not usable in a key identifier: %v", s, err)
	}
	return c, nil
}

// checkVaultURL enforces the grammar of a vault URL in a payload (§7): "https://" and an
// authority as a key identifier has it (§10.3), with no upper-case letter and nothing after.
// CanonicalVaultURL of such a URL returns it unchanged.
func checkVaultURL(s string) error {
	authority, ok := strings.CutPrefix(s, "https://")
	if !ok || strings.ContainsAny(authority, "/?#@") {
		return fmt.Errorf("vault URL %q: want https://<host>[:<port>] and nothing after", s)
	}
	if strings.ToLower(authority) != authority {
		return fmt.Errorf("vault URL %q is not in lower case", s)
	}
	if _, err := byok.ParseKeyID(s + "/keys/k/1"); err != nil {
		return fmt.Errorf("vault URL %q: %v", s, err)
	}
	return nil
}

// TokenInfo describes an HSM token and its PKCS#11 library (§7.1, §7.4).
type TokenInfo struct {
	Label          string `json:"label"`
	Manufacturer   string `json:"manufacturer"`
	Model          string `json:"model"`
	Serial         string `json:"serial"`
	Firmware       string `json:"firmware"`
	Hardware       string `json:"hardware"`
	Library        string `json:"library"`
	LibraryVersion string `json:"library_version"`
	Cryptoki       string `json:"cryptoki"`
}

// Validate checks that every field is printable ASCII of bounded length.
func (t *TokenInfo) Validate() error {
	for _, s := range []string{t.Label, t.Manufacturer, t.Model, t.Serial, t.Firmware, t.Hardware, t.Library, t.LibraryVersion, t.Cryptoki} {
		if !isText(s) {
			return errors.New("token info has a field that is not printable ASCII of at most 256 characters")
		}
	}
	return nil
}

// Enrollment is the genesis of a chain: the station's signing key (§7.1). It is signed by
// that key; it is trusted only once a policy names the key.
type Enrollment struct {
	Station  string     `json:"station"` // "offline" or "online", equal to the chain
	Name     string     `json:"name"`
	Key      PublicKey  `json:"key"`
	Software string     `json:"software"`
	HSM      *TokenInfo `json:"hsm,omitempty"` // where the key lives, offline only
	Toolset  *Toolset   `json:"toolset,omitempty"`
}

// Validate implements the §7.1 rules that need no other bundle.
func (e *Enrollment) Validate() error {
	if e.Station != "offline" && e.Station != "online" {
		return fmt.Errorf("station %q: want offline or online", e.Station)
	}
	if !nameRE.MatchString(e.Name) {
		return fmt.Errorf("station name %q: want lowercase letters, digits, '.', '_', '-'", e.Name)
	}
	if !isText(e.Software) {
		return errors.New("software is not printable ASCII")
	}
	if e.HSM != nil {
		if e.Station != "offline" {
			return errors.New("only the offline station has an HSM")
		}
		if err := e.HSM.Validate(); err != nil {
			return err
		}
	}
	return e.Key.Validate()
}

// Custodian is a person who approves, holding a key on their own token (§5.3).
type Custodian struct {
	Name string    `json:"name"`
	Key  PublicKey `json:"key"`
}

// Vault is a Key Vault or Managed HSM a station may serve (§7.2).
type Vault struct {
	URL    string `json:"url"`    // canonical, see CanonicalVaultURL
	Kind   string `json:"kind"`   // "premium" or "managed_hsm"
	Region string `json:"region"` // a label, e.g. "westeurope"
}

// Policy is the root of trust (§7.2): station keys, custodians, approval threshold, vaults and
// limits. Version 1 is approved by its own custodians; version n+1 by the threshold of version
// n and of itself.
type Policy struct {
	Version               uint64      `json:"version"`
	Previous              bundle.ID   `json:"previous"` // ID of version n-1; zero for version 1
	OfflineStation        PublicKey   `json:"offline_station"`
	OnlineStation         PublicKey   `json:"online_station"`
	Custodians            []Custodian `json:"custodians"`
	Threshold             int         `json:"threshold"`
	Regions               []Region    `json:"regions,omitempty"`         // format version 2: regional custodians and thresholds
	GlobalApproval        bool        `json:"global_approval,omitempty"` // format version 2: a regional package also needs Threshold of all custodians
	Vaults                []Vault     `json:"vaults"`
	MinKEKBits            int         `json:"min_kek_bits"`
	KeyTypes              []KeyType   `json:"key_types"`
	AllowWeakerKEK        bool        `json:"allow_weaker_kek"`
	BundleLifetimeSeconds int64       `json:"bundle_lifetime_seconds"`
	MaxClockSkewSeconds   int64       `json:"max_clock_skew_seconds"`
	// AllowedToolsets (version 2) are the SHA-256 digests of the binaries that may write
	// under this policy, sorted; none means any.
	AllowedToolsets []string `json:"allowed_toolsets,omitempty"`
	Toolset         *Toolset `json:"toolset,omitempty"`
}

// Validate implements the §7.2 rules that need no other bundle.
func (p *Policy) Validate() error {
	if p.Version == 0 {
		return errors.New("policy version must be at least 1")
	}
	if (p.Version == 1) != p.Previous.IsZero() {
		return errors.New("previous policy must be zero exactly in version 1")
	}
	if err := p.OfflineStation.Validate(); err != nil {
		return fmt.Errorf("offline_station: %w", err)
	}
	if err := p.OnlineStation.Validate(); err != nil {
		return fmt.Errorf("online_station: %w", err)
	}
	seen := map[bundle.ID]bool{p.OfflineStation.ID(): true}
	if seen[p.OnlineStation.ID()] {
		return errors.New("the two stations have the same key")
	}
	seen[p.OnlineStation.ID()] = true
	if len(p.Custodians) == 0 || len(p.Custodians) > MaxCustodians {
		return fmt.Errorf("want 1 to %d custodians, got %d", MaxCustodians, len(p.Custodians))
	}
	names := map[string]bool{}
	for i, c := range p.Custodians {
		if !nameRE.MatchString(c.Name) {
			return fmt.Errorf("custodians[%d].name %q: want lowercase letters, digits, '.', '_', '-'", i, c.Name)
		}
		if names[c.Name] {
			return fmt.Errorf("custodian name %q appears twice", c.Name)
		}
		names[c.Name] = true
		if err := c.Key.Validate(); err != nil {
			return fmt.Errorf("custodians[%d].key: %w", i, err)
		}
		if seen[c.Key.ID()] {
			return fmt.Errorf("custodian %q shares a key with a station or another custodian", c.Name)
		}
		seen[c.Key.ID()] = true
	}
	if p.Threshold < 1 || p.Threshold > len(p.Custodians) {
		return fmt.Errorf("threshold %d out of range 1..%d", p.Threshold, len(p.Custodians))
	}
	if err := p.validateRegions(names); err != nil {
		return err
	}
	if len(p.Vaults) == 0 || len(p.Vaults) > MaxVaults {
		return fmt.Errorf("want 1 to %d vaults, got %d", MaxVaults, len(p.Vaults))
	}
	urls := map[string]bool{}
	for i, v := range p.Vaults {
		if err := checkVaultURL(v.URL); err != nil {
			return fmt.Errorf("vaults[%d]: %w", i, err)
		}
		if urls[v.URL] {
			return fmt.Errorf("vault %s appears twice", v.URL)
		}
		urls[v.URL] = true
		if v.Kind != VaultPremium && v.Kind != VaultManagedHSM {
			return fmt.Errorf("vaults[%d].kind %q: want premium or managed_hsm", i, v.Kind)
		}
		if !regionRE.MatchString(v.Region) {
			return fmt.Errorf("vaults[%d].region %q: want lowercase letters, digits and dashes", i, v.Region)
		}
	}
	if RSAStrength(p.MinKEKBits) == 0 {
		return fmt.Errorf("min_kek_bits %d: want 2048, 3072 or 4096", p.MinKEKBits)
	}
	if len(p.KeyTypes) == 0 {
		return errors.New("key_types is empty")
	}
	for _, t := range p.KeyTypes {
		if _, err := ParseKeyType(string(t)); err != nil {
			return err
		}
	}
	if !slices.IsSortedFunc(p.KeyTypes, cmpKeyType) || len(slices.Compact(slices.Clone(p.KeyTypes))) != len(p.KeyTypes) {
		return errors.New("key_types must be in canonical order without duplicates")
	}
	if p.BundleLifetimeSeconds < 60 || p.BundleLifetimeSeconds > 366*86400 {
		return fmt.Errorf("bundle_lifetime_seconds %d out of range 60..%d", p.BundleLifetimeSeconds, 366*86400)
	}
	if p.MaxClockSkewSeconds < 0 || p.MaxClockSkewSeconds > 86400 {
		return fmt.Errorf("max_clock_skew_seconds %d out of range 0..86400", p.MaxClockSkewSeconds)
	}
	if len(p.AllowedToolsets) > MaxToolsets {
		return fmt.Errorf("%d allowed toolsets, at most %d", len(p.AllowedToolsets), MaxToolsets)
	}
	for i, h := range p.AllowedToolsets {
		if !isSHA256Hex(h) {
			return fmt.Errorf("allowed_toolsets[%d] %q: want 64 lowercase hex digits", i, h)
		}
		if i > 0 && p.AllowedToolsets[i-1] >= h {
			return errors.New("allowed_toolsets must be sorted without duplicates")
		}
	}
	return nil
}

// AllowsToolset reports whether the policy lets the binary whose SHA-256 is sha256 (64
// lowercase hex digits) write: it lists no toolset, or lists this one (§9.2 step 8).
func (p *Policy) AllowsToolset(sha256 string) bool {
	if len(p.AllowedToolsets) == 0 {
		return true
	}
	_, found := slices.BinarySearch(p.AllowedToolsets, sha256)
	return found
}

func cmpKeyType(a, b KeyType) int {
	return slices.Index(KeyTypes, a) - slices.Index(KeyTypes, b)
}

// SortKeyTypes puts key types in canonical order and removes duplicates.
func SortKeyTypes(ts []KeyType) []KeyType {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, cmpKeyType)
	return slices.Compact(ts)
}

// Vault returns the vault with the given URL.
func (p *Policy) Vault(u string) (Vault, bool) {
	for _, v := range p.Vaults {
		if v.URL == u {
			return v, true
		}
	}
	return Vault{}, false
}

// Custodian returns the custodian whose key has the given ID.
func (p *Policy) Custodian(id bundle.ID) (Custodian, bool) {
	for _, c := range p.Custodians {
		if c.Key.ID() == id {
			return c, true
		}
	}
	return Custodian{}, false
}

// AllowsKeyType reports whether the policy allows target keys of type t.
func (p *Policy) AllowsKeyType(t KeyType) bool { return slices.Contains(p.KeyTypes, t) }

// Attestation is what a Managed HSM returns for a key (§7.3).
type Attestation struct {
	Format       string   `json:"format"`
	Data         []byte   `json:"data"`
	Certificates [][]byte `json:"certificates,omitempty"` // DER, leaf first
}

// KEKOffer is a Key Exchange Key created in a vault, offered to the offline station (§7.3).
type KEKOffer struct {
	Vault       string       `json:"vault"`
	KID         string       `json:"kid"` // versioned Key Vault key identifier
	Kty         string       `json:"kty"` // "RSA-HSM"
	KeySize     int          `json:"key_size"`
	KeyOps      []string     `json:"key_ops"` // exactly ["import"]
	N           []byte       `json:"n"`
	E           []byte       `json:"e"`
	Expires     int64        `json:"expires"` // the KEK's expiry in Key Vault, Unix seconds
	Attestation *Attestation `json:"attestation,omitempty"`
	Toolset     *Toolset     `json:"toolset,omitempty"`
}

// Validate implements the §7.3 rules that need no other bundle.
func (o *KEKOffer) Validate() error {
	if err := checkVaultURL(o.Vault); err != nil {
		return err
	}
	kid, err := byok.ParseKeyID(o.KID)
	if err != nil {
		return err
	}
	if kid.Vault != o.Vault {
		return fmt.Errorf("kid %s is not in vault %s", o.KID, o.Vault)
	}
	if o.Kty != "RSA-HSM" {
		return fmt.Errorf("KEK kty %q: want RSA-HSM", o.Kty)
	}
	if RSAStrength(o.KeySize) == 0 {
		return fmt.Errorf("KEK size %d: want 2048, 3072 or 4096", o.KeySize)
	}
	if len(o.KeyOps) != 1 || o.KeyOps[0] != "import" {
		return fmt.Errorf("KEK key_ops %q: want exactly [import]", o.KeyOps)
	}
	if len(o.N) == 0 || o.N[0] == 0 || len(o.N)*8 != o.KeySize || o.N[0]&0x80 == 0 {
		return fmt.Errorf("KEK modulus is not %d bits in minimal form", o.KeySize)
	}
	if len(o.E) == 0 || len(o.E) > 4 || o.E[0] == 0 || o.E[len(o.E)-1]&1 == 0 {
		return errors.New("KEK public exponent is not an odd number of at most 32 bits in minimal form")
	}
	if e := new(big.Int).SetBytes(o.E).Int64(); e < 3 {
		return errors.New("KEK public exponent is too small")
	}
	if o.Expires <= 0 {
		return errors.New("KEK expiry is missing")
	}
	if a := o.Attestation; a != nil {
		if a.Format == "" || !isText(a.Format) || len(a.Data) == 0 {
			return errors.New("attestation is incomplete")
		}
		for i, c := range a.Certificates {
			if _, err := x509.ParseCertificate(c); err != nil {
				return fmt.Errorf("attestation certificate %d: %v", i, err)
			}
		}
	}
	return nil
}

// PublicKey returns the KEK public key.
func (o *KEKOffer) PublicKey() *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).SetBytes(o.N), E: int(new(big.Int).SetBytes(o.E).Int64())}
}

// KEKRef names the KEK a key package is wrapped with (§7.4).
type KEKRef struct {
	Offer bundle.ID `json:"offer"` // ID of the KEK offer bundle on the online chain
	KID   string    `json:"kid"`   // equal to the offer's kid and the .byok header's kid
}

// Target describes the key to create in Key Vault (§7.4). It travels beside the .byok, which
// carries no key type.
type Target struct {
	Kty       string            `json:"kty"`                // RSA-HSM, EC-HSM or oct-HSM
	KeySize   int               `json:"key_size,omitempty"` // RSA and oct-HSM
	Curve     string            `json:"crv,omitempty"`      // EC-HSM
	KeyOps    []string          `json:"key_ops"`            // sorted
	Enabled   bool              `json:"enabled"`
	NotBefore int64             `json:"not_before,omitempty"` // Unix seconds
	Expires   int64             `json:"expires,omitempty"`    // Unix seconds
	Tags      map[string]string `json:"tags,omitempty"`
}

// KeyType returns the target's key type.
func (t *Target) KeyType() (KeyType, error) { return KeyTypeOf(t.Kty, t.KeySize, t.Curve) }

// KeyAttributes are a target key's PKCS#11 attributes, recorded for provenance (§7.4).
type KeyAttributes struct {
	Label      string            `json:"label"`
	ID         string            `json:"id"` // CKA_ID in hex
	Attributes map[string]string `json:"attributes,omitempty"`
}

// WrapInfo records how the key was wrapped (§7.4).
type WrapInfo struct {
	Path                  string   `json:"path"` // "one-step" (CKM_RSA_AES_KEY_WRAP) or "two-step"
	Mechanisms            []string `json:"mechanisms,omitempty"`
	EphemeralKeyDestroyed bool     `json:"ephemeral_key_destroyed"`
	TrailingZeroPadding   bool     `json:"trailing_zero_padding"`
}

// Provenance records where and how a key was made and wrapped (§7.4).
type Provenance struct {
	Tool  string        `json:"tool"`
	Token TokenInfo     `json:"token"`
	Key   KeyAttributes `json:"key"`
	Wrap  WrapInfo      `json:"wrap"`
}

// KeyPackage is a wrapped key and its manifest (§7.4).
type KeyPackage struct {
	Vault      string     `json:"vault"`
	KeyName    string     `json:"key_name"`
	Regions    []string   `json:"regions,omitempty"` // format version 2: the regions the key may live in (residency)
	KEK        KEKRef     `json:"kek"`
	Target     Target     `json:"target"`
	PublicKey  []byte     `json:"public_key,omitempty"` // DER SubjectPublicKeyInfo, RSA and EC
	KCV        []byte     `json:"kcv,omitempty"`        // key check value, AES
	BYOK       []byte     `json:"byok"`                 // the .byok file, canonical
	Provenance Provenance `json:"provenance"`
	Toolset    *Toolset   `json:"toolset,omitempty"`

	// file is the .byok parsed while Unmarshal validated the package, and fileSrc the bytes
	// it was parsed from (see File).
	file    *byok.File
	fileSrc []byte
}

// File returns the package's .byok file, parsed; the caller must not modify it. A package
// from Decode or Unmarshal returns the file parsed during validation (parsing a .byok is the
// most expensive step of decoding a package) as long as BYOK still holds the same bytes.
func (k *KeyPackage) File() (*byok.File, error) {
	if k.file != nil && bytes.Equal(k.fileSrc, k.BYOK) {
		return k.file, nil
	}
	return byok.Parse(k.BYOK)
}

// Validate implements the §7.4 rules that need no other bundle.
func (k *KeyPackage) Validate() error {
	_, err := k.validate()
	return err
}

// validateAndKeep is Validate, keeping the parsed .byok for File.
func (k *KeyPackage) validateAndKeep() error {
	f, err := k.validate()
	if err == nil {
		k.file, k.fileSrc = f, bytes.Clone(k.BYOK)
	}
	return err
}

// validate implements Validate and returns the parsed .byok.
func (k *KeyPackage) validate() (*byok.File, error) {
	if err := checkVaultURL(k.Vault); err != nil {
		return nil, err
	}
	if !isKeyName(k.KeyName) {
		return nil, fmt.Errorf("key name %q: want 1 to 127 letters, digits and dashes", k.KeyName)
	}
	if err := checkRegionList("regions", k.Regions); err != nil {
		return nil, err
	}
	if k.KEK.Offer.IsZero() {
		return nil, errors.New("kek.offer is zero")
	}
	kid, err := byok.ParseKeyID(k.KEK.KID)
	if err != nil {
		return nil, fmt.Errorf("kek.kid: %w", err)
	}
	if kid.Vault != k.Vault {
		return nil, fmt.Errorf("KEK %s is not in vault %s", k.KEK.KID, k.Vault)
	}
	f, err := byok.Parse(k.BYOK)
	if err != nil {
		return nil, fmt.Errorf("byok: %w", err)
	}
	if f.Header.KID != k.KEK.KID {
		return nil, fmt.Errorf("the .byok names KEK %s, the manifest %s", f.Header.KID, k.KEK.KID)
	}
	kt, err := k.Target.KeyType()
	if err != nil {
		return nil, err
	}
	if err := checkKeyOps(k.Target.Kty, k.Target.KeyOps); err != nil {
		return nil, err
	}
	if k.Target.NotBefore < 0 || k.Target.Expires < 0 || (k.Target.Expires != 0 && k.Target.Expires <= k.Target.NotBefore) {
		return nil, errors.New("target not_before/expires out of order")
	}
	if err := checkTags(k.Target.Tags); err != nil {
		return nil, err
	}
	if kt.IsSymmetric() {
		if len(k.PublicKey) != 0 || len(k.KCV) != 3 {
			return nil, errors.New("an AES target has a 3-byte kcv and no public key")
		}
	} else {
		if len(k.KCV) != 0 {
			return nil, errors.New("an RSA or EC target has a public key and no kcv")
		}
		pub, err := parseTargetSPKI(k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("public_key: %v", err)
		}
		pt, err := KeyTypeOfPublic(pub)
		if err != nil {
			return nil, err
		}
		if pt != kt {
			return nil, fmt.Errorf("public key is %s, target says %s", pt, kt)
		}
	}
	if !isText(k.Provenance.Tool) || !isText(k.Provenance.Wrap.Path) {
		return nil, errors.New("provenance has text that is not printable ASCII")
	}
	if err := k.Provenance.Token.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

func checkTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("%d tags, Key Vault allows %d", len(tags), MaxTags)
	}
	for k, v := range tags {
		if k == "" || len(k) > 512 || len(v) > 256 {
			return fmt.Errorf("tag %q: names are 1 to 512 characters, values at most 256", k)
		}
	}
	return nil
}

// Signature is one custodian's approval signature (§5.3).
type Signature struct {
	Custodian bundle.ID `json:"custodian"` // key ID
	Sig       []byte    `json:"sig"`       // 64 bytes, §5.2
}

// Approval carries custodian signatures over another bundle's ID (§7.5).
type Approval struct {
	Target     bundle.ID   `json:"target"`
	TargetKind string      `json:"target_kind"` // "policy" or "key_package"
	Signatures []Signature `json:"signatures"`  // sorted by custodian key ID, no duplicates
	Toolset    *Toolset    `json:"toolset,omitempty"`
}

// Validate implements the §7.5 rules that need no other bundle.
func (a *Approval) Validate() error {
	if a.Target.IsZero() {
		return errors.New("approval target is zero")
	}
	if a.TargetKind != bundle.KindPolicy.String() && a.TargetKind != bundle.KindKeyPackage.String() {
		return fmt.Errorf("approval target_kind %q: want policy or key_package", a.TargetKind)
	}
	if len(a.Signatures) == 0 || len(a.Signatures) > MaxCustodians {
		return fmt.Errorf("want 1 to %d signatures, got %d", MaxCustodians, len(a.Signatures))
	}
	for i, s := range a.Signatures {
		if len(s.Sig) != bundle.SignatureSize {
			return fmt.Errorf("signature %d has %d bytes, want %d", i, len(s.Sig), bundle.SignatureSize)
		}
		if i > 0 && bytes.Compare(a.Signatures[i-1].Custodian[:], s.Custodian[:]) >= 0 {
			return errors.New("signatures must be sorted by custodian key ID without duplicates")
		}
	}
	return nil
}

// MaxVersions is the largest number of key versions a receipt lists (§6).
const MaxVersions = 64

// checkVersions checks a receipt's versions (§7.6): none, or 2 to MaxVersions key
// identifiers of the receipt's key (same vault and name as kid), sorted, without duplicates,
// kid among them.
func checkVersions(vs []string, kid string, k byok.KeyID) error {
	if len(vs) == 0 {
		return nil
	}
	if len(vs) < 2 || len(vs) > MaxVersions {
		return fmt.Errorf("versions lists %d key versions: want 2 to %d, or none", len(vs), MaxVersions)
	}
	for i, v := range vs {
		vk, err := byok.ParseKeyID(v)
		if err != nil {
			return fmt.Errorf("versions[%d]: %w", i, err)
		}
		if vk.Vault != k.Vault || vk.Name != k.Name {
			return fmt.Errorf("versions[%d] %s is not a version of key %s/keys/%s", i, v, k.Vault, k.Name)
		}
		if i > 0 && vs[i-1] >= v {
			return errors.New("versions must be sorted without duplicates")
		}
	}
	if !slices.Contains(vs, kid) {
		return fmt.Errorf("versions does not list the receipt's kid %s", kid)
	}
	return nil
}

// SortSignatures puts signatures in canonical order.
func SortSignatures(s []Signature) {
	slices.SortFunc(s, func(a, b Signature) int { return bytes.Compare(a.Custodian[:], b.Custodian[:]) })
}

// Receipt outcomes (§7.6).
const (
	OutcomeImported          = "imported"            // imported; the returned public key matches
	OutcomePublicKeyMismatch = "public_key_mismatch" // imported, but Key Vault returned another public key
	OutcomeRejected          = "rejected"            // Key Vault refused the import; nothing was created
)

// Receipt is the outcome of uploading a key package (§7.6).
type Receipt struct {
	Package   bundle.ID         `json:"package"`
	Vault     string            `json:"vault"`
	Outcome   string            `json:"outcome"`
	KID       string            `json:"kid,omitempty"`        // versioned ID of the imported key
	PublicKey []byte            `json:"public_key,omitempty"` // what Key Vault returned, DER SPKI
	Created   int64             `json:"created,omitempty"`    // Key Vault's creation time, Unix seconds
	Tags      map[string]string `json:"tags,omitempty"`
	Error     string            `json:"error,omitempty"` // Key Vault's error code and message, rejected only
	// Versions (version 2) lists every key version that carries the package's tag when Key
	// Vault holds more than one: a duplicate import. Sorted; KID is one of them.
	Versions []string `json:"versions,omitempty"`
	Toolset  *Toolset `json:"toolset,omitempty"`
}

// Validate implements the §7.6 rules that need no other bundle.
func (r *Receipt) Validate() error {
	if r.Package.IsZero() {
		return errors.New("receipt package is zero")
	}
	if err := checkVaultURL(r.Vault); err != nil {
		return err
	}
	switch r.Outcome {
	case OutcomeImported, OutcomePublicKeyMismatch:
		kid, err := byok.ParseKeyID(r.KID)
		if err != nil {
			return err
		}
		if kid.Vault != r.Vault {
			return fmt.Errorf("kid %s is not in vault %s", r.KID, r.Vault)
		}
		if r.Created <= 0 || r.Error != "" {
			return errors.New("an import receipt has a creation time and no error")
		}
		if len(r.PublicKey) != 0 {
			if _, err := parseTargetSPKI(r.PublicKey); err != nil {
				return fmt.Errorf("public_key: %v", err)
			}
		}
		if err := checkVersions(r.Versions, r.KID, kid); err != nil {
			return err
		}
	case OutcomeRejected:
		if r.KID != "" || len(r.PublicKey) != 0 || r.Error == "" || len(r.Versions) != 0 {
			return errors.New("a rejected receipt has an error and no key")
		}
	default:
		return fmt.Errorf("receipt outcome %q: want imported, public_key_mismatch or rejected", r.Outcome)
	}
	if len(r.Error) > 1024 {
		return errors.New("receipt error longer than 1024 bytes")
	}
	return checkTags(r.Tags)
}
