package payload

import (
	"fmt"
	"slices"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// MaxRegions is the largest number of regions a policy lists (§6): one per vault at most.
const MaxRegions = MaxVaults

// Region groups the custodians who approve key packages for the vaults of one region, with
// the number of them a package needs (§7.2, format version 2).
type Region struct {
	Name       string   `json:"name"`       // the region label of vaults, e.g. "westeurope"
	Custodians []string `json:"custodians"` // names of custodians of the policy, sorted
	Threshold  int      `json:"threshold"`  // 1 to len(Custodians)
}

// checkRegionList checks a list of region labels: sorted in ascending byte order, each
// once, each a region label (§7.2, §7.4).
func checkRegionList(what string, rs []string) error {
	for i, r := range rs {
		if !regionRE.MatchString(r) {
			return fmt.Errorf("%s[%d] %q: want lowercase letters, digits and dashes", what, i, r)
		}
		if i > 0 && rs[i-1] >= r {
			return fmt.Errorf("%s must be sorted without duplicates", what)
		}
	}
	return nil
}

// validateRegions checks the regions of p, whose custodians' names are names (§7.2).
func (p *Policy) validateRegions(names map[string]bool) error {
	if len(p.Regions) > MaxRegions {
		return fmt.Errorf("want at most %d regions, got %d", MaxRegions, len(p.Regions))
	}
	if p.GlobalApproval && len(p.Regions) == 0 {
		return fmt.Errorf("global_approval without regions")
	}
	for i, r := range p.Regions {
		if !regionRE.MatchString(r.Name) {
			return fmt.Errorf("regions[%d].name %q: want lowercase letters, digits and dashes", i, r.Name)
		}
		if i > 0 && p.Regions[i-1].Name >= r.Name {
			return fmt.Errorf("regions must be sorted by name without duplicates")
		}
		if len(r.Custodians) == 0 {
			return fmt.Errorf("region %s has no custodians", r.Name)
		}
		for j, c := range r.Custodians {
			if !names[c] {
				return fmt.Errorf("region %s names %q, who is not a custodian of the policy", r.Name, c)
			}
			if j > 0 && r.Custodians[j-1] >= c {
				return fmt.Errorf("region %s: custodians must be sorted without duplicates", r.Name)
			}
		}
		if r.Threshold < 1 || r.Threshold > len(r.Custodians) {
			return fmt.Errorf("region %s: threshold %d out of range 1..%d", r.Name, r.Threshold, len(r.Custodians))
		}
	}
	return nil
}

// Region returns the region entry with the given name.
func (p *Policy) Region(name string) (Region, bool) {
	i := slices.IndexFunc(p.Regions, func(r Region) bool { return r.Name == name })
	if i < 0 {
		return Region{}, false
	}
	return p.Regions[i], true
}

// VaultRegions returns the region labels of the policy's vaults, sorted, each once.
func (p *Policy) VaultRegions() []string {
	var out []string
	for _, v := range p.Vaults {
		out = append(out, v.Region)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// HasV2Members reports whether p uses a member that format version 1 does not define.
func (p *Policy) HasV2Members() bool { return len(p.Regions) > 0 || p.GlobalApproval }

// HasV2Members reports whether k uses a member that format version 1 does not define.
func (k *KeyPackage) HasV2Members() bool { return len(k.Regions) > 0 }

// Quorum is one approval requirement: Threshold of the custodians whose key IDs are
// Custodians. Region names the region whose quorum it is; "" is the policy's own (all its
// custodians).
type Quorum struct {
	Region     string
	Custodians []bundle.ID
	Threshold  int
}

// Count returns how many of the key IDs in approvers (each counted once) are custodians of
// the quorum.
func (q Quorum) Count(approvers []bundle.ID) int {
	n := 0
	for i, a := range approvers {
		if slices.Contains(q.Custodians, a) && !slices.Contains(approvers[:i], a) {
			n++
		}
	}
	return n
}

// String names the quorum for people: "2 of the policy's 3 custodians", "1 of region
// eastus's 2 custodians".
func (q Quorum) String() string {
	if q.Region == "" {
		return fmt.Sprintf("%d of the policy's %d custodians", q.Threshold, len(q.Custodians))
	}
	return fmt.Sprintf("%d of region %s's %d custodians", q.Threshold, q.Region, len(q.Custodians))
}

// Unmet returns the first quorum of qs that approvers do not meet, and how many approvers
// it has; ok is true if every quorum is met.
func Unmet(qs []Quorum, approvers []bundle.ID) (q Quorum, have int, ok bool) {
	for _, q := range qs {
		if n := q.Count(approvers); n < q.Threshold {
			return q, n, false
		}
	}
	return Quorum{}, 0, true
}

// quorum returns the policy's own quorum: Threshold of all its custodians.
func (p *Policy) quorum() Quorum {
	q := Quorum{Threshold: p.Threshold}
	for _, c := range p.Custodians {
		q.Custodians = append(q.Custodians, c.Key.ID())
	}
	return q
}

// regionQuorum returns the quorum of region r of p.
func (p *Policy) regionQuorum(r Region) Quorum {
	q := Quorum{Region: r.Name, Threshold: r.Threshold}
	for _, c := range p.Custodians {
		if slices.Contains(r.Custodians, c.Name) {
			q.Custodians = append(q.Custodians, c.Key.ID())
		}
	}
	return q
}

// PackageQuorums returns what a key package for a vault of region region needs (§9.7): the
// region's threshold of its custodians if the policy lists the region, and the policy's own
// threshold as well if it sets global_approval; the policy's own threshold alone if it does
// not list the region.
func (p *Policy) PackageQuorums(region string) []Quorum {
	r, ok := p.Region(region)
	if !ok {
		return []Quorum{p.quorum()}
	}
	if p.GlobalApproval {
		return []Quorum{p.regionQuorum(r), p.quorum()}
	}
	return []Quorum{p.regionQuorum(r)}
}

// VaultQuorums is PackageQuorums for the region of the policy's vault url; a vault the
// policy does not allow needs the policy's own threshold.
func (p *Policy) VaultQuorums(url string) []Quorum {
	v, _ := p.Vault(url)
	return p.PackageQuorums(v.Region)
}

// AmendmentQuorums returns what next, proposed to replace p, needs to take effect (§9.4):
// the threshold of next's custodians, the threshold of p's, and, for every region of p that
// next changes (another set of custodians, another threshold, or no entry), that region's
// threshold of its custodians under p.
func (p *Policy) AmendmentQuorums(next *Policy) []Quorum {
	qs := []Quorum{next.quorum(), p.quorum()}
	for _, r := range p.Regions {
		if !p.regionQuorum(r).sameAs(next, r.Name) {
			qs = append(qs, p.regionQuorum(r))
		}
	}
	return qs
}

// ChangedRegions returns the regions of p whose custodians or threshold next changes, or
// which next drops.
func (p *Policy) ChangedRegions(next *Policy) []string {
	var out []string
	for _, r := range p.Regions {
		if !p.regionQuorum(r).sameAs(next, r.Name) {
			out = append(out, r.Name)
		}
	}
	return out
}

// sameAs reports whether next has region name with the same threshold and the same
// custodian keys as q.
func (q Quorum) sameAs(next *Policy, name string) bool {
	nr, ok := next.Region(name)
	if !ok {
		return false
	}
	nq := next.regionQuorum(nr)
	if nq.Threshold != q.Threshold || len(nq.Custodians) != len(q.Custodians) {
		return false
	}
	for _, id := range q.Custodians {
		if !slices.Contains(nq.Custodians, id) {
			return false
		}
	}
	return true
}

// RegionsOf returns the regions whose custodians include the custodian named name.
func (p *Policy) RegionsOf(name string) []string {
	var out []string
	for _, r := range p.Regions {
		if slices.Contains(r.Custodians, name) {
			out = append(out, r.Name)
		}
	}
	return out
}

// PolicyQuorums returns what p needs to take effect (§9.4): its own threshold if it is the
// first policy (cur is nil), else what cur.AmendmentQuorums(p) says.
func (p *Policy) PolicyQuorums(cur *Policy) []Quorum {
	if cur == nil {
		return []Quorum{p.quorum()}
	}
	return cur.AmendmentQuorums(p)
}
