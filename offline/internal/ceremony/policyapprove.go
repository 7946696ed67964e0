package ceremony

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Proposal returns the policy version awaiting approval on the medium (the session is opened
// with OpenInForce): ErrNoProposal if there is none, ErrProposalExpired if it has expired.
func (s *Session) Proposal() (*chain.PendingPolicy, error) {
	pend := s.Result.State.Pending
	if pend == nil {
		return nil, errorf(ErrNoProposal, "no policy version awaits approval")
	}
	if s.now().Unix() > pend.Expires {
		return nil, errorf(ErrProposalExpired, "the proposed policy version %d (%s) expired at %s", pend.Policy.Version, pend.ID.Short(), time.Unix(pend.Expires, 0).UTC().Format(time.RFC3339))
	}
	return pend, nil
}

// Proposal is a policy version proposed to the custodians.
type Proposal struct {
	*chain.PendingPolicy
	// Bundle is the proposal bundle written now; nil if an interrupted proposal of the same
	// terms wrote it already (PendingPolicy then carries the approvals it has).
	Bundle *bundle.Bundle
	// Replaced is the proposal awaiting approval, of other terms, that this one replaces,
	// with its approvals.
	Replaced *chain.PendingPolicy
}

// Propose writes next, the next version of the policy in force (the session is opened with
// OpenInForce), signed by the station's signer, unless the proposal awaiting approval has
// the same terms (an interrupted amend with the same changes wrote it): then that one is
// returned, with its approvals, to collect the rest.
func (s *Session) Propose(ctx context.Context, signer *hsm.SigningKey, next *payload.Policy) (*Proposal, error) {
	cur := s.Policy
	out := &Proposal{PendingPolicy: &chain.PendingPolicy{PolicyRecord: chain.PolicyRecord{Policy: next}}}
	if pend := s.Result.State.Pending; pend != nil {
		if PolicyTerms(pend.Policy) == PolicyTerms(next) {
			out.ID, out.Approvals = pend.ID, pend.Approvals
			s.Log.Info("policy version already proposed; collecting approvals", "version", next.Version, "fingerprint", pend.ID.Short())
			return out, nil
		}
		s.Log.Warn("the new proposal replaces the one awaiting approval, and its approvals", "replaced", pend.ID.Short(), "version", pend.Policy.Version)
		out.Replaced = pend
	}
	b, err := s.Append(ctx, cur.ID, next, signer, PolicyLifetime(cur))
	if err != nil {
		return nil, err
	}
	crashpoint.Hit("policy-proposed")
	out.ID, out.Bundle = b.ID(), b
	s.Log.Info("policy version proposed", "version", next.Version, "fingerprint", out.ID.Short())
	return out, nil
}

// PolicyApproval is a proposed policy version that custodians approve now.
type PolicyApproval struct {
	Proposal *chain.PendingPolicy
	// Changes say, for people, what the proposal changes in the policy in force (and whether
	// it lists this binary).
	Changes []string
	// Eligible are the custodians of either version; Custodians those who approve now.
	Eligible   []payload.Custodian
	Custodians []*store.Custodian
}

// PlanPolicyApproval picks who approves the proposal prop to the policy in force now, before
// any token is opened: the custodians named, or every custodian of either version who has
// not approved yet. Refusals are *Error: ErrNotEligible, ErrApprovedAlready, ErrNotPolicyKey,
// and ErrUsage for a custodian named twice or a PIN file (pinFiles names their custodians)
// of one who does not approve now.
func (s *Session) PlanPolicyApproval(prop *chain.PendingPolicy, named, pinFiles []string) (*PolicyApproval, error) {
	cur := s.Policy
	a := &PolicyApproval{Proposal: prop, Changes: PolicyChanges(cur.Policy, prop.Policy)}
	if self, err := station.Toolset(); err == nil && !prop.Policy.AllowsToolset(self.SHA256) {
		a.Changes = append(a.Changes, fmt.Sprintf("this binary (%s, sha256 %s) is not listed: once this version is in force, it refuses to write", self.Version, self.SHA256))
	}
	a.Eligible = slices.Clone(cur.Policy.Custodians)
	for _, c := range prop.Policy.Custodians {
		if !slices.ContainsFunc(a.Eligible, func(e payload.Custodian) bool { return e.Key.ID() == c.Key.ID() }) {
			a.Eligible = append(a.Eligible, c)
		}
	}
	custs, err := s.approvers(a.Eligible, prop.Approvals, named, pinFiles, fmt.Sprintf("policy version %d", prop.Policy.Version),
		func(n string) error {
			return &Error{Kind: ErrNotEligible, Err: fmt.Errorf("%s is not a custodian of the policy in force or of the proposed version", n),
				Custodians: names(cur.Policy.Custodians), Proposed: names(prop.Policy.Custodians)}
		})
	if err != nil {
		return nil, err
	}
	a.Custodians = custs
	return a, nil
}

// PolicyApproved is where a proposed policy version stands after custodians approved it.
type PolicyApproved struct {
	// Bundle is the approval bundle written (nil if nobody approved now).
	Bundle *bundle.Bundle
	// Approvals are every custodian of either version who approved it so far.
	Approvals []string
	// OfNew and OfPrevious count the approvals of the proposal's and of the policy in
	// force's custodians; OfRegions those of each region's custodians in force that the
	// proposal changes.
	OfNew, OfPrevious int
	OfRegions         []RegionCount
	InForce           bool
}

// RegionCount is how many of a region's custodians approved, and how many must.
type RegionCount struct {
	Region     string
	Have, Need int
}

// ApprovePolicy has the custodians of a sign the proposal, one after the other, appends
// their approval bundle under the policy in force, and reports where the proposal stands.
func (s *Session) ApprovePolicy(ctx context.Context, signer *hsm.SigningKey, a *PolicyApproval, open OpenCustodianToken) (*PolicyApproved, error) {
	cur, prop := s.Policy, a.Proposal
	out := &PolicyApproved{}
	approved := slices.Clone(prop.Approvals)
	if len(a.Custodians) > 0 {
		b, err := s.writeApproval(ctx, signer, a.Custodians, open, prop.ID, bundle.KindPolicy)
		if err != nil {
			return nil, err
		}
		for _, c := range a.Custodians {
			approved = append(approved, c.Key.ID())
		}
		out.Bundle = b
	}
	for _, c := range a.Eligible {
		if slices.Contains(approved, c.Key.ID()) {
			out.Approvals = append(out.Approvals, c.Name)
		}
	}
	out.OfNew = CountCustodians(prop.Policy, approved)
	out.OfPrevious = CountCustodians(cur.Policy, approved)
	qs := cur.Policy.AmendmentQuorums(prop.Policy)
	for _, q := range qs[2:] {
		out.OfRegions = append(out.OfRegions, RegionCount{Region: q.Region, Have: q.Count(approved), Need: q.Threshold})
	}
	_, _, out.InForce = payload.Unmet(qs, approved)
	if out.InForce {
		s.Log.Info("policy version in force", "version", prop.Policy.Version, "fingerprint", prop.ID.Short())
	}
	return out, nil
}

// writeApproval has custs sign target with their tokens, one after the other, and appends
// their approval bundle under the policy in force.
func (s *Session) writeApproval(ctx context.Context, signer *hsm.SigningKey, custs []*store.Custodian, open OpenCustodianToken, target bundle.ID, kind bundle.Kind) (*bundle.Bundle, error) {
	var sigs []payload.Signature
	for _, c := range custs {
		sig, err := s.CustodianApproves(ctx, open, c, target)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig[0])
		crashpoint.Hit("approve-signed")
	}
	payload.SortSignatures(sigs)
	a := &payload.Approval{Target: target, TargetKind: kind.String(), Signatures: sigs}
	return s.Append(ctx, s.Policy.ID, a, signer, PolicyLifetime(s.Policy))
}

// AddCustodians enrols the custodians a policy change adds (Amend's adds), each on a token
// of their own: not the station's, not that of a custodian of the policy in force. It lists
// them in next, checks that next is a valid policy, and returns their records. open asks for
// each one's PIN.
func (s *Session) AddCustodians(ctx context.Context, open OpenCustodianToken, next *payload.Policy, adds []CustodianSpec, labelPrefix string, reuse bool) ([]*store.Custodian, error) {
	custs, err := s.Store.Custodians()
	if err != nil {
		return nil, err
	}
	for _, spec := range adds {
		taken := spec.Token == s.Self.TokenLabel
		for _, c := range custs {
			_, inForce := s.Policy.Policy.Custodian(c.Key.ID())
			taken = taken || (inForce && c.TokenLabel == spec.Token)
		}
		if taken {
			return nil, usagef("--add-custodian %s: token %q is the station's or another custodian's: each custodian needs a token of their own", spec.Name, spec.Token)
		}
	}
	var out []*store.Custodian
	for _, spec := range adds {
		cs, err := s.EnrolCustodian(ctx, open, spec, labelPrefix+"-"+spec.Name, reuse)
		if err != nil {
			return nil, err
		}
		_ = cs.Token.Close()
		next.Custodians = append(next.Custodians, payload.Custodian{Name: spec.Name, Key: cs.Record.Key})
		out = append(out, cs.Record)
	}
	if err := next.Validate(); err != nil {
		return nil, usagef("the new policy is not valid: %v", err)
	}
	return out, nil
}
