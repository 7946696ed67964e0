package ceremony_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TestApprovePolicy: a proposed version is approved by custodians of either version who have
// not approved it, and is in force once both thresholds are met.
func TestApprovePolicy(t *testing.T) {
	s := newCustodians(t)
	ctx := context.Background()

	sess := s.openInForce()
	_, err := sess.Proposal()
	wantKind(t, "Proposal with none", err, ceremony.ErrNoProposal, "no policy version awaits approval")
	sess.Close()

	// Version 2 needs all three of its custodians, and two of version 1's; alice approves
	// when proposing it.
	three := 3
	s.propose(ceremony.PolicyChange{Threshold: &three}, "alice")
	sess = s.openInForce()
	prop, err := sess.Proposal()
	if err != nil {
		t.Fatal(err)
	}
	if prop.Policy.Version != 2 || len(prop.Approvals) != 1 {
		t.Fatalf("proposal: version %d with %d approvals, want version 2 with alice's", prop.Policy.Version, len(prop.Approvals))
	}
	sess.Now = func() time.Time { return time.Now().Add(30 * 24 * time.Hour) }
	_, err = sess.Proposal()
	if !errors.Is(err, ceremony.ErrProposalExpired) || !strings.HasPrefix(err.Error(), "the proposed policy version 2 ("+prop.ID.Short()+") expired at ") {
		t.Errorf("Proposal after its expiry = %v, want ErrProposalExpired", err)
	}
	sess.Now = nil

	refusals := []struct {
		name        string
		named, pins []string
		kind        error
		msg         string
	}{
		{"alice again", []string{"alice"}, nil, ceremony.ErrApprovedAlready, "custodian alice approved policy version 2 already"},
		{"a name twice", []string{"bob", "bob"}, nil, ceremony.ErrUsage, "custodian bob is given twice"},
		{"a stranger", []string{"mallory"}, nil, ceremony.ErrNotEligible, "mallory is not a custodian of the policy in force or of the proposed version"},
		{"a PIN file of someone else", []string{"bob"}, []string{"carol"}, ceremony.ErrUsage, "--custodian-pin-file names carol, who is not approving now"},
	}
	for _, tt := range refusals {
		_, err := sess.PlanPolicyApproval(prop, tt.named, tt.pins)
		if ce := wantKind(t, "PlanPolicyApproval with "+tt.name, err, tt.kind, tt.msg); ce != nil && tt.kind == ceremony.ErrNotEligible {
			all := []string{"alice", "bob", "carol"}
			if !slices.Equal(ce.Custodians, all) || !slices.Equal(ce.Proposed, all) {
				t.Errorf("not eligible: custodians %v now and %v proposed, want alice, bob, carol in both", ce.Custodians, ce.Proposed)
			}
		}
	}
	plan, err := sess.PlanPolicyApproval(prop, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := custNames(plan.Custodians); !slices.Equal(got, []string{"bob", "carol"}) || len(plan.Eligible) != 3 {
		t.Errorf("approvers %v of %d eligible, want bob and carol of 3", got, len(plan.Eligible))
	}
	if !slices.Contains(plan.Changes, "approvals: 3 of 3, was 2 of 3") {
		t.Errorf("changes %q do not name the new threshold", plan.Changes)
	}

	plan, err = sess.PlanPolicyApproval(prop, []string{"bob"}, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	signer, closeSigner := s.signer(sess)
	var opened []string
	done, err := sess.ApprovePolicy(ctx, signer, plan, s.opener(&opened))
	closeSigner()
	if err != nil {
		t.Fatal(err)
	}
	if done.Bundle == nil || !slices.Equal(opened, []string{"bob"}) || !slices.Equal(done.Approvals, []string{"alice", "bob"}) {
		t.Errorf("bob's approval: bundle %v, tokens opened %v, approvals %v; want a bundle, bob's token, alice and bob", done.Bundle, opened, done.Approvals)
	}
	if done.OfNew != 2 || done.OfPrevious != 2 || done.InForce || len(done.OfRegions) != 0 {
		t.Errorf("after bob: %d of the new, %d of the previous, regions %v, in force %t; want 2, 2, none, not in force", done.OfNew, done.OfPrevious, done.OfRegions, done.InForce)
	}
	sess.Close()

	sess = s.openInForce()
	prop, err = sess.Proposal()
	if err != nil {
		t.Fatal(err)
	}
	plan, err = sess.PlanPolicyApproval(prop, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, closeSigner = s.signer(sess)
	done, err = sess.ApprovePolicy(ctx, signer, plan, s.opener(new([]string)))
	closeSigner()
	if err != nil {
		t.Fatal(err)
	}
	if done.OfNew != 3 || done.OfPrevious != 3 || !done.InForce {
		t.Errorf("after carol: %d of the new, %d of the previous, in force %t; want 3, 3, in force", done.OfNew, done.OfPrevious, done.InForce)
	}
	sess.Close()

	sess = s.openInForce()
	defer sess.Close()
	if sess.Policy.Policy.Version != 2 {
		t.Errorf("the policy in force is version %d, want 2", sess.Policy.Policy.Version)
	}
	_, err = sess.Proposal()
	wantKind(t, "Proposal once in force", err, ceremony.ErrNoProposal, "no policy version awaits approval")
}

// TestApprovePolicyRegion: a version that changes a region needs that region's threshold in
// force too.
func TestApprovePolicyRegion(t *testing.T) {
	s := newCustodians(t,
		payload.Region{Name: "northeurope", Threshold: 1, Custodians: []string{"carol"}},
		payload.Region{Name: "westeurope", Threshold: 2, Custodians: []string{"alice", "bob"}})
	s.propose(ceremony.PolicyChange{Regions: []string{"westeurope=1:alice,bob"}}, "alice", "carol")
	sess := s.openInForce()
	defer sess.Close()
	prop, err := sess.Proposal()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := sess.PlanPolicyApproval(prop, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := custNames(plan.Custodians); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("approvers %v, want bob", got)
	}
	signer, closeSigner := s.signer(sess)
	defer closeSigner()
	// alice and carol met both versions' thresholds, but only 1 of westeurope's 2.
	done, err := sess.ApprovePolicy(context.Background(), signer, plan, s.opener(new([]string)))
	if err != nil {
		t.Fatal(err)
	}
	want := []ceremony.RegionCount{{Region: "westeurope", Have: 2, Need: 2}}
	if !slices.Equal(done.OfRegions, want) || done.OfNew != 3 || !done.InForce {
		t.Errorf("after bob: regions %v, %d of the new, in force %t; want westeurope 2 of 2, 3, in force", done.OfRegions, done.OfNew, done.InForce)
	}
}

// TestPropose: a proposal is written once; proposing the same terms again (an interrupted
// amend run again) returns it with its approvals and writes nothing, and other terms replace
// it.
func TestPropose(t *testing.T) {
	s := newStation(t)
	ctx := context.Background()
	one, skew := 1, time.Minute
	propose := func(ch ceremony.PolicyChange, approve ...string) *ceremony.Proposal {
		t.Helper()
		sess := s.openInForce()
		defer sess.Close()
		next, _, err := ceremony.Amend(sess.Policy, ch)
		if err != nil {
			t.Fatal(err)
		}
		signer, closeSigner := s.signer(sess)
		defer closeSigner()
		prop, err := sess.Propose(ctx, signer, next)
		if err != nil {
			t.Fatal(err)
		}
		if len(approve) > 0 {
			plan, err := sess.PlanPolicyApproval(prop.PendingPolicy, approve, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sess.ApprovePolicy(ctx, signer, plan, s.opener(new([]string))); err != nil {
				t.Fatal(err)
			}
		}
		return prop
	}

	first := propose(ceremony.PolicyChange{Threshold: &one}, "alice")
	if first.Bundle == nil || first.ID != first.Bundle.ID() || first.Replaced != nil || first.Policy.Version != 2 {
		t.Fatalf("first proposal: bundle %v, ID %s, replaced %v; want version 2 written", first.Bundle, first.ID.Short(), first.Replaced)
	}
	before := s.offlineBundles()
	again := propose(ceremony.PolicyChange{Threshold: &one})
	if again.Bundle != nil || again.ID != first.ID || len(again.Approvals) != 1 || again.Replaced != nil || s.offlineBundles() != before {
		t.Errorf("the same terms again: bundle %v, ID %s with %d approvals; want the first proposal, alice's approval, nothing written", again.Bundle, again.ID.Short(), len(again.Approvals))
	}
	other := propose(ceremony.PolicyChange{MaxClockSkew: &skew})
	if other.Bundle == nil || other.ID == first.ID || len(other.Approvals) != 0 || other.Replaced == nil || other.Replaced.ID != first.ID || len(other.Replaced.Approvals) != 1 {
		t.Fatalf("other terms: bundle %v, replaced %v; want a new proposal replacing the first and its approval", other.Bundle, other.Replaced)
	}
	sess := s.openInForce()
	defer sess.Close()
	if pend, err := sess.Proposal(); err != nil || pend.ID != other.ID || len(pend.Approvals) != 0 {
		t.Errorf("Proposal() = %v, %v; want the second proposal, without approvals", pend, err)
	}
}

// AddCustodians enrols a new custodian only on a token of their own, lists them in the next
// version, and refuses a taken token before any PIN is asked.
func TestAddCustodians(t *testing.T) {
	s := newStation(t)
	ctx := context.Background()
	sess := s.openInForce()
	defer sess.Close()
	for _, tok := range []string{"station", "alice"} {
		next, adds, err := ceremony.Amend(sess.Policy, ceremony.PolicyChange{AddCustodians: []string{"carol=" + tok}})
		if err != nil {
			t.Fatal(err)
		}
		var opened []string
		_, err = sess.AddCustodians(ctx, s.opener(&opened), next, adds, "byok-custodian", false)
		if !errors.Is(err, ceremony.ErrUsage) || !strings.Contains(err.Error(), "needs a token of their own") || len(opened) != 0 {
			t.Errorf("carol on token %s: %v, tokens opened %v; want a usage error and no PIN asked", tok, err, opened)
		}
		if _, err := sess.Store.Custodian("carol"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("carol on token %s was enrolled: %v", tok, err)
		}
	}
	next, adds, err := ceremony.Amend(sess.Policy, ceremony.PolicyChange{AddCustodians: []string{"carol=carol"}})
	if err != nil {
		t.Fatal(err)
	}
	var opened []string
	added, err := sess.AddCustodians(ctx, s.opener(&opened), next, adds, "byok-custodian", false)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := sess.Store.Custodian("carol")
	if err != nil || len(added) != 1 || added[0].KeyLabel != "byok-custodian-carol" || rec.Key.ID() != added[0].Key.ID() {
		t.Fatalf("added %v, ledger %v (%v); want carol's key byok-custodian-carol recorded", added, rec, err)
	}
	if c, ok := next.Custodian(rec.Key.ID()); !ok || c.Name != "carol" || len(next.Custodians) != 3 {
		t.Errorf("next lists %v; want carol added to alice and bob", next.Custodians)
	}
}
