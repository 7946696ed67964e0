package ceremony_test

import (
	"context"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// status returns the ledger's status.
func (s *station) status() *ceremony.Status {
	s.t.Helper()
	var st *ceremony.Status
	s.with(ledgerOnly, nil, func(sess *ceremony.Session) {
		var err error
		if st, err = sess.Status(); err != nil {
			s.t.Fatalf("Status: %v", err)
		}
	})
	return st
}

// TestStatus: the status holds what the ledger recorded: the station, the online station and
// the custodians init enrolled, the policy in force and a later version awaiting approval,
// the heads, the KEK decisions and the keys.
func TestStatus(t *testing.T) {
	s := newStation(t)
	st := s.status()
	if !st.Initialised || st.Station == nil || st.Station.TokenLabel != "station" || st.Online == nil || st.Online.Name != "online-station" {
		t.Fatalf("status after init = %+v", st)
	}
	if len(st.Custodians) != 2 || st.Custodians[0].Name != "alice" || st.Custodians[1].TokenLabel != "bob" {
		t.Errorf("custodians = %+v, want alice and bob", st.Custodians)
	}
	if st.Policy == nil || st.Policy.Version != 1 || !st.InForce || st.Proposal != nil {
		t.Fatalf("policy = %+v (in force %t), proposal %+v; want version 1 in force and no proposal", st.Policy, st.InForce, st.Proposal)
	}
	if st.Head.Seq == 0 || st.Pending || len(st.KEKs) != 0 || len(st.Keys) != 0 || len(st.Packages) != 0 {
		t.Errorf("after init: head %d, pending %t, %d KEKs, %d keys, %d packages", st.Head.Seq, st.Pending, len(st.KEKs), len(st.Keys), len(st.Packages))
	}
	head := st.Head

	s.offer(onlinetest.OfferOptions{Name: "kek-a"})
	s.offer(onlinetest.OfferOptions{Name: "kek-b", Bits: 2048})
	if _, err := s.accept(""); err != nil {
		t.Fatal(err)
	}
	tok := s.token()
	yes := true
	s.with(ceremony.WriteMedium, nil, func(sess *ceremony.Session) {
		keys := ceremony.Keys{Store: sess.Store, Token: tok, Log: sess.Log, Now: time.Now}
		if _, err := keys.Generate(context.Background(), "web", payload.ECP256, false, nil, false, nil); err != nil {
			t.Fatal(err)
		}
		// Policy version 2, which no custodian has approved yet.
		self, cur, err := sess.RequireInit()
		if err != nil {
			t.Fatal(err)
		}
		rec := &chain.PolicyRecord{ID: cur.ID, Policy: cur.Policy}
		next, _, err := ceremony.Amend(rec, ceremony.PolicyChange{AllowWeakerKEK: &yes})
		if err != nil {
			t.Fatal(err)
		}
		signer, err := ceremony.StationSigner(context.Background(), tok, self)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sess.Append(context.Background(), cur.ID, next, signer, ceremony.PolicyLifetime(rec)); err != nil {
			t.Fatal(err)
		}
	})

	st = s.status()
	if len(st.KEKs) != 2 || st.KEKs[0].State != store.KEKAccepted || st.KEKs[1].State != store.KEKRefused {
		t.Errorf("KEKs = %+v, want one accepted and one refused", st.KEKs)
	}
	if len(st.Keys) != 1 || st.Keys[0].Ident != "web" || st.Keys[0].State != store.KeyReady {
		t.Errorf("keys = %+v, want web, ready", st.Keys)
	}
	if st.Policy == nil || st.Policy.Version != 1 || !st.InForce {
		t.Errorf("policy = %+v (in force %t), want version 1 still in force", st.Policy, st.InForce)
	}
	if st.Proposal == nil || st.Proposal.Version != 2 || !st.Proposal.Policy.AllowWeakerKEK {
		t.Errorf("proposal = %+v, want version 2 allowing weaker KEKs", st.Proposal)
	}
	if st.Head.Seq <= head.Seq || st.Peer.Seq != 3 {
		t.Errorf("heads = offline %d, online %d; want offline after %d (the proposal) and online 3 (enrollment, two offers)", st.Head.Seq, st.Peer.Seq, head.Seq)
	}
}
