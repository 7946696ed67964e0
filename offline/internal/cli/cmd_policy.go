package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
)

// policyAmendOptions are the options of "policy amend".
type policyAmendOptions struct {
	State              stateOptions
	HSM                hsmOptions
	AddCustodians      cli.StringSlice
	RemoveCustodians   cli.StringSlice
	Threshold          int
	AddVaults          cli.StringSlice
	RemoveVaults       cli.StringSlice
	Regions            cli.StringSlice
	RemoveRegions      cli.StringSlice
	GlobalApproval     bool
	MinKEKBits         int
	KeyTypes           string
	AllowWeakerKEK     bool
	BundleLifetime     time.Duration
	MaxClockSkew       time.Duration
	CustodianKeyLabel  string
	ReuseCustodianKeys bool
	AllowToolsets      cli.StringSlice
	RemoveToolsets     cli.StringSlice
	approve            policyApproveOptions
	isSet              func(name string) bool
}

// policyApproveOptions are the options of "policy approve" (and the approving part of amend).
type policyApproveOptions struct {
	Custodians        cli.StringSlice
	CustodianPINFiles cli.StringSlice
}

func (o *policyApproveOptions) flags(usage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "custodian", Usage: usage, Destination: &o.Custodians},
		&cli.StringSliceFlag{Name: "custodian-pin-file", Usage: "NAME=PATH: file with the custodian's PIN (else $" + envCustodian + "<NAME>, else a prompt)", Destination: &o.CustodianPINFiles},
	}
}

func policyCommand(env *clirun.Env) *cli.Command {
	var a policyAmendOptions
	afs := a.State.flags(true)
	afs = append(afs, a.HSM.flags()...)
	afs = append(afs,
		&cli.StringSliceFlag{Name: "add-custodian", Usage: "a new custodian and their token: NAME=TOKEN_LABEL (repeat; the label is checked against the tokens present before any PIN is asked)", Destination: &a.AddCustodians},
		&cli.StringSliceFlag{Name: "remove-custodian", Usage: "a custodian the new version drops (repeat)", Destination: &a.RemoveCustodians},
		&cli.IntFlag{Name: "threshold", Usage: "approvals needed under the new version: M of its N custodians", Destination: &a.Threshold},
		&cli.StringSliceFlag{Name: "add-vault", Usage: "a vault to allow: URL=KIND:REGION, KIND premium or managed_hsm (repeat)", Destination: &a.AddVaults},
		&cli.StringSliceFlag{Name: "remove-vault", Usage: "a vault to stop allowing: its URL (repeat)", Destination: &a.RemoveVaults},
		&cli.StringSliceFlag{Name: "region", Usage: regionFlagUsage + "; replaces the region's entry", Destination: &a.Regions},
		&cli.StringSliceFlag{Name: "remove-region", Usage: "a region whose keys the policy's own threshold approves again: its name (repeat)", Destination: &a.RemoveRegions},
		&cli.BoolFlag{Name: "global-approval", Usage: "a key package for a vault of a region needs the policy's threshold too (=true) or the region's alone (=false)", Destination: &a.GlobalApproval},
		&cli.IntFlag{Name: "min-kek-bits", Usage: "smallest KEK accepted: 2048, 3072 or 4096", Destination: &a.MinKEKBits},
		&cli.StringFlag{Name: "key-types", Usage: "target key types allowed, e.g. RSA-3072,EC-P256", Destination: &a.KeyTypes},
		&cli.BoolFlag{Name: "allow-weaker-kek", Usage: "allow (=true) or refuse (=false) a KEK weaker than the target key", Destination: &a.AllowWeakerKEK},
		&cli.DurationFlag{Name: "bundle-lifetime", Usage: "how long a bundle stays valid", Destination: &a.BundleLifetime},
		&cli.DurationFlag{Name: "max-clock-skew", Usage: "how far the stations' clocks may disagree", Destination: &a.MaxClockSkew},
		&cli.StringSliceFlag{Name: "allow-toolset", Usage: "SHA256 of a binary allowed to write (a line of a release's SHA256SUMS, or what version --json prints); once the policy lists any, only listed binaries write (repeat)", Destination: &a.AllowToolsets},
		&cli.StringSliceFlag{Name: "remove-toolset", Usage: "SHA256 of a binary no longer allowed to write (repeat); removing the last one lets any binary write", Destination: &a.RemoveToolsets},
		&cli.StringFlag{Name: "custodian-key-label", Value: "byok-custodian", Usage: "CKA_LABEL prefix of new custodians' keys (the custodian's name is appended)", Destination: &a.CustodianKeyLabel},
		&cli.BoolFlag{Name: "reuse-custodian-keys", Usage: "use existing keys with the label on new custodians' tokens instead of refusing", Destination: &a.ReuseCustodianKeys},
	)
	afs = append(afs, a.approve.flags("a custodian of the current or the new version who approves now (repeat; default: every one who has not yet)")...)

	var p struct {
		State stateOptions
		HSM   hsmOptions
		policyApproveOptions
	}
	pfs := p.State.flags(true)
	pfs = append(pfs, p.HSM.flags()...)
	pfs = append(pfs, p.flags("a custodian who approves now (repeat; default: every custodian of either version who has not yet)")...)

	return &cli.Command{
		Name:  "policy",
		Usage: "propose and approve a new policy version",
		Subcommands: []*cli.Command{{
			Name:  "amend",
			Usage: "propose the next policy version: custodians, threshold, vaults, key rules",
			Description: "Writes the next policy version, changed as the flags say and otherwise as the policy in force,\n" +
				"after enrolling the new custodians on their tokens. It takes effect once the threshold of its\n" +
				"own custodians and the threshold of the policy in force have approved it (both sets must\n" +
				"agree), and, for each region whose custodians or threshold it changes or drops, that region's\n" +
				"threshold in force; the custodians present approve it in the same run. Until then the policy in force\n" +
				"stays in force. An interrupted amend is finished by running it again with the same flags.\n\n" +
				"--allow-toolset pins the binaries that may write: once the policy in force lists any, both\n" +
				"stations refuse to write with a binary whose SHA-256 it does not list (exit 7), and verify and\n" +
				"audit report a bundle written by one as a policy violation. Pin the SHA-256 of the release's\n" +
				"binaries for both stations (byok-offline and byok-online of each platform), as SHA256SUMS\n" +
				"lists them, before installing them; list the new release's too before an upgrade.",
			Flags: afs,
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return clirun.Usagef("policy amend takes no arguments (got %q)", c.Args().First())
				}
				a.isSet = c.IsSet
				return runPolicyAmend(c.Context, a, env)
			},
		}, {
			Name:  "approve",
			Usage: "custodians approve the policy version awaiting approval",
			Description: "Shows what the proposed version changes, asks each custodian for their token's PIN, and\n" +
				"writes one approval bundle. The version takes effect with both thresholds.",
			Flags: pfs,
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return clirun.Usagef("policy approve takes no arguments (got %q)", c.Args().First())
				}
				return runPolicyApprove(c.Context, p.State, p.HSM, p.policyApproveOptions, env)
			},
		}},
	}
}

// policyResult is the result of "policy amend" and "policy approve".
type policyResult struct {
	Proposal   policySummary `json:"proposal"`
	Previous   policySummary `json:"previous"`
	Changes    []string      `json:"changes"`
	Approved   []string      `json:"approved_now"`
	Approvals  []string      `json:"approvals"`
	OfNew      int           `json:"approvals_of_new"`
	OfPrevious int           `json:"approvals_of_previous"`
	// OfRegions counts, for each region of the policy in force that the proposal changes,
	// the approvals of that region's custodians; each region's threshold is needed too.
	OfRegions []regionCount `json:"approvals_of_regions,omitempty"`
	InForce   bool          `json:"in_force"`
	Bundles   []bundleInfo  `json:"bundles"`
	NewKeys   []keyInfo     `json:"new_custodians,omitempty"`
	Replaced  string        `json:"replaced,omitempty"` // a proposal this one replaced
}

// change is what the flags change in the policy in force.
func (o *policyAmendOptions) change() ceremony.PolicyChange {
	set := o.isSet
	if set == nil {
		set = func(string) bool { return false }
	}
	ch := ceremony.PolicyChange{
		RemoveCustodians: splitList(o.RemoveCustodians.Value()),
		AddCustodians:    o.AddCustodians.Value(),
		StationToken:     o.HSM.TokenLabel,
		RemoveVaults:     o.RemoveVaults.Value(),
		AddVaults:        o.AddVaults.Value(),
		RemoveRegions:    splitList(o.RemoveRegions.Value()),
		Regions:          o.Regions.Value(),
		AllowToolsets:    o.AllowToolsets.Value(),
		RemoveToolsets:   o.RemoveToolsets.Value(),
	}
	if set("threshold") {
		ch.Threshold = &o.Threshold
	}
	if set("global-approval") {
		ch.GlobalApproval = &o.GlobalApproval
	}
	if set("min-kek-bits") {
		ch.MinKEKBits = &o.MinKEKBits
	}
	if set("key-types") {
		ch.KeyTypes = append([]string{}, splitList([]string{o.KeyTypes})...)
	}
	if set("allow-weaker-kek") {
		ch.AllowWeakerKEK = &o.AllowWeakerKEK
	}
	if set("bundle-lifetime") {
		ch.BundleLifetime = &o.BundleLifetime
	}
	if set("max-clock-skew") {
		ch.MaxClockSkew = &o.MaxClockSkew
	}
	return ch
}

func runPolicyAmend(ctx context.Context, o policyAmendOptions, env *clirun.Env) error {
	files, err := parsePairs("custodian-pin-file", o.approve.CustodianPINFiles.Value())
	if err != nil {
		return err
	}
	sess, err := o.State.openInForce(ctx, env)
	if err != nil {
		return err
	}
	defer sess.Close()
	st, cur := sess.Self, sess.Policy
	change := o.change()
	if err := ceremony.AppliedAlready(sess.Store, cur, change); err != nil {
		return err
	}
	next, adds, err := ceremony.Amend(cur, change)
	if err != nil {
		return err
	}
	if len(adds) > 0 {
		var want []tokenWant
		for _, spec := range adds {
			want = append(want, tokenWant{spec.Token, "--add-custodian " + spec.Name + "=" + spec.Token})
		}
		ho := o.HSM.withDefaults(st)
		if err := ho.validate(); err != nil {
			return err
		}
		if err := checkTokens(ctx, ho.Module, want); err != nil {
			return err
		}
	}

	tok, signer, err := openStationSigner(ctx, env, o.HSM, st)
	if err != nil {
		return err
	}
	defer tok.Close()

	// The new custodians' keys, on tokens of their own.
	added, err := sess.AddCustodians(ctx, custodianOpener(env, o.HSM.withDefaults(st).Module, files), next, adds, o.CustodianKeyLabel, o.ReuseCustodianKeys)
	if err != nil {
		return err
	}
	out := &policyResult{}
	for _, c := range added {
		out.NewKeys = append(out.NewKeys, custodianInfo(c))
	}

	prop, err := sess.Propose(ctx, signer, next)
	if err != nil {
		return err
	}
	if prop.Replaced != nil {
		out.Replaced = prop.Replaced.ID.Short()
	}
	if prop.Bundle != nil {
		out.Bundles = append(out.Bundles, infoOf(prop.Bundle))
	}
	return approvePolicy(ctx, env, sess, signer, cur, prop.PendingPolicy, o.approve, files, out)
}

func runPolicyApprove(ctx context.Context, so stateOptions, ho hsmOptions, o policyApproveOptions, env *clirun.Env) error {
	files, err := parsePairs("custodian-pin-file", o.CustodianPINFiles.Value())
	if err != nil {
		return err
	}
	sess, err := so.openInForce(ctx, env)
	if err != nil {
		return err
	}
	defer sess.Close()
	pend, err := sess.Proposal()
	if err != nil {
		return err
	}
	tok, signer, err := openStationSigner(ctx, env, ho, sess.Self)
	if err != nil {
		return err
	}
	defer tok.Close()
	return approvePolicy(ctx, env, sess, signer, sess.Policy, pend, o, files, &policyResult{})
}

// approvePolicy has the custodians approve the proposal prop to the policy in force cur,
// writes their approval bundle, and reports where the proposal stands.
func approvePolicy(ctx context.Context, env *clirun.Env, sess *ceremony.Session, signer *hsm.SigningKey, cur *chain.PolicyRecord, prop *chain.PendingPolicy,
	o policyApproveOptions, files map[string]string, out *policyResult) error {
	a, err := sess.PlanPolicyApproval(prop, splitList(o.Custodians.Value()), slices.Sorted(maps.Keys(files)))
	if err != nil {
		return err
	}
	out.Proposal = summarize(prop.ID, prop.Policy, false)
	out.Previous = summarize(cur.ID, cur.Policy, true)
	out.Changes = a.Changes
	fmt.Fprintf(env.Stderr, "Policy version %d (%s) replaces version %d (%s):\n", prop.Policy.Version, out.Proposal.Fingerprint, cur.Policy.Version, out.Previous.Fingerprint)
	for _, c := range out.Changes {
		fmt.Fprintf(env.Stderr, "  - %s\n", c)
	}
	done, err := sess.ApprovePolicy(ctx, signer, a, custodianOpener(env, sess.Self.Module, files))
	if err != nil {
		return err
	}
	if done.Bundle != nil {
		for _, c := range a.Custodians {
			out.Approved = append(out.Approved, c.Name)
		}
		out.Bundles = append(out.Bundles, infoOf(done.Bundle))
	}
	out.Approvals, out.OfNew, out.OfPrevious, out.InForce = done.Approvals, done.OfNew, done.OfPrevious, done.InForce
	for _, rc := range done.OfRegions {
		out.OfRegions = append(out.OfRegions, regionCount{Region: rc.Region, Have: rc.Have, Need: rc.Need})
	}
	out.Proposal.InForce = out.InForce
	return env.Result(out, func(w io.Writer) error { return writePolicy(w, out) })
}

// regionCount is how many of a region's custodians approved, and how many must.
type regionCount struct {
	Region string `json:"region"`
	Have   int    `json:"have"`
	Need   int    `json:"need"`
}

func writePolicy(w io.Writer, r *policyResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "policy version %d  %s (replaces version %d, %s)\n", r.Proposal.Version, r.Proposal.Fingerprint, r.Previous.Version, r.Previous.Fingerprint)
	if r.Replaced != "" {
		fmt.Fprintf(&b, "  replaces the earlier proposal %s, whose approvals no longer count\n", r.Replaced)
	}
	for _, c := range r.Changes {
		fmt.Fprintf(&b, "  - %s\n", c)
	}
	for _, k := range r.NewKeys {
		fmt.Fprintf(&b, "  new custodian %-10s token %-12s key %s\n", k.Name, k.Token, k.Fingerprint)
	}
	if len(r.Approved) > 0 {
		fmt.Fprintf(&b, "  approved now by %s\n", strings.Join(r.Approved, ", "))
	}
	fmt.Fprintf(&b, "  approvals      %d of %d needed from the new version's custodians, %d of %d from the current one's\n",
		r.OfNew, r.Proposal.Threshold, r.OfPrevious, r.Previous.Threshold)
	for _, rc := range r.OfRegions {
		fmt.Fprintf(&b, "                 %d of %d from region %s's current custodians (the version changes the region)\n", rc.Have, rc.Need, rc.Region)
	}
	for _, bi := range r.Bundles {
		fmt.Fprintf(&b, "  bundle         %s\n", bi.Path)
	}
	if r.InForce {
		fmt.Fprintf(&b, "Version %d is in force. Take the medium to the online station: it follows the new version with no step of its own.\n", r.Proposal.Version)
	} else {
		b.WriteString("Not in force yet: more custodians approve with byok-offline policy approve.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
