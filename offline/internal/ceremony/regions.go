package ceremony

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// ParseRegion parses one --region NAME=M:CUSTODIAN,CUSTODIAN,...
func ParseRegion(v string) (payload.Region, error) {
	name, rest, ok := strings.Cut(v, "=")
	m, list, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return payload.Region{}, usagef("--region %q: want NAME=M:CUSTODIAN,CUSTODIAN,...", v)
	}
	r := payload.Region{Name: strings.ToLower(name)}
	t, err := strconv.Atoi(m)
	if err != nil || t < 1 {
		return payload.Region{}, usagef("--region %q: the threshold %q is not a number of at least 1", v, m)
	}
	r.Threshold = t
	r.Custodians = SplitList([]string{list})
	slices.Sort(r.Custodians)
	if len(r.Custodians) == 0 || len(slices.Compact(slices.Clone(r.Custodians))) != len(r.Custodians) {
		return payload.Region{}, usagef("--region %q: name each custodian of the region once", v)
	}
	if t > len(r.Custodians) {
		return payload.Region{}, usagef("--region %q: threshold %d of %d custodians", v, t, len(r.Custodians))
	}
	return r, nil
}

// SetRegion puts r into regions, replacing the entry of the same name, and keeps them sorted.
func SetRegion(regions []payload.Region, r payload.Region) []payload.Region {
	regions = slices.DeleteFunc(slices.Clone(regions), func(x payload.Region) bool { return x.Name == r.Name })
	regions = append(regions, r)
	slices.SortFunc(regions, func(a, b payload.Region) int { return strings.Compare(a.Name, b.Name) })
	return regions
}

// CheckRegions checks, before anything is written, that the regions of a policy about to be
// made name only its custodians and only regions of its vaults, and that global approval
// comes with regions.
func CheckRegions(regions []payload.Region, global bool, custodians []string, vaults []payload.Vault) error {
	for _, r := range regions {
		for _, c := range r.Custodians {
			if !slices.Contains(custodians, c) {
				return usagef("region %s names %s, who is not a custodian of the policy (%s)", r.Name, c, strings.Join(custodians, ", "))
			}
		}
		if !slices.ContainsFunc(vaults, func(v payload.Vault) bool { return v.Region == r.Name }) {
			return usagef("region %s: no vault of the policy is in it (a vault's region is the REGION of --vault URL=KIND:REGION)", r.Name)
		}
	}
	if global && len(regions) == 0 {
		return usagef("--global-approval needs at least one --region")
	}
	return nil
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

// SplitList splits comma-separated values and drops empty entries.
func SplitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
