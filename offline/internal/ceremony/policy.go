package ceremony

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// CustodianSpec is a custodian to enrol: a name and the label of their token.
type CustodianSpec struct {
	Name, Token string
}

// CustodianNameRE is the rule for custodian and station names.
var CustodianNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// PolicyChange is what a new policy version changes in the one in force, as the operator
// gave it (the messages name the options of policy amend). A nil pointer leaves the rule as
// it is.
type PolicyChange struct {
	RemoveCustodians []string // names
	AddCustodians    []string // NAME=TOKEN_LABEL
	StationToken     string   // the station's token, which no custodian may use
	Threshold        *int
	RemoveVaults     []string // URLs
	AddVaults        []string // URL=KIND:REGION
	RemoveRegions    []string // names
	Regions          []string // NAME=M:CUSTODIAN,CUSTODIAN,...
	GlobalApproval   *bool
	MinKEKBits       *int
	KeyTypes         []string // nil: unchanged
	AllowWeakerKEK   *bool
	BundleLifetime   *time.Duration
	MaxClockSkew     *time.Duration
	AllowToolsets    []string // SHA-256 of binaries allowed to write
	RemoveToolsets   []string // SHA-256 of binaries no longer allowed
}

// Amend returns the next version of cur as ch changes it, and the custodians to add (enrolled
// by the caller, who appends them to the policy). Every error wraps ErrUsage, and nothing is
// written: a refusal comes before the new custodians are enrolled.
func Amend(cur *chain.PolicyRecord, ch PolicyChange) (*payload.Policy, []CustodianSpec, error) {
	p := *cur.Policy
	p.Version, p.Previous = cur.Policy.Version+1, cur.ID
	p.Toolset = nil // the station records the binary that writes the new version
	p.Custodians = slices.Clone(cur.Policy.Custodians)
	p.Vaults = slices.Clone(cur.Policy.Vaults)
	p.Regions = slices.Clone(cur.Policy.Regions)
	p.KeyTypes = slices.Clone(cur.Policy.KeyTypes)
	changed := false

	for _, n := range ch.RemoveCustodians {
		i := slices.IndexFunc(p.Custodians, func(c payload.Custodian) bool { return c.Name == n })
		if i < 0 {
			return nil, nil, usagef("--remove-custodian %s: not a custodian of the policy in force (%s)", n, CustodianNames(cur.Policy))
		}
		p.Custodians = slices.Delete(p.Custodians, i, i+1)
		changed = true
	}
	var adds []CustodianSpec
	tokens := map[string]bool{ch.StationToken: ch.StationToken != ""}
	for _, v := range ch.AddCustodians {
		name, tok, ok := strings.Cut(v, "=")
		if !ok || tok == "" || !CustodianNameRE.MatchString(name) {
			return nil, nil, usagef("--add-custodian %q: want NAME=TOKEN_LABEL, the name lowercase letters, digits, '.', '_' and '-'", v)
		}
		if slices.ContainsFunc(cur.Policy.Custodians, func(c payload.Custodian) bool { return c.Name == name }) || slices.ContainsFunc(adds, func(c CustodianSpec) bool { return c.Name == name }) {
			return nil, nil, usagef("--add-custodian %s: the name is taken; a new custodian needs a name of their own", name)
		}
		if tokens[tok] {
			return nil, nil, usagef("--add-custodian %s: token %q is given twice", name, tok)
		}
		tokens[tok] = true
		adds = append(adds, CustodianSpec{Name: name, Token: tok})
		changed = true
	}
	if ch.Threshold != nil {
		if *ch.Threshold < 1 {
			return nil, nil, usagef("--threshold %d: want at least 1", *ch.Threshold)
		}
		p.Threshold = *ch.Threshold
		changed = changed || p.Threshold != cur.Policy.Threshold
	}
	if n := len(p.Custodians) + len(adds); n == 0 {
		return nil, nil, usagef("the new version would have no custodians")
	} else if p.Threshold > n {
		return nil, nil, usagef("threshold %d: the new version has %d custodians; give --threshold", p.Threshold, n)
	}
	for _, u := range ch.RemoveVaults {
		url, err := payload.CanonicalVaultURL(u)
		if err != nil {
			return nil, nil, usagef("--remove-vault: %v", err)
		}
		i := slices.IndexFunc(p.Vaults, func(v payload.Vault) bool { return v.URL == url })
		if i < 0 {
			return nil, nil, usagef("--remove-vault %s: the policy in force does not allow it", url)
		}
		p.Vaults = slices.Delete(p.Vaults, i, i+1)
		changed = true
	}
	for _, v := range ch.AddVaults {
		vault, err := ParseVault(v)
		if err != nil {
			return nil, nil, err
		}
		if slices.ContainsFunc(p.Vaults, func(x payload.Vault) bool { return x.URL == vault.URL }) {
			return nil, nil, usagef("--add-vault %s: allowed already (remove it too to change its kind or region)", vault.URL)
		}
		p.Vaults = append(p.Vaults, vault)
		changed = true
	}
	if len(p.Vaults) == 0 {
		return nil, nil, usagef("the new version would allow no vault")
	}
	for _, n := range ch.RemoveRegions {
		if _, ok := p.Region(n); !ok {
			return nil, nil, usagef("--remove-region %s: the policy in force has no custodians for region %s", n, n)
		}
		p.Regions = slices.DeleteFunc(p.Regions, func(r payload.Region) bool { return r.Name == n })
		changed = true
	}
	for _, v := range ch.Regions {
		r, err := ParseRegion(v)
		if err != nil {
			return nil, nil, err
		}
		old, had := cur.Policy.Region(r.Name)
		p.Regions = SetRegion(p.Regions, r)
		changed = changed || !had || old.Threshold != r.Threshold || !slices.Equal(old.Custodians, r.Custodians)
	}
	if ch.GlobalApproval != nil {
		changed = changed || p.GlobalApproval != *ch.GlobalApproval
		p.GlobalApproval = *ch.GlobalApproval
	}
	names := make([]string, 0, len(p.Custodians)+len(adds))
	for _, c := range p.Custodians {
		names = append(names, c.Name)
	}
	for _, a := range adds {
		names = append(names, a.Name)
	}
	if err := CheckRegions(p.Regions, p.GlobalApproval, names, p.Vaults); err != nil {
		return nil, nil, err
	}
	if ch.MinKEKBits != nil {
		if payload.RSAStrength(*ch.MinKEKBits) == 0 {
			return nil, nil, usagef("--min-kek-bits %d: want 2048, 3072 or 4096", *ch.MinKEKBits)
		}
		changed = changed || p.MinKEKBits != *ch.MinKEKBits
		p.MinKEKBits = *ch.MinKEKBits
	}
	if ch.KeyTypes != nil {
		var kts []payload.KeyType
		for _, s := range ch.KeyTypes {
			t, err := payload.ParseKeyType(strings.ToUpper(s))
			if err != nil {
				return nil, nil, usagef("--key-types: %v", err)
			}
			kts = append(kts, t)
		}
		kts = payload.SortKeyTypes(kts)
		changed = changed || !slices.Equal(kts, p.KeyTypes)
		p.KeyTypes = kts
	}
	for _, t := range p.KeyTypes {
		if t.IsSymmetric() && !slices.ContainsFunc(p.Vaults, func(v payload.Vault) bool { return v.Kind == payload.VaultManagedHSM }) {
			return nil, nil, usagef("the new version allows %s, which only a Managed HSM takes, and no vault of it is managed_hsm: change --key-types too", t)
		}
	}
	if ch.AllowWeakerKEK != nil {
		changed = changed || p.AllowWeakerKEK != *ch.AllowWeakerKEK
		p.AllowWeakerKEK = *ch.AllowWeakerKEK
	}
	if d := ch.BundleLifetime; d != nil {
		if *d < time.Minute || *d > 366*24*time.Hour {
			return nil, nil, usagef("--bundle-lifetime %s: want 1m to 8784h", *d)
		}
		secs := int64(*d / time.Second)
		changed = changed || p.BundleLifetimeSeconds != secs
		p.BundleLifetimeSeconds = secs
	}
	if d := ch.MaxClockSkew; d != nil {
		if *d < 0 || *d > 24*time.Hour {
			return nil, nil, usagef("--max-clock-skew %s: want 0 to 24h", *d)
		}
		secs := int64(*d / time.Second)
		changed = changed || p.MaxClockSkewSeconds != secs
		p.MaxClockSkewSeconds = secs
	}
	if ts, moved, err := amendToolsets(p.AllowedToolsets, ch.AllowToolsets, ch.RemoveToolsets); err != nil {
		return nil, nil, err
	} else if moved {
		p.AllowedToolsets, changed = ts, true
	}
	if !changed {
		return nil, nil, usagef("nothing to change: give what the new version changes (see --help)")
	}
	return &p, adds, nil
}

// amendToolsets returns the allowed toolsets cur becomes with allow added and remove taken
// out, and whether that changes them.
func amendToolsets(cur, allow, remove []string) ([]string, bool, error) {
	next := slices.Clone(cur)
	for _, s := range remove {
		h, err := payload.ParseToolsetHash(s)
		if err != nil {
			return nil, false, usagef("--remove-toolset: %v", err)
		}
		i := slices.Index(next, h)
		if i < 0 {
			return nil, false, usagef("--remove-toolset %s: the policy in force does not list it", h)
		}
		next = slices.Delete(next, i, i+1)
	}
	for _, s := range allow {
		h, err := payload.ParseToolsetHash(s)
		if err != nil {
			return nil, false, usagef("--allow-toolset: %v", err)
		}
		if slices.Contains(next, h) {
			return nil, false, usagef("--allow-toolset %s: allowed already", h)
		}
		next = append(next, h)
	}
	next = payload.SortToolsets(next)
	if len(next) > payload.MaxToolsets {
		return nil, false, usagef("the new version would list %d toolsets, at most %d", len(next), payload.MaxToolsets)
	}
	if len(next) == 0 {
		next = nil
	}
	return next, !slices.Equal(next, cur), nil
}

// PolicyTerms is the canonical encoding of p without the toolset that wrote it: what the
// options of init and policy amend decide, to tell whether an interrupted run wrote p
// already.
func PolicyTerms(p *payload.Policy) string {
	q := *p
	q.Toolset = nil
	b, err := payload.Marshal(&q)
	if err != nil {
		return "" // a policy that cannot be encoded: nothing equals it
	}
	return string(b)
}

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// AppliedAlready refuses, as done already (ErrAppliedAlready), a change whose version is the
// one in force: ch applied to the version before it gives it (a rerun of an amend that
// finished, its end perhaps unseen).
func AppliedAlready(s *store.Store, cur *chain.PolicyRecord, ch PolicyChange) error {
	if cur.Policy.Version < 2 {
		return nil
	}
	ps, err := s.Policies()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ps, func(p store.Policy) bool { return p.Version == cur.Policy.Version-1 })
	if i < 0 || ps[i].ID != cur.Policy.Previous {
		return nil
	}
	next, adds, err := Amend(&chain.PolicyRecord{ID: ps[i].ID, Policy: ps[i].Policy}, ch)
	if err != nil {
		return nil
	}
	for _, a := range adds {
		c, err := s.Custodian(a.Name)
		if err != nil || c.TokenLabel != a.Token {
			return nil
		}
		next.Custodians = append(next.Custodians, payload.Custodian{Name: a.Name, Key: c.Key})
	}
	if PolicyTerms(next) != PolicyTerms(cur.Policy) {
		return nil
	}
	return errorf(ErrAppliedAlready, "policy version %d (%s), which these changes make, is in force already", cur.Policy.Version, cur.ID.Short())
}

// PolicyLifetime is the longest lifetime a bundle made under p may have.
func PolicyLifetime(p *chain.PolicyRecord) time.Duration {
	return time.Duration(p.Policy.BundleLifetimeSeconds) * time.Second
}

// ParseVault parses URL=KIND:REGION (--vault, --add-vault); errors wrap ErrUsage.
func ParseVault(v string) (payload.Vault, error) {
	i := strings.LastIndexByte(v, '=')
	if i < 0 {
		return payload.Vault{}, usagef("--vault %q: want URL=KIND:REGION", v)
	}
	u, err := payload.CanonicalVaultURL(v[:i])
	if err != nil {
		return payload.Vault{}, usagef("--vault: %v", err)
	}
	kind, region, ok := strings.Cut(v[i+1:], ":")
	if !ok || region == "" {
		return payload.Vault{}, usagef("--vault %q: want URL=KIND:REGION", v)
	}
	kind = strings.ReplaceAll(strings.ToLower(kind), "-", "_")
	if kind == "managedhsm" {
		kind = payload.VaultManagedHSM
	}
	if kind != payload.VaultPremium && kind != payload.VaultManagedHSM {
		return payload.Vault{}, usagef("--vault %q: kind %q is not premium or managed_hsm", v, kind)
	}
	return payload.Vault{URL: u, Kind: kind, Region: strings.ToLower(region)}, nil
}

// CustodianNames lists p's custodians, comma-separated.
func CustodianNames(p *payload.Policy) string {
	return JoinNames(p.Custodians)
}

// PackageApprovers returns the custodians of p whose approvals count for a key package for
// vault (SPEC.md §9.7), and the vault's region if it has custodians of its own.
func PackageApprovers(p *payload.Policy, vault string) ([]payload.Custodian, string) {
	v, _ := p.Vault(vault)
	r, ok := p.Region(v.Region)
	if !ok {
		return p.Custodians, ""
	}
	if p.GlobalApproval {
		// Every custodian counts towards the policy's own threshold.
		return p.Custodians, r.Name
	}
	var out []payload.Custodian
	for _, c := range p.Custodians {
		if slices.Contains(r.Custodians, c.Name) {
			out = append(out, c)
		}
	}
	return out, r.Name
}

// JoinNames lists the names of cs, comma-separated.
func JoinNames(cs []payload.Custodian) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Name)
	}
	return strings.Join(s, ", ")
}

// CountCustodians counts the key IDs in ids that are custodians of p.
func CountCustodians(p *payload.Policy, ids []bundle.ID) int {
	n := 0
	for _, id := range ids {
		if _, ok := p.Custodian(id); ok {
			n++
		}
	}
	return n
}

// PolicyChanges lists, for people, what next changes in cur.
func PolicyChanges(cur, next *payload.Policy) []string {
	var out []string
	for _, c := range cur.Custodians {
		if _, ok := next.Custodian(c.Key.ID()); !ok {
			out = append(out, fmt.Sprintf("custodian %s (%s) leaves", c.Name, c.Key.ID().Short()))
		}
	}
	for _, c := range next.Custodians {
		if _, ok := cur.Custodian(c.Key.ID()); !ok {
			out = append(out, fmt.Sprintf("custodian %s (%s) joins", c.Name, c.Key.ID().Short()))
		}
	}
	if cur.Threshold != next.Threshold || len(cur.Custodians) != len(next.Custodians) {
		out = append(out, fmt.Sprintf("approvals: %d of %d, was %d of %d", next.Threshold, len(next.Custodians), cur.Threshold, len(cur.Custodians)))
	}
	for _, v := range cur.Vaults {
		if !slices.Contains(next.Vaults, v) {
			out = append(out, fmt.Sprintf("vault %s (%s, %s) no longer allowed", v.URL, v.Kind, v.Region))
		}
	}
	for _, v := range next.Vaults {
		if !slices.Contains(cur.Vaults, v) {
			out = append(out, fmt.Sprintf("vault %s (%s, %s) allowed", v.URL, v.Kind, v.Region))
		}
	}
	out = append(out, regionChanges(cur, next)...)
	if cur.MinKEKBits != next.MinKEKBits {
		out = append(out, fmt.Sprintf("smallest KEK: RSA-%d, was RSA-%d", next.MinKEKBits, cur.MinKEKBits))
	}
	if !slices.Equal(cur.KeyTypes, next.KeyTypes) {
		out = append(out, fmt.Sprintf("key types: %s, was %s", joinKeyTypes(next.KeyTypes), joinKeyTypes(cur.KeyTypes)))
	}
	if cur.AllowWeakerKEK != next.AllowWeakerKEK {
		out = append(out, fmt.Sprintf("KEK weaker than the target allowed: %t, was %t", next.AllowWeakerKEK, cur.AllowWeakerKEK))
	}
	if cur.BundleLifetimeSeconds != next.BundleLifetimeSeconds {
		out = append(out, fmt.Sprintf("bundle lifetime: %s, was %s", time.Duration(next.BundleLifetimeSeconds)*time.Second, time.Duration(cur.BundleLifetimeSeconds)*time.Second))
	}
	if cur.MaxClockSkewSeconds != next.MaxClockSkewSeconds {
		out = append(out, fmt.Sprintf("clock skew allowed: %s, was %s", time.Duration(next.MaxClockSkewSeconds)*time.Second, time.Duration(cur.MaxClockSkewSeconds)*time.Second))
	}
	for _, h := range next.AllowedToolsets {
		if !slices.Contains(cur.AllowedToolsets, h) {
			out = append(out, fmt.Sprintf("toolset %s allowed to write", h))
		}
	}
	for _, h := range cur.AllowedToolsets {
		if !slices.Contains(next.AllowedToolsets, h) {
			out = append(out, fmt.Sprintf("toolset %s no longer allowed to write", h))
		}
	}
	if len(cur.AllowedToolsets) > 0 && len(next.AllowedToolsets) == 0 {
		out = append(out, "any binary may write: the new version lists no toolset")
	}
	return out
}

func joinKeyTypes(ts []payload.KeyType) string {
	var s []string
	for _, t := range ts {
		s = append(s, string(t))
	}
	return strings.Join(s, ",")
}
