package audit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// KeyResidency is, for one key bound to regions (its key packages carry regions, SPEC.md
// §7.4), every vault and region it was packaged for, and where it landed: the audit's proof
// of where the key lives. A key is its public key (RSA, EC) or, for AES, its check value
// and name.
type KeyResidency struct {
	Key        string      `json:"key"`     // "sha256:<hex>" of the public key, or "kcv:<hex>/<name>"
	Names      []string    `json:"names"`   // its names in Key Vault
	Regions    []string    `json:"regions"` // the regions its first package binds it to
	Placements []Placement `json:"placements"`
	// Violations say where the key left its regions or its packages disagree about them;
	// each is also a finding.
	Violations []string `json:"violations"`
}

// Placement is one key package of a key: the vault and region it was made for, and its
// status (StatusImported, StatusNotUploaded, ...).
type Placement struct {
	Package string   `json:"package_fingerprint"`
	Vault   string   `json:"vault"`
	Region  string   `json:"region"`
	Regions []string `json:"regions"` // the residency this package states
	Status  string   `json:"status"`
	Version string   `json:"version,omitempty"` // the key version Key Vault gave it
}

// RegionView is one region of the policy in force, for the per-region view: who approves
// its keys, its vaults, and its keys.
type RegionView struct {
	Name string `json:"name"`
	// Custodians approve key packages for its vaults: the region's own (Own), or else all
	// the policy's.
	Custodians []string `json:"custodians"`
	Threshold  int      `json:"threshold"`
	Own        bool     `json:"own_custodians"`
	// Global: a package also needs the policy's threshold of all custodians (GlobalThreshold).
	Global          bool     `json:"global_approval"`
	GlobalThreshold int      `json:"global_threshold,omitempty"`
	Vaults          []string `json:"vaults"`
	Packages        int      `json:"packages"` // key packages for its vaults in the inventory
	Imported        int      `json:"imported"`
}

// identity returns the residency key of an inventory row.
func identity(k *Key) string {
	if k.PublicKeySHA256 != "" {
		return "sha256:" + k.PublicKeySHA256
	}
	return "kcv:" + k.KCV + "/" + k.Name
}

// noteKey records an inventory row for the per-region view and, if its package states a
// residency, the key's identity, for residencyPass.
func (a *auditor) noteKey(k *Key) {
	if k.Region != "" {
		if a.regionKeys == nil {
			a.regionKeys = map[string]*[2]int{}
		}
		c := a.regionKeys[k.Region]
		if c == nil {
			c = &[2]int{}
			a.regionKeys[k.Region] = c
		}
		c[0]++
		if k.Status == StatusImported || k.Status == StatusMismatch || k.Status == StatusReceiptMissing {
			c[1]++
		}
	}
	if len(k.Residency) > 0 {
		if a.bound == nil {
			a.bound = map[string]bool{}
		}
		a.bound[identity(k)] = true
	}
}

// residencyPass reads the inventory once more and records, for every key one of whose
// packages states a residency, each of its packages, those that state none included.
func (a *auditor) residencyPass() error {
	if len(a.bound) == 0 {
		return nil
	}
	if err := a.keys.flush(); err != nil {
		return err
	}
	for k, err := range a.keys.all() {
		if err != nil {
			return err
		}
		if a.bound[identity(&k)] {
			a.place(&k)
		}
	}
	return nil
}

// place adds an inventory row to its key's residency.
func (a *auditor) place(k *Key) {
	if a.residency == nil {
		a.residency = map[string]*KeyResidency{}
	}
	id := identity(k)
	r := a.residency[id]
	if r == nil {
		r = &KeyResidency{Key: id, Names: []string{}, Regions: slices.Clone(k.Residency), Placements: []Placement{}, Violations: []string{}}
		a.residency[id] = r
	}
	if len(r.Regions) == 0 && len(r.Placements) == 0 {
		r.Regions = slices.Clone(k.Residency)
	}
	if r.Regions == nil {
		r.Regions = []string{}
	}
	if !slices.Contains(r.Names, k.Name) {
		r.Names = append(r.Names, k.Name)
	}
	pl := Placement{Package: k.PackageFingerprint, Vault: k.Vault, Region: k.Region, Regions: slices.Clone(k.Residency), Status: k.Status}
	if pl.Regions == nil {
		pl.Regions = []string{}
	}
	if k.Receipt != nil {
		pl.Version = k.Receipt.Version
	}
	r.Placements = append(r.Placements, pl)
	if !slices.Equal(pl.Regions, r.Regions) {
		v := fmt.Sprintf("key package %s states regions [%s], the key's first package [%s]",
			pl.Package, strings.Join(pl.Regions, ", "), strings.Join(r.Regions, ", "))
		r.Violations = append(r.Violations, v)
		err := &chain.PolicyError{Rule: "residency", Detail: fmt.Sprintf("key %s (%s): %s", r.Key, strings.Join(r.Names, ", "), v)}
		a.resFindings = append(a.resFindings, Finding{Verdict: chain.Verdict(err), Chain: "offline", Seq: k.PackageSeq, ID: k.Package,
			Fingerprint: k.PackageFingerprint, Kind: "key_package", Message: err.Error(), Err: err})
	}
	if len(r.Regions) > 0 && !slices.Contains(r.Regions, pl.Region) {
		r.Violations = append(r.Violations, fmt.Sprintf("key package %s is for %s in region %s, outside the key's regions [%s]",
			pl.Package, pl.Vault, pl.Region, strings.Join(r.Regions, ", ")))
	}
}

// residencyFindings returns the keys' residency views, sorted by key, and a finding for each
// package of a key whose regions differ from those of the key's first package (a package
// outside its own regions is the replay's finding already, SPEC.md §9.6).
func (a *auditor) residencyFindings() ([]KeyResidency, []Finding) {
	out := []KeyResidency{}
	for _, r := range a.residency {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(x, y KeyResidency) int { return strings.Compare(x.Key, y.Key) })
	return out, a.resFindings
}

// regionViews returns the per-region view of policy p (the policy in force, else the latest
// one): every region a vault of p is in, or that p names.
func (a *auditor) regionViews(p *payload.Policy) []RegionView {
	out := []RegionView{}
	if p == nil {
		return out
	}
	names := p.VaultRegions()
	for _, r := range p.Regions {
		if !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		v := RegionView{Name: n, Vaults: []string{}}
		if r, ok := p.Region(n); ok {
			v.Custodians, v.Threshold, v.Own = slices.Clone(r.Custodians), r.Threshold, true
			if p.GlobalApproval {
				v.Global, v.GlobalThreshold = true, p.Threshold
			}
		} else {
			for _, c := range p.Custodians {
				v.Custodians = append(v.Custodians, c.Name)
			}
			v.Threshold = p.Threshold
		}
		for _, vl := range p.Vaults {
			if vl.Region == n {
				v.Vaults = append(v.Vaults, vl.URL)
			}
		}
		if c := a.regionKeys[n]; c != nil {
			v.Packages, v.Imported = c[0], c[1]
		}
		out = append(out, v)
	}
	return out
}

// hasOwnRegions reports whether a region of the view has custodians of its own: only then
// is the per-region view more than the policy's own lines.
func hasOwnRegions(rs []RegionView) bool {
	for _, r := range rs {
		if r.Own {
			return true
		}
	}
	return false
}

// regionText describes a region of the view in one line.
func regionText(r RegionView) string {
	who := fmt.Sprintf("%d of %s", r.Threshold, strings.Join(r.Custodians, ", "))
	if !r.Own {
		who += " (the policy's custodians)"
	}
	if r.Global {
		who += fmt.Sprintf(", and %d of all custodians", r.GlobalThreshold)
	}
	return fmt.Sprintf("%s: %s approve its keys; vaults %s; %d key package(s), %d imported", r.Name, who, strings.Join(r.Vaults, ", "), r.Packages, r.Imported)
}

// residencyText describes a key bound to regions.
func residencyText(kr KeyResidency) string {
	return fmt.Sprintf("%s (%s) bound to %s", kr.Key, strings.Join(kr.Names, ", "), strings.Join(kr.Regions, ", "))
}

// placementText describes one package of a key bound to regions.
func placementText(pl Placement) string {
	s := fmt.Sprintf("package %s for %s (%s): %s", pl.Package, pl.Vault, pl.Region, pl.Status)
	if pl.Version != "" {
		s += ", version " + pl.Version
	}
	return s
}
