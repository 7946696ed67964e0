package cli

import (
	"fmt"
	"strings"

	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// regionFlagUsage describes --region of init and policy amend.
const regionFlagUsage = "custodians who approve the keys of one region's vaults: NAME=M:CUSTODIAN,CUSTODIAN,... (M of them approve each key package for a vault of region NAME; repeat per region)"

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

// quorumsText says whose approvals qs need, for people: "2 of the policy's 3 custodians",
// "2 of region westeurope's 2 custodians and 2 of the policy's 4 custodians".
func quorumsText(qs []payload.Quorum) string {
	var s []string
	for _, q := range qs {
		s = append(s, q.String())
	}
	return strings.Join(s, " and ")
}
