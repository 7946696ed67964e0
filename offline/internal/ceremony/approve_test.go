package ceremony_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

func request(custodians []string, ids ...bundle.ID) ceremony.ApprovalRequest {
	r := ceremony.ApprovalRequest{Custodians: custodians}
	for _, id := range ids {
		r.Refs = append(r.Refs, id.String())
	}
	return r
}

// TestApprovePackages: the plan picks the custodians who have not approved, refuses what it
// must with the right kind before any token is opened, and each custodian opens their token
// once for every package they approve, each package getting its approval bundle.
func TestApprovePackages(t *testing.T) {
	s := newCustodians(t)
	s.takeKEK(premium)
	web, db := s.pkg(premium, "web"), s.pkg(premium, "db")
	ctx := context.Background()

	sess := s.openInForce()
	targets, err := sess.PlanApprovals(request(nil, web, db))
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 2 || targets[0].Package.ID != web || targets[1].Package.ID != db {
		t.Fatalf("PlanApprovals(web, db) = %d targets, want web then db", len(targets))
	}
	for _, tg := range targets {
		if got := custNames(tg.Custodians); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
			t.Errorf("package %s: approvers %v, want every custodian", tg.Package.KeyName, got)
		}
		if tg.Quorum.Threshold != 2 || tg.Quorum.Region != "" || tg.SoFar != 0 || tg.KEK == "" {
			t.Errorf("package %s: quorum %v, so far %d, KEK %q; want the policy's 2, none so far, the KEK's fingerprint", tg.Package.KeyName, tg.Quorum, tg.SoFar, tg.KEK)
		}
	}

	refusals := []struct {
		name string
		req  ceremony.ApprovalRequest
		kind error
		msg  string
	}{
		{"a name twice", request([]string{"alice", "alice"}, web), ceremony.ErrUsage, "custodian alice is given twice"},
		{"a package twice", request(nil, web, web), ceremony.ErrUsage, "key package " + web.Short() + " is given twice"},
		{"a stranger", request([]string{"alice", "mallory"}, web), ceremony.ErrNotEligible, "mallory is not a custodian of the policy in force"},
		{"a PIN file of someone else", ceremony.ApprovalRequest{Refs: []string{web.String()}, Custodians: []string{"alice"}, PINFiles: []string{"bob"}},
			ceremony.ErrUsage, "--custodian-pin-file names bob, who is not approving now"},
		{"a region without packages", ceremony.ApprovalRequest{Region: "NorthEurope"}, ceremony.ErrNothingToApprove, "no key package awaits upload for a vault of region northeurope"},
		{"a region without vaults", ceremony.ApprovalRequest{Region: "eastus"}, ceremony.ErrUsage, "--region eastus: no vault of the policy in force is in it (its regions are northeurope, westeurope)"},
	}
	for _, tt := range refusals {
		_, err := sess.PlanApprovals(tt.req)
		if ce := wantKind(t, "PlanApprovals with "+tt.name, err, tt.kind, tt.msg); ce != nil && tt.kind == ceremony.ErrNotEligible {
			if !slices.Equal(ce.Custodians, []string{"alice", "bob", "carol"}) || ce.Region != "" || ce.Proposed != nil {
				t.Errorf("not eligible: custodians %v, region %q, proposed %v; want the policy's custodians alone", ce.Custodians, ce.Region, ce.Proposed)
			}
		}
	}
	// References are resolved one after the other, each checked before the next: an unknown
	// one after a package given twice is not reached.
	_, err = sess.PlanApprovals(ceremony.ApprovalRequest{Refs: []string{web.Short(), "0000-0000-0000-0000"}})
	if ce := wantKind(t, "PlanApprovals of an unknown package", err, ceremony.ErrNoSuchBundle, "no key package 0000-0000-0000-0000"); ce != nil {
		want := []string{web.Short() + " (web, outstanding)", db.Short() + " (db, outstanding)"}
		if !slices.Equal(ce.Have, want) {
			t.Errorf("the packages there are: %q, want %q", ce.Have, want)
		}
	}
	_, err = sess.PlanApprovals(ceremony.ApprovalRequest{Refs: []string{web.Short(), strings.ToLower(web.String()), "0000-0000-0000-0000"}})
	wantKind(t, "PlanApprovals of a package twice, then an unknown one", err, ceremony.ErrUsage, "key package "+web.Short()+" is given twice")
	sess.Now = func() time.Time { return time.Now().Add(30 * 24 * time.Hour) }
	_, err = sess.PlanApprovals(request(nil, web))
	if !errors.Is(err, ceremony.ErrPackageExpired) || !strings.HasPrefix(err.Error(), "key package "+web.Short()+" expired at ") {
		t.Errorf("PlanApprovals of an expired package = %v, want ErrPackageExpired", err)
	}
	sess.Now = nil

	// alice approves both packages with one PIN entry.
	targets, err = sess.PlanApprovals(request([]string{"alice"}, web, db))
	if err != nil {
		t.Fatal(err)
	}
	var opened []string
	signer, closeSigner := s.signer(sess)
	done, err := sess.Approve(ctx, signer, targets, s.opener(&opened))
	closeSigner()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(opened, []string{"alice"}) {
		t.Errorf("tokens opened %v, want alice's once", opened)
	}
	if len(done) != 2 {
		t.Fatalf("Approve wrote %d approvals, want 2", len(done))
	}
	for i, a := range done {
		if a.Target != targets[i] || a.Bundle == nil || a.Bundle.Header.Kind != bundle.KindApproval || !slices.Equal(a.Approvals, []string{"alice"}) {
			t.Errorf("approval %d: bundle %v, approvals %v; want an approval bundle and alice", i, a.Bundle, a.Approvals)
		}
		if r := a.Readiness; r.Ready || r.Have != 1 || r.Quorum.Threshold != 2 {
			t.Errorf("approval %d: readiness %+v, want 1 of 2, not ready", i, r)
		}
		pkg, err := sess.Store.Package(a.Target.Package.ID)
		if err != nil || len(pkg.Approvals) != 1 || pkg.Approvals[0].Custodian != "alice" {
			t.Errorf("the ledger's package %s: %v, %v; want alice's approval", a.Target.Package.KeyName, pkg, err)
		}
	}
	sess.Close()

	sess = s.openInForce()
	defer sess.Close()
	_, err = sess.PlanApprovals(request([]string{"bob", "alice"}, web))
	wantKind(t, "PlanApprovals by alice again", err, ceremony.ErrApprovedAlready, "custodian alice approved key package "+web.Short()+" already")
	targets, err = sess.PlanApprovals(request(nil, web))
	if err != nil {
		t.Fatal(err)
	}
	if got := custNames(targets[0].Custodians); !slices.Equal(got, []string{"bob", "carol"}) || targets[0].SoFar != 1 {
		t.Errorf("after alice: approvers %v, %d so far; want bob and carol, 1", got, targets[0].SoFar)
	}
	targets[0].Custodians = targets[0].Custodians[:1]
	opened = nil
	signer, closeSigner = s.signer(sess)
	defer closeSigner()
	done, err = sess.Approve(ctx, signer, targets, s.opener(&opened))
	if err != nil {
		t.Fatal(err)
	}
	if r := done[0].Readiness; !r.Ready || r.Have != 2 || !slices.Equal(done[0].Approvals, []string{"alice", "bob"}) {
		t.Errorf("after bob: readiness %+v, approvals %v; want ready with alice and bob", r, done[0].Approvals)
	}
	if !slices.Equal(opened, []string{"bob"}) {
		t.Errorf("tokens opened %v, want bob's", opened)
	}
}

// TestApproveRegion: a key package for a vault of a region with custodians of its own is
// approved by those alone, and counts towards the region's threshold.
func TestApproveRegion(t *testing.T) {
	s := newCustodians(t,
		payload.Region{Name: "northeurope", Threshold: 1, Custodians: []string{"carol"}},
		payload.Region{Name: "westeurope", Threshold: 2, Custodians: []string{"alice", "bob"}})
	s.takeKEK(mhsm)
	eu := s.pkg(mhsm, "eu")
	ctx := context.Background()

	sess := s.openInForce()
	targets, err := sess.PlanApprovals(ceremony.ApprovalRequest{Region: "NorthEurope"})
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 1 || targets[0].Package.ID != eu || !slices.Equal(custNames(targets[0].Custodians), []string{"carol"}) {
		t.Fatalf("PlanApprovals(northeurope) = %d targets, want package eu approved by carol", len(targets))
	}
	if q := targets[0].Quorum; q.Region != "northeurope" || q.Threshold != 1 {
		t.Errorf("quorum %v, want northeurope's 1", q)
	}
	_, err = sess.PlanApprovals(ceremony.ApprovalRequest{Region: "northeurope", Custodians: []string{"alice"}})
	if ce := wantKind(t, "PlanApprovals by alice", err, ceremony.ErrNotEligible, "alice does not approve keys for "+mhsm+", a vault of region northeurope"); ce != nil {
		if ce.Region != "northeurope" || !slices.Equal(ce.Custodians, []string{"carol"}) {
			t.Errorf("not eligible: region %q, custodians %v; want northeurope's carol", ce.Region, ce.Custodians)
		}
	}
	signer, closeSigner := s.signer(sess)
	defer closeSigner()
	done, err := sess.Approve(ctx, signer, targets, s.opener(new([]string)))
	if err != nil {
		t.Fatal(err)
	}
	if r := done[0].Readiness; !r.Ready || r.Have != 1 || r.Quorum.Region != "northeurope" || !slices.Equal(done[0].Approvals, []string{"carol"}) {
		t.Errorf("readiness %+v, approvals %v; want ready with carol, for northeurope", r, done[0].Approvals)
	}
	sess.Close()

	sess = s.openInForce()
	defer sess.Close()
	for _, who := range [][]string{nil, {"carol"}} {
		_, err = sess.PlanApprovals(ceremony.ApprovalRequest{Region: "northeurope", Custodians: who})
		wantKind(t, "PlanApprovals(northeurope) again", err, ceremony.ErrApprovedAlready, "every key package of region northeurope is approved by them already")
	}
}
