package ceremony

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// ApprovalRequest says which key packages custodians approve now, and who.
type ApprovalRequest struct {
	// Refs name the key packages as the operator gave them: fingerprints or IDs (see
	// ResolveID).
	Refs []string
	// Region, instead of Refs: every key package awaiting upload, unexpired, for a vault of
	// this region. A custodian who approved one of them already is left out for it, and a
	// package nobody is left to approve is left out.
	Region string
	// Custodians approve now, each once; none names every custodian whose approval counts
	// and who has not approved yet.
	Custodians []string
	// PINFiles are the custodians whose PIN a file gives: each must approve something now.
	PINFiles []string
}

// ApprovalTarget is a key package to approve and the custodians who approve it now.
type ApprovalTarget struct {
	Package    *store.Package
	Custodians []*store.Custodian
	// KEK is the fingerprint of the KEK the package is wrapped with ("" if the ledger has
	// no record of it).
	KEK string
	// Quorum is the first quorum of the package's vault, and SoFar the approvals on the
	// medium that count towards it.
	Quorum payload.Quorum
	SoFar  int
}

// PlanApprovals checks req against the ledger, the policy in force and the medium (the
// session is opened with OpenInForce), before any token is opened, and returns the key
// packages to approve, in the order asked (each reference resolved, then checked, before the
// next is resolved: ErrNoSuchBundle for one that names none). It first writes the plain .byok copies an
// interrupted package did not write. Refusals are *Error: ErrNotAwaitingUpload,
// ErrPackageExpired, ErrNotEligible, ErrApprovedAlready, ErrNothingToApprove,
// ErrNotPolicyKey, and ErrUsage for a package or custodian given twice, a region with no
// vault, or a PIN file of a custodian who does not approve now.
func (s *Session) PlanApprovals(req ApprovalRequest) ([]*ApprovalTarget, error) {
	if err := s.EnsureByokCopies(); err != nil {
		return nil, err
	}
	pkgs, err := s.Store.Packages()
	if err != nil {
		return nil, err
	}
	region := strings.ToLower(req.Region)
	var n int
	resolve := func(i int) (bundle.ID, error) { return resolvePackage(req.Refs[i], pkgs) }
	if region != "" {
		ids, err := s.regionPackages(pkgs, region)
		if err != nil {
			return nil, err
		}
		n, resolve = len(ids), func(i int) (bundle.ID, error) { return ids[i], nil }
	} else {
		n = len(req.Refs)
	}
	var targets []*ApprovalTarget
	for i := range n {
		id, err := resolve(i)
		if err != nil {
			return nil, err
		}
		t, err := s.approvalTarget(id, req.Custodians, region != "")
		if err != nil {
			return nil, err
		}
		if t == nil {
			continue // approved by them already (Region)
		}
		if slices.ContainsFunc(targets, func(o *ApprovalTarget) bool { return o.Package.ID == id }) {
			return nil, usagef("key package %s is given twice", id.Short())
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return nil, errorf(ErrApprovedAlready, "every key package of region %s is approved by them already", region)
	}
	// PIN files may name only custodians who approve something now.
	for _, n := range req.PINFiles {
		if !slices.ContainsFunc(targets, func(t *ApprovalTarget) bool {
			return slices.ContainsFunc(t.Custodians, func(c *store.Custodian) bool { return c.Name == n })
		}) {
			return nil, pinFileErr(n)
		}
	}
	return targets, nil
}

// resolvePackage finds the key package of pkgs that ref names; the candidates are described
// with their key's name and state.
func resolvePackage(ref string, pkgs []store.Package) (bundle.ID, error) {
	var ids []bundle.ID
	desc := map[bundle.ID]string{}
	for _, p := range pkgs {
		ids = append(ids, p.ID)
		desc[p.ID] = fmt.Sprintf("%s (%s, %s)", p.ID.Short(), p.KeyName, p.State)
	}
	return ResolveID("key package", ref, ids, func(id bundle.ID) string { return desc[id] })
}

func pinFileErr(name string) error {
	return usagef("--custodian-pin-file names %s, who is not approving now", name)
}

// approvalTarget checks key package id and picks who approves it now: of the custodians
// whose approvals count for its vault, those named, or every one who has not approved yet.
// With skipDone (a region) the named who approved it already are left out, and a package
// with nobody left returns nil.
func (s *Session) approvalTarget(id bundle.ID, named []string, skipDone bool) (*ApprovalTarget, error) {
	pol, res := s.Policy, s.Result
	pkg, err := s.Store.Package(id)
	if err != nil {
		return nil, err
	}
	rec, outstanding := res.State.Packages[id]
	switch {
	case !outstanding:
		return nil, errorf(ErrNotAwaitingUpload, "key package %s is not awaiting upload: it was uploaded already", id.Short())
	case s.now().Unix() > rec.Expires:
		return nil, errorf(ErrPackageExpired, "key package %s expired at %s", id.Short(), time.Unix(rec.Expires, 0).UTC().Format(time.RFC3339))
	}
	eligible, region := PackageApprovers(pol.Policy, pkg.Vault)
	if skipDone {
		var left []string
		for _, n := range named {
			i := slices.IndexFunc(eligible, func(c payload.Custodian) bool { return c.Name == n })
			if i < 0 || !slices.Contains(rec.Approvals, eligible[i].Key.ID()) {
				left = append(left, n)
			}
		}
		if len(named) > 0 && len(left) == 0 {
			return nil, nil
		}
		named = left
		if len(named) == 0 && !slices.ContainsFunc(eligible, func(c payload.Custodian) bool { return !slices.Contains(rec.Approvals, c.Key.ID()) }) {
			return nil, nil
		}
	}
	custs, err := s.approvers(eligible, rec.Approvals, named, nil, "key package "+id.Short(),
		func(n string) error {
			if region != "" {
				return &Error{Kind: ErrNotEligible, Err: fmt.Errorf("%s does not approve keys for %s, a vault of region %s", n, pkg.Vault, region),
					Region: region, Custodians: names(eligible)}
			}
			return &Error{Kind: ErrNotEligible, Err: fmt.Errorf("%s is not a custodian of the policy in force", n), Custodians: names(pol.Policy.Custodians)}
		})
	if err != nil {
		return nil, err
	}
	q := pol.Policy.VaultQuorums(pkg.Vault)[0]
	t := &ApprovalTarget{Package: pkg, Custodians: custs, Quorum: q, SoFar: q.Count(rec.ApproversUpTo(res.State.Heads.Offline.Seq))}
	if k, err := s.Store.KEK(pkg.Offer); err == nil {
		t.KEK = k.Fingerprint
	}
	return t, nil
}

// names lists the names of cs.
func names(cs []payload.Custodian) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// approvers picks the custodians who approve what now: those named, each once, each one of
// eligible who has not approved yet; or, if none is named, every one of eligible who has not.
// pinFiles may name only them. notEligible makes the error for a name not in eligible.
func (s *Session) approvers(eligible []payload.Custodian, approved []bundle.ID, named, pinFiles []string, what string, notEligible func(name string) error) ([]*store.Custodian, error) {
	if len(named) == 0 {
		for _, c := range eligible {
			if !slices.Contains(approved, c.Key.ID()) {
				named = append(named, c.Name)
			}
		}
		if len(named) == 0 {
			return nil, errorf(ErrApprovedAlready, "every custodian approved %s already", what)
		}
	}
	for _, n := range pinFiles {
		if !slices.Contains(named, n) {
			return nil, pinFileErr(n)
		}
	}
	var custs []*store.Custodian
	for _, n := range named {
		if slices.ContainsFunc(custs, func(c *store.Custodian) bool { return c.Name == n }) {
			return nil, usagef("custodian %s is given twice", n)
		}
		i := slices.IndexFunc(eligible, func(c payload.Custodian) bool { return c.Name == n })
		if i < 0 {
			return nil, notEligible(n)
		}
		if slices.Contains(approved, eligible[i].Key.ID()) {
			return nil, errorf(ErrApprovedAlready, "custodian %s approved %s already", n, what)
		}
		c, err := s.Store.Custodian(n)
		if err != nil {
			return nil, fmt.Errorf("custodian %s: %w", n, err)
		}
		if c.Key.ID() != eligible[i].Key.ID() {
			return nil, errorf(ErrNotPolicyKey, "the ledger's key for custodian %s is not the policy's", n)
		}
		custs = append(custs, c)
	}
	return custs, nil
}

// regionPackages returns the IDs of the key packages of pkgs that await upload, unexpired,
// for a vault of region under the policy in force.
func (s *Session) regionPackages(pkgs []store.Package, region string) ([]bundle.ID, error) {
	p := s.Policy.Policy
	if !slices.Contains(p.VaultRegions(), region) {
		return nil, usagef("--region %s: no vault of the policy in force is in it (its regions are %s)", region, strings.Join(p.VaultRegions(), ", "))
	}
	var ids []bundle.ID
	t := s.now().Unix()
	for _, pkg := range pkgs {
		rec, outstanding := s.Result.State.Packages[pkg.ID]
		v, _ := p.Vault(pkg.Vault)
		if outstanding && rec.Expires >= t && v.Region == region {
			ids = append(ids, pkg.ID)
		}
	}
	if len(ids) == 0 {
		return nil, errorf(ErrNothingToApprove, "no key package awaits upload for a vault of region %s", region)
	}
	return ids, nil
}

// PackageApproval is a key package that custodians approved: the approval bundle written
// and where the package stands.
type PackageApproval struct {
	Target *ApprovalTarget
	Bundle *bundle.Bundle
	// Approvals are every custodian who approved the package so far, in the policy's order.
	Approvals []string
	Readiness Readiness
}

// Readiness is whose approvals a key package needs and how far it is: Quorum is the first
// quorum of its vault not met yet, else the first; Have counts the approvals towards it.
type Readiness struct {
	Quorum payload.Quorum
	Have   int
	Ready  bool
}

// ReadinessOf returns whose approvals pkg needs under p and how far it is.
func ReadinessOf(p *payload.Policy, pkg *store.Package) Readiness {
	quorums := p.VaultQuorums(pkg.Vault)
	var ids []bundle.ID
	for _, a := range pkg.Approvals {
		ids = append(ids, a.Key)
	}
	q, have, ok := payload.Unmet(quorums, ids)
	if ok {
		q, have = quorums[0], quorums[0].Count(ids)
	}
	return Readiness{Quorum: q, Have: have, Ready: ok}
}

// Approve has the custodians of targets approve them: each custodian's token is opened once
// (one PIN entry) and signs every package they approve now; then one approval bundle per
// package is appended, signed by the station's signer, all in one write. It returns what
// was written, in the order of targets.
func (s *Session) Approve(ctx context.Context, signer *hsm.SigningKey, targets []*ApprovalTarget, open OpenCustodianToken) ([]*PackageApproval, error) {
	sigs := map[bundle.ID][]payload.Signature{}
	var done []string
	for _, t := range targets {
		for _, c := range t.Custodians {
			if slices.Contains(done, c.Name) {
				continue
			}
			done = append(done, c.Name)
			var theirs []bundle.ID
			for _, u := range targets {
				if slices.ContainsFunc(u.Custodians, func(x *store.Custodian) bool { return x.Name == c.Name }) {
					theirs = append(theirs, u.Package.ID)
				}
			}
			got, err := s.CustodianApproves(ctx, open, c, theirs...)
			if err != nil {
				return nil, err
			}
			for i, id := range theirs {
				sigs[id] = append(sigs[id], got[i])
			}
			crashpoint.Hit("approve-signed")
		}
	}
	items := make([]station.Item, len(targets))
	for i, t := range targets {
		id := t.Package.ID
		payload.SortSignatures(sigs[id])
		a := &payload.Approval{Target: id, TargetKind: bundle.KindKeyPackage.String(), Signatures: sigs[id]}
		items[i] = station.Item{Payload: a, Apply: func(tx *bolt.Tx, b *bundle.Bundle) error { return store.Record(tx, b, a) }}
	}
	pos, err := s.Station.Position(s.Policy.ID)
	if err != nil {
		return nil, err
	}
	bs, err := s.Station.AppendBatch(ctx, pos, items, signer, s.now(), PolicyLifetime(s.Policy))
	if err != nil {
		return nil, hsmErr(err)
	}
	var out []*PackageApproval
	for i, t := range targets {
		pkg, err := s.Store.Package(t.Package.ID)
		if err != nil {
			return nil, err
		}
		a := &PackageApproval{Target: t, Bundle: bs[i], Approvals: ApproverNames(s.Policy.Policy, pkg.Approvals), Readiness: ReadinessOf(s.Policy.Policy, pkg)}
		s.Log.Info("approval written", "package", pkg.ID.Short(), "approvals", len(a.Approvals), "threshold", a.Readiness.Quorum.Threshold)
		out = append(out, a)
	}
	return out, nil
}
