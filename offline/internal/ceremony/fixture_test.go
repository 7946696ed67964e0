package ceremony_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// What the tests of approvals and sync add to a test station (station_test.go).

const mhsm = "https://contoso-mhsm.managedhsm.azure.net"

// newCustodians initialises a station with alice, bob and carol as custodians, threshold
// 2, the premium vault in westeurope and a Managed HSM in northeurope, and the regions
// given.
func newCustodians(t *testing.T, regions ...payload.Region) *station {
	t.Helper()
	s := &station{newInitFixture(t)}
	req := s.request()
	req.Custodians = append(req.Custodians, ceremony.CustodianSpec{Name: "carol", Token: "carol"})
	req.Vaults = append(req.Vaults, payload.Vault{URL: mhsm, Kind: payload.VaultManagedHSM, Region: "northeurope"})
	req.Regions = regions
	sess := s.open(nil)
	if _, err := ceremony.Init(context.Background(), sess, req, s.hooks(s.onlineFP)); err != nil {
		t.Fatalf("Init: %v", err)
	}
	sess.Close()
	return s
}

// takeKEK has the online station offer a KEK for vault, and accepts it.
func (s *station) takeKEK(vault string) {
	s.t.Helper()
	id, _ := s.offer(onlinetest.OfferOptions{Vault: vault, ManagedHSM: vault == mhsm})
	if _, err := s.accept(id.String()); err != nil {
		s.t.Fatal(err)
	}
}

// pkg generates the EC-P256 key ident and packages it for vault, returning the package's ID.
func (s *station) pkg(vault, ident string) bundle.ID {
	s.t.Helper()
	ctx := context.Background()
	tok := s.token()
	defer tok.Close()
	s.with(ledgerOnly, nil, func(sess *ceremony.Session) {
		keys := ceremony.Keys{Store: sess.Store, Token: tok, Log: sess.Log, Now: time.Now}
		if _, err := keys.Generate(ctx, ident, payload.ECP256, false, nil, false, nil); err != nil {
			s.t.Fatal(err)
		}
	})
	var id bundle.ID
	s.with(ceremony.WriteMedium, nil, func(sess *ceremony.Session) {
		p, err := ceremony.NewPacker(ctx, sess, time.Now, "ceremony test")
		if err != nil {
			s.t.Fatal(err)
		}
		if err := p.UseToken(ctx, tok); err != nil {
			s.t.Fatal(err)
		}
		done, err := p.Package(ctx, []ceremony.PackageRequest{{Ident: ident, Vault: vault, KeyName: ident, Enabled: true}})
		if err != nil {
			s.t.Fatal(err)
		}
		id = done[0].Record.ID
	})
	return id
}

// openInForce opens a session with the policy in force; the caller closes it.
func (s *station) openInForce() *ceremony.Session {
	s.t.Helper()
	sess, err := ceremony.OpenInForce(context.Background(), ceremony.Options{StateDir: s.state, Media: s.media})
	if err != nil {
		s.t.Fatal(err)
	}
	return sess
}

// signer opens the station's token and returns its station key; close closes the token.
func (s *station) signer(sess *ceremony.Session) (key *hsm.SigningKey, close func()) {
	s.t.Helper()
	tok := s.token()
	key, err := ceremony.StationSigner(context.Background(), tok, sess.Self)
	if err != nil {
		s.t.Fatal(err)
	}
	return key, func() { tok.Close() }
}

// opener opens custodians' tokens with their PINs and records whose it opened.
func (s *station) opener(opened *[]string) ceremony.OpenCustodianToken {
	return func(ctx context.Context, name, label string) (*hsm.Token, error) {
		*opened = append(*opened, name)
		return s.openToken(ctx, label)
	}
}

// approve has custodians approve the key packages ids, as approve does.
func (s *station) approve(custodians []string, ids ...bundle.ID) {
	s.t.Helper()
	sess := s.openInForce()
	defer sess.Close()
	targets, err := sess.PlanApprovals(request(custodians, ids...))
	if err != nil {
		s.t.Fatal(err)
	}
	signer, closeSigner := s.signer(sess)
	defer closeSigner()
	if _, err := sess.Approve(context.Background(), signer, targets, s.opener(new([]string))); err != nil {
		s.t.Fatal(err)
	}
}

// propose writes the next policy version as ch changes it, as policy amend does, and has
// the custodians named approve it.
func (s *station) propose(ch ceremony.PolicyChange, custodians ...string) {
	s.t.Helper()
	ctx := context.Background()
	sess := s.openInForce()
	defer sess.Close()
	next, _, err := ceremony.Amend(sess.Policy, ch)
	if err != nil {
		s.t.Fatal(err)
	}
	signer, closeSigner := s.signer(sess)
	defer closeSigner()
	prop, err := sess.Propose(ctx, signer, next)
	if err != nil {
		s.t.Fatal(err)
	}
	plan, err := sess.PlanPolicyApproval(prop.PendingPolicy, custodians, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := sess.ApprovePolicy(ctx, signer, plan, s.opener(new([]string))); err != nil {
		s.t.Fatal(err)
	}
}

// custNames lists the custodians' names.
func custNames(cs []*store.Custodian) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// wantKind fails the test unless err is a *ceremony.Error of kind (or, for ErrUsage, wraps
// it) saying msg.
func wantKind(t *testing.T, what string, err, kind error, msg string) *ceremony.Error {
	t.Helper()
	var ce *ceremony.Error
	switch {
	case err == nil:
		t.Errorf("%s = nil, want an error of kind %v saying %q", what, kind, msg)
	case !errors.Is(err, kind) || err.Error() != msg && !(kind == ceremony.ErrUsage && err.Error() == "usage: "+msg):
		t.Errorf("%s = %v, want an error of kind %v saying %q", what, err, kind, msg)
	}
	errors.As(err, &ce)
	return ce
}
