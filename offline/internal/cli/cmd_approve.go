package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/jsonout"
)

// approveOptions are the options of "approve".
type approveOptions struct {
	State             stateOptions
	HSM               hsmOptions
	Packages          cli.StringSlice
	Region            string
	Custodians        cli.StringSlice
	CustodianPINFiles cli.StringSlice
}

func approveCommand(env *clirun.Env) *cli.Command {
	var o approveOptions
	fs := o.State.flags(true)
	fs = append(fs, o.HSM.flags()...)
	fs = append(fs,
		&cli.StringSliceFlag{Name: "package", Usage: "a key package to approve: its fingerprint or bundle ID (repeat, or separate them with commas, to approve several)", Destination: &o.Packages},
		&cli.StringFlag{Name: "region", Usage: "instead of --package: every key package awaiting upload for a vault of this region", Destination: &o.Region},
		&cli.StringSliceFlag{Name: "custodian", Usage: "a custodian who approves now (repeat; default: every custodian who has not yet)", Destination: &o.Custodians},
		&cli.StringSliceFlag{Name: "custodian-pin-file", Usage: "NAME=PATH: file with the custodian's PIN (else $" + envCustodian + "<NAME>, else a prompt)", Destination: &o.CustodianPINFiles},
	)
	return &cli.Command{
		Name:  "approve",
		Usage: "custodians approve key packages with their tokens",
		Description: "Shows what is approved (vault, key name, type, KEK and package fingerprints), asks each\n" +
			"custodian once for their token's PIN, has the token sign every package's ID, and writes one\n" +
			"approval bundle per package, all in one write. The online station uploads a package only\n" +
			"with the approvals its vault needs: the policy's threshold, or that of the custodians of the\n" +
			"vault's region, who alone may approve it.\n\n" +
			"--region approves every key package awaiting upload for the vaults of one region in the same\n" +
			"way, each custodian entering their PIN once; a package a custodian approved already is left\n" +
			"out for them, so a rerun after an interruption asks only for the approvals still missing.",
		Flags:  fs,
		Action: func(c *cli.Context) error { return runApprove(c.Context, o, env) },
	}
}

// approveResult is the result of "approve" for one package.
type approveResult struct {
	Package    jsonout.Ref `json:"package"`
	KeyName    string      `json:"key_name"`
	Vault      string      `json:"vault"`
	KeyType    string      `json:"key_type"`
	KEK        string      `json:"kek_fingerprint"`
	Approved   []string    `json:"approved_now"`
	Approvals  []string    `json:"approvals"`
	Threshold  int         `json:"threshold"`
	Have       int         `json:"have"`   // approvals that count towards Quorum
	Quorum     string      `json:"quorum"` // whose approvals count: the first quorum not met yet, else the first
	Ready      bool        `json:"ready"`
	Bundle     bundleInfo  `json:"bundle"`
	Custodians []keyInfo   `json:"custodians"`
}

// approveBatchResult is the result of "approve" with several packages.
type approveBatchResult struct {
	Packages []*approveResult `json:"packages"`
}

func runApprove(ctx context.Context, o approveOptions, env *clirun.Env) error {
	refs := splitList(o.Packages.Value())
	switch {
	case len(refs) > 0 && o.Region != "":
		return clirun.Usagef("give --package or --region, not both")
	case len(refs) == 0 && o.Region == "":
		return clirun.Usagef("--package is required (or --region)")
	}
	files, err := parsePairs("custodian-pin-file", o.CustodianPINFiles.Value())
	if err != nil {
		return err
	}
	sess, err := o.State.openInForce(ctx, env)
	if err != nil {
		return err
	}
	defer sess.Close()
	targets, err := sess.PlanApprovals(ceremony.ApprovalRequest{
		Refs: refs, Region: o.Region, Custodians: splitList(o.Custodians.Value()), PINFiles: slices.Sorted(maps.Keys(files)),
	})
	if err != nil {
		return err
	}
	// Everything to approve is shown before anyone enters a PIN.
	for _, t := range targets {
		p := t.Package
		fmt.Fprintf(env.Stderr, "Approving key package %s:\n  key %q (%s, ident %s) for %s\n  wrapped with KEK %s (%s)\n  approved so far by %d of the %d needed\n",
			p.ID.Short(), p.KeyName, p.KeyType, p.Ident, p.Vault, t.KEK, p.KID, t.SoFar, t.Quorum.Threshold)
	}

	st := sess.Self
	tok, signer, err := openStationSigner(ctx, env, o.HSM, st)
	if err != nil {
		return err
	}
	defer tok.Close()
	done, err := sess.Approve(ctx, signer, targets, custodianOpener(env, o.HSM.withDefaults(st).Module, files))
	if err != nil {
		return err
	}
	var outs []*approveResult
	for _, a := range done {
		outs = append(outs, approveResultOf(a))
	}
	if len(outs) == 1 {
		return env.Result(outs[0], func(w io.Writer) error { return writeApprove(w, outs[0]) })
	}
	return env.Result(approveBatchResult{Packages: outs}, func(w io.Writer) error {
		for _, out := range outs {
			if err := writeApprove(w, out); err != nil {
				return err
			}
		}
		return nil
	})
}

// approveResultOf is the result of "approve" for one package that custodians approved.
func approveResultOf(a *ceremony.PackageApproval) *approveResult {
	t, r := a.Target, a.Readiness
	out := &approveResult{Package: jsonout.RefOf(t.Package.ID), KeyName: t.Package.KeyName, Vault: t.Package.Vault, KeyType: string(t.Package.KeyType), KEK: t.KEK,
		Approvals: a.Approvals, Threshold: r.Quorum.Threshold, Have: r.Have, Quorum: r.Quorum.String(), Ready: r.Ready, Bundle: infoOf(a.Bundle)}
	for _, c := range t.Custodians {
		out.Approved = append(out.Approved, c.Name)
		out.Custodians = append(out.Custodians, keyInfo{Name: c.Name, Token: c.TokenLabel, Label: c.KeyLabel, Fingerprint: c.Fingerprint(), KeyID: c.Key.ID().String()})
	}
	return out
}

func writeApprove(w io.Writer, r *approveResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "approved key package %s (%q, %s, for %s, KEK %s)\n", r.Package.Fingerprint, r.KeyName, r.KeyType, r.Vault, r.KEK)
	fmt.Fprintf(&b, "  approved now by %s\n", strings.Join(r.Approved, ", "))
	fmt.Fprintf(&b, "  approvals      %d of %d: %s", r.Have, r.Threshold, strings.Join(r.Approvals, ", "))
	if strings.Contains(r.Quorum, "region ") {
		fmt.Fprintf(&b, " (%s)", r.Quorum)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  bundle         %s\n", r.Bundle.Path)
	if r.Ready {
		b.WriteString("Ready for upload: take the medium to the online station (byok-online upload).\n")
	} else {
		fmt.Fprintf(&b, "Needs %d more approval(s) from %s.\n", r.Threshold-r.Have, r.Quorum)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
