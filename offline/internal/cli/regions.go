package cli

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// regionFlagUsage describes --region of init and policy amend.
const regionFlagUsage = "custodians who approve the keys of one region's vaults: NAME=M:CUSTODIAN,CUSTODIAN,... (M of them approve each key package for a vault of region NAME; repeat per region)"

// parseRegion parses one --region NAME=M:CUSTODIAN,CUSTODIAN,...
func parseRegion(v string) (payload.Region, error) {
	name, rest, ok := strings.Cut(v, "=")
	m, list, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return payload.Region{}, clirun.Usagef("--region %q: want NAME=M:CUSTODIAN,CUSTODIAN,...", v)
	}
	r := payload.Region{Name: strings.ToLower(name)}
	t, err := strconv.Atoi(m)
	if err != nil || t < 1 {
		return payload.Region{}, clirun.Usagef("--region %q: the threshold %q is not a number of at least 1", v, m)
	}
	r.Threshold = t
	r.Custodians = splitList([]string{list})
	slices.Sort(r.Custodians)
	if len(r.Custodians) == 0 || len(slices.Compact(slices.Clone(r.Custodians))) != len(r.Custodians) {
		return payload.Region{}, clirun.Usagef("--region %q: name each custodian of the region once", v)
	}
	if t > len(r.Custodians) {
		return payload.Region{}, clirun.Usagef("--region %q: threshold %d of %d custodians", v, t, len(r.Custodians))
	}
	return r, nil
}

// setRegion puts r into regions, replacing the entry of the same name, and keeps them sorted.
func setRegion(regions []payload.Region, r payload.Region) []payload.Region {
	regions = slices.DeleteFunc(slices.Clone(regions), func(x payload.Region) bool { return x.Name == r.Name })
	regions = append(regions, r)
	slices.SortFunc(regions, func(a, b payload.Region) int { return strings.Compare(a.Name, b.Name) })
	return regions
}

// checkRegions checks, before anything is written, that the regions of a policy about to be
// made name only its custodians and only regions of its vaults, and that global approval
// comes with regions.
func checkRegions(regions []payload.Region, global bool, custodians []string, vaults []payload.Vault) error {
	for _, r := range regions {
		for _, c := range r.Custodians {
			if !slices.Contains(custodians, c) {
				return clirun.Usagef("region %s names %s, who is not a custodian of the policy (%s)", r.Name, c, strings.Join(custodians, ", "))
			}
		}
		if !slices.ContainsFunc(vaults, func(v payload.Vault) bool { return v.Region == r.Name }) {
			return clirun.Usagef("region %s: no vault of the policy is in it (a vault's region is the REGION of --vault URL=KIND:REGION)", r.Name)
		}
	}
	if global && len(regions) == 0 {
		return clirun.Usagef("--global-approval needs at least one --region")
	}
	return nil
}

// regionSummary describes a region of a policy for people.
type regionSummary struct {
	Name       string   `json:"name"`
	Threshold  int      `json:"threshold"`
	Custodians []string `json:"custodians"`
	Vaults     []string `json:"vaults"`
}

func summarizeRegions(p *payload.Policy) []regionSummary {
	var out []regionSummary
	for _, r := range p.Regions {
		s := regionSummary{Name: r.Name, Threshold: r.Threshold, Custodians: r.Custodians, Vaults: []string{}}
		for _, v := range p.Vaults {
			if v.Region == r.Name {
				s.Vaults = append(s.Vaults, v.URL)
			}
		}
		out = append(out, s)
	}
	return out
}

// regionLine describes a region in one line.
func regionLine(r regionSummary) string {
	return fmt.Sprintf("region %s: %d of %s approve each key for %s", r.Name, r.Threshold, strings.Join(r.Custodians, ", "), strings.Join(r.Vaults, ", "))
}

// regionChanges lists, for people, what next changes in cur's regions.
func regionChanges(cur, next *payload.Policy) []string {
	var out []string
	for _, r := range cur.Regions {
		if _, ok := next.Region(r.Name); !ok {
			out = append(out, fmt.Sprintf("region %s no longer has custodians of its own (was %d of %s)", r.Name, r.Threshold, strings.Join(r.Custodians, ", ")))
		}
	}
	for _, r := range next.Regions {
		old, ok := cur.Region(r.Name)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("region %s: %d of %s approve its keys", r.Name, r.Threshold, strings.Join(r.Custodians, ", ")))
		case old.Threshold != r.Threshold || !slices.Equal(old.Custodians, r.Custodians):
			out = append(out, fmt.Sprintf("region %s: %d of %s, was %d of %s", r.Name, r.Threshold, strings.Join(r.Custodians, ", "), old.Threshold, strings.Join(old.Custodians, ", ")))
		}
	}
	if cur.GlobalApproval != next.GlobalApproval {
		out = append(out, fmt.Sprintf("a regional key also needs the policy's threshold: %t, was %t", next.GlobalApproval, cur.GlobalApproval))
	}
	return out
}

// quorumsText says whose approvals qs need, for people: "2 of the policy's 3 custodians",
// "2 of region westeurope's 2 custodians and 2 of the policy's 4 custodians".
func quorumsText(qs []payload.Quorum) string {
	var s []string
	for _, q := range qs {
		s = append(s, q.String())
	}
	return strings.Join(s, " and ")
}
