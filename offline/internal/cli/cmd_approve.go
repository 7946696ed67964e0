package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/jsonout"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
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

// approveTarget is one package to approve and who approves it now.
type approveTarget struct {
	id    bundle.ID
	pkg   *store.Package
	custs []*store.Custodian
	out   *approveResult
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
	st, res, pol := sess.Self, sess.Result, sess.Policy
	s := sess.Store
	// The replay checked that the medium holds this station's chain: now finish the plain
	// .byok copies an interrupted package did not write.
	if err := sess.EnsureByokCopies(); err != nil {
		return err
	}
	pkgs, err := s.Packages()
	if err != nil {
		return err
	}
	var ids []bundle.ID
	names := map[bundle.ID]string{}
	for _, p := range pkgs {
		ids = append(ids, p.ID)
		names[p.ID] = fmt.Sprintf("%s (%s, %s)", p.ID.Short(), p.KeyName, p.State)
	}
	region := strings.ToLower(o.Region)
	if region != "" {
		if refs, err = regionPackages(pol.Policy, res, pkgs, region); err != nil {
			return err
		}
	}
	var targets []*approveTarget
	for _, ref := range refs {
		t, err := approveTargetOf(s, res, pol, ref, ids, names, splitList(o.Custodians.Value()), files, region != "")
		if err != nil {
			return err
		}
		if t == nil {
			continue // approved by them already (--region)
		}
		if slices.ContainsFunc(targets, func(o *approveTarget) bool { return o.id == t.id }) {
			return clirun.Usagef("key package %s is given twice", t.id.Short())
		}
		targets = append(targets, t)
		fmt.Fprintf(env.Stderr, "Approving key package %s:\n  key %q (%s, ident %s) for %s\n  wrapped with KEK %s (%s)\n  approved so far by %d of the %d needed\n",
			t.out.Package.Fingerprint, t.out.KeyName, t.out.KeyType, t.pkg.Ident, t.out.Vault, t.out.KEK, t.pkg.KID,
			pol.Policy.VaultQuorums(t.pkg.Vault)[0].Count(res.State.Packages[t.id].ApproversUpTo(res.State.Heads.Offline.Seq)), t.out.Threshold)
	}
	if len(targets) == 0 {
		return exitcode.Wrap(exitcode.Refused, fmt.Errorf("every key package of region %s is approved by them already", region), "")
	}
	// PIN files may name only custodians who approve something now.
	for n := range files {
		if !slices.ContainsFunc(targets, func(t *approveTarget) bool {
			return slices.ContainsFunc(t.custs, func(c *store.Custodian) bool { return c.Name == n })
		}) {
			return clirun.Usagef("--custodian-pin-file names %s, who is not approving now", n)
		}
	}

	tok, signer, err := openStationSigner(ctx, env, o.HSM, st)
	if err != nil {
		return err
	}
	defer tok.Close()
	// Each custodian enters their PIN once and signs every package they approve now.
	sigs := map[bundle.ID][]payload.Signature{}
	var done []string
	for _, t := range targets {
		for _, c := range t.custs {
			if slices.Contains(done, c.Name) {
				continue
			}
			done = append(done, c.Name)
			var theirs []bundle.ID
			for _, u := range targets {
				if slices.ContainsFunc(u.custs, func(x *store.Custodian) bool { return x.Name == c.Name }) {
					theirs = append(theirs, u.id)
				}
			}
			got, err := sess.CustodianApproves(ctx, custodianOpener(env, o.HSM.withDefaults(st).Module, files), c, theirs...)
			if err != nil {
				return err
			}
			for i, id := range theirs {
				sigs[id] = append(sigs[id], got[i])
			}
			crashpoint.Hit("approve-signed")
		}
	}
	items := make([]station.Item, len(targets))
	for i, t := range targets {
		payload.SortSignatures(sigs[t.id])
		a := &payload.Approval{Target: t.id, TargetKind: bundle.KindKeyPackage.String(), Signatures: sigs[t.id]}
		items[i] = station.Item{Payload: a, Apply: func(tx *bolt.Tx, b *bundle.Bundle) error { return store.Record(tx, b, a) }}
	}
	pos, err := sess.Station.Position(pol.ID)
	if err != nil {
		return err
	}
	bs, err := sess.Station.AppendBatch(ctx, pos, items, signer, now(), ceremony.PolicyLifetime(pol))
	if err != nil {
		return hsmErr(err)
	}
	var outs []*approveResult
	for i, t := range targets {
		out := t.out
		pkg, err := s.Package(t.id)
		if err != nil {
			return err
		}
		out.Bundle = infoOf(bs[i])
		for _, c := range t.custs {
			out.Approved = append(out.Approved, c.Name)
			out.Custodians = append(out.Custodians, keyInfo{Name: c.Name, Token: c.TokenLabel, Label: c.KeyLabel, Fingerprint: c.Fingerprint(), KeyID: c.Key.ID().String()})
		}
		out.Approvals = ceremony.ApproverNames(pol.Policy, pkg.Approvals)
		readiness(out, pol.Policy, pkg)
		env.Log.Info("approval written", "package", t.id.Short(), "approvals", len(out.Approvals), "threshold", out.Threshold)
		outs = append(outs, out)
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

// approveTargetOf resolves one --package and picks who approves it now: of the custodians
// whose approvals count for its vault, those named in custodians, or every one who has not
// approved yet. With skipDone (--region) the named who approved it already are left out, and
// a package with nobody left returns nil.
func approveTargetOf(s *store.Store, res *chain.Result, pol *chain.PolicyRecord, ref string, ids []bundle.ID, names map[bundle.ID]string,
	custodians []string, files map[string]string, skipDone bool) (*approveTarget, error) {
	id, err := resolveID("key package", ref, ids, func(id bundle.ID) string { return names[id] })
	if err != nil {
		return nil, err
	}
	pkg, err := s.Package(id)
	if err != nil {
		return nil, err
	}
	rec, outstanding := res.State.Packages[id]
	switch {
	case !outstanding:
		return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("key package %s is not awaiting upload: it was uploaded already", id.Short()), "byok-offline sync shows the receipt")
	case now().Unix() > rec.Expires:
		return nil, exitcode.Wrap(exitcode.Verify, fmt.Errorf("key package %s expired at %s", id.Short(), time.Unix(rec.Expires, 0).UTC().Format(time.RFC3339)),
			"package the key again")
	}
	eligible, region := ceremony.PackageApprovers(pol.Policy, pkg.Vault)
	if skipDone {
		var left []string
		for _, n := range custodians {
			i := slices.IndexFunc(eligible, func(c payload.Custodian) bool { return c.Name == n })
			if i < 0 || !slices.Contains(rec.Approvals, eligible[i].Key.ID()) {
				left = append(left, n)
			}
		}
		if len(custodians) > 0 && len(left) == 0 {
			return nil, nil
		}
		custodians = left
		if len(custodians) == 0 && !slices.ContainsFunc(eligible, func(c payload.Custodian) bool { return !slices.Contains(rec.Approvals, c.Key.ID()) }) {
			return nil, nil
		}
	}
	custs, err := approvers(s, eligible, rec.Approvals, custodians, nil, "key package "+id.Short(),
		func(n string) error {
			if region != "" {
				return exitcode.Wrap(exitcode.Refused, fmt.Errorf("%s does not approve keys for %s, a vault of region %s", n, pkg.Vault, region),
					"the approvals that count are those of "+ceremony.JoinNames(eligible))
			}
			return exitcode.Wrap(exitcode.Refused, fmt.Errorf("%s is not a custodian of the policy in force", n), "the custodians are "+ceremony.CustodianNames(pol.Policy))
		})
	if err != nil {
		return nil, err
	}
	q := pol.Policy.VaultQuorums(pkg.Vault)[0]
	out := &approveResult{Package: jsonout.RefOf(id), KeyName: pkg.KeyName, Vault: pkg.Vault, KeyType: string(pkg.KeyType), Threshold: q.Threshold, Quorum: q.String()}
	if k, err := s.KEK(pkg.Offer); err == nil {
		out.KEK = k.Fingerprint
	}
	return &approveTarget{id: id, pkg: pkg, custs: custs, out: out}, nil
}

// writeApproval has custs sign target with their tokens, one after the other, and appends
// their approval bundle under the policy in force, pol.
func writeApproval(ctx context.Context, env *clirun.Env, sess *ceremony.Session, signer *hsm.SigningKey, module string, custs []*store.Custodian, files map[string]string,
	target bundle.ID, kind bundle.Kind, pol *chain.PolicyRecord) (*bundle.Bundle, error) {
	var sigs []payload.Signature
	for _, c := range custs {
		sig, err := sess.CustodianApproves(ctx, custodianOpener(env, module, files), c, target)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig[0])
		crashpoint.Hit("approve-signed")
	}
	payload.SortSignatures(sigs)
	a := &payload.Approval{Target: target, TargetKind: kind.String(), Signatures: sigs}
	return sess.Append(ctx, pol.ID, a, signer, ceremony.PolicyLifetime(pol))
}

// approvers picks the custodians who approve what now: those named, each once, each one of
// eligible who has not approved yet; or, if none is named, every one of eligible who has not.
// files (PIN files) may name only them. notEligible makes the error for a name not in
// eligible.
func approvers(s *store.Store, eligible []payload.Custodian, approved []bundle.ID, names []string, files map[string]string, what string, notEligible func(name string) error) ([]*store.Custodian, error) {
	explicit := len(names) > 0
	if !explicit {
		for _, c := range eligible {
			if !slices.Contains(approved, c.Key.ID()) {
				names = append(names, c.Name)
			}
		}
		if len(names) == 0 {
			return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("every custodian approved %s already", what), "")
		}
	}
	for n := range files {
		if !slices.Contains(names, n) {
			return nil, clirun.Usagef("--custodian-pin-file names %s, who is not approving now", n)
		}
	}
	var custs []*store.Custodian
	for _, n := range names {
		if slices.ContainsFunc(custs, func(c *store.Custodian) bool { return c.Name == n }) {
			return nil, clirun.Usagef("custodian %s is given twice", n)
		}
		i := slices.IndexFunc(eligible, func(c payload.Custodian) bool { return c.Name == n })
		if i < 0 {
			return nil, notEligible(n)
		}
		if slices.Contains(approved, eligible[i].Key.ID()) {
			return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("custodian %s approved %s already", n, what), "")
		}
		c, err := s.Custodian(n)
		if err != nil {
			return nil, fmt.Errorf("custodian %s: %w", n, err)
		}
		if c.Key.ID() != eligible[i].Key.ID() {
			return nil, exitcode.Wrap(exitcode.Verify, fmt.Errorf("the ledger's key for custodian %s is not the policy's", n), "")
		}
		custs = append(custs, c)
	}
	return custs, nil
}

// regionPackages returns the IDs of the key packages of pkgs that await upload, unexpired,
// for a vault of region under policy p.
func regionPackages(p *payload.Policy, res *chain.Result, pkgs []store.Package, region string) ([]string, error) {
	if !slices.Contains(p.VaultRegions(), region) {
		return nil, clirun.Usagef("--region %s: no vault of the policy in force is in it (its regions are %s)", region, strings.Join(p.VaultRegions(), ", "))
	}
	var refs []string
	t := now().Unix()
	for _, pkg := range pkgs {
		rec, outstanding := res.State.Packages[pkg.ID]
		v, _ := p.Vault(pkg.Vault)
		if outstanding && rec.Expires >= t && v.Region == region {
			refs = append(refs, pkg.ID.String())
		}
	}
	if len(refs) == 0 {
		return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("no key package awaits upload for a vault of region %s", region), "byok-offline status lists the packages")
	}
	return refs, nil
}

// readiness fills in whose approvals out's package needs under p and how far it is.
func readiness(out *approveResult, p *payload.Policy, pkg *store.Package) {
	quorums := p.VaultQuorums(pkg.Vault)
	var ids []bundle.ID
	for _, a := range pkg.Approvals {
		ids = append(ids, a.Key)
	}
	q, have, ok := payload.Unmet(quorums, ids)
	if ok {
		q, have = quorums[0], quorums[0].Count(ids)
	}
	out.Threshold, out.Quorum, out.Have, out.Ready = q.Threshold, q.String(), have, ok
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
