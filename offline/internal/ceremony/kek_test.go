package ceremony_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// accept runs AcceptKEKs on a session that holds the medium's write lock, as kek accept does.
func (s *station) accept(offer string) (*ceremony.KEKAcceptance, error) {
	s.t.Helper()
	var acc *ceremony.KEKAcceptance
	var err error
	s.with(ceremony.LedgerOnly, nil, func(sess *ceremony.Session) { acc, err = sess.AcceptKEKs(context.Background(), offer, nil) })
	return acc, err
}

// keks returns the ledger's KEK decisions by offer.
func (s *station) keks() map[bundle.ID]store.KEK {
	s.t.Helper()
	out := map[bundle.ID]store.KEK{}
	s.with(ledgerOnly, nil, func(sess *ceremony.Session) {
		keks, err := sess.Store.KEKs()
		if err != nil {
			s.t.Fatal(err)
		}
		for _, k := range keks {
			out[k.Offer] = k
		}
	})
	return out
}

// TestAcceptKEKs: every new offer is decided and recorded, the valid ones accepted and the
// others refused with the first refusal returned; decided offers are not decided again; an
// offer named by fingerprint or kid is shown again, a refused one refused again; an offer
// that is not on the medium is refused by kind, and nothing is recorded.
func TestAcceptKEKs(t *testing.T) {
	s := newStation(t)
	good, _ := s.offer(onlinetest.OfferOptions{Name: "kek-a"})
	small, smallOffer := s.offer(onlinetest.OfferOptions{Name: "kek-b", Bits: 2048}) // the policy requires 3072
	elsewhere, _ := s.offer(onlinetest.OfferOptions{Name: "kek-c", Vault: "https://other.vault.azure.net"})

	acc, err := s.accept("")
	if err != nil {
		t.Fatalf("AcceptKEKs: %v", err)
	}
	if acc.Offers != 3 || acc.Accepted != 1 || acc.Refused != 2 || len(acc.Decisions) != 3 {
		t.Fatalf("AcceptKEKs = %d offers, %d accepted, %d refused, %d decisions; want 3, 1, 2, 3", acc.Offers, acc.Accepted, acc.Refused, len(acc.Decisions))
	}
	want := []struct {
		id    bundle.ID
		state string
	}{{good, store.KEKAccepted}, {small, store.KEKRefused}, {elsewhere, store.KEKRefused}}
	for i, w := range want {
		d := acc.Decisions[i]
		if d.KEK.Offer != w.id || d.KEK.State != w.state || !d.New {
			t.Errorf("decision %d = offer %s %s (new %t), want offer %s %s (new)", i, d.KEK.Offer.Short(), d.KEK.State, d.New, w.id.Short(), w.state)
		}
	}
	if !errors.Is(acc.Refusal, ceremony.ErrOfferRefused) || !strings.Contains(acc.Refusal.Error(), "KEK offer "+small.Short()+" refused: ") ||
		!strings.Contains(acc.Refusal.Error(), "KEK of 2048 bits, the policy requires 3072") {
		t.Errorf("Refusal = %v, want the 2048-bit offer's refusal, of kind ErrOfferRefused", acc.Refusal)
	}

	// The ledger holds each decision, a refusal with its reason and verdict.
	keks := s.keks()
	if k := keks[good]; k.State != store.KEKAccepted || k.Reason != "" || k.Verdict != "" || k.KID != premium+"/keys/kek-a/00000000000000000000000000000002" {
		t.Errorf("ledger: accepted offer = %+v", k)
	}
	if k := keks[small]; k.State != store.KEKRefused || k.Verdict != "policy violation" || !strings.Contains(k.Reason, "KEK of 2048 bits") || k.KID != smallOffer.KID {
		t.Errorf("ledger: small offer = state %s, verdict %q, reason %q; want refused for its size", k.State, k.Verdict, k.Reason)
	}
	if k := keks[elsewhere]; k.State != store.KEKRefused || !strings.Contains(k.Reason, "which the policy does not allow") {
		t.Errorf("ledger: offer for another vault = state %s, reason %q; want refused for its vault", k.State, k.Reason)
	}

	// Nothing new: nothing decided, nothing refused.
	acc, err = s.accept("")
	if err != nil || len(acc.Decisions) != 0 || acc.Accepted != 0 || acc.Refused != 0 || acc.Refusal != nil {
		t.Errorf("AcceptKEKs again = %+v, %v; want no decision", acc, err)
	}

	// Named again: shown as decided before; a refused one is a refusal again.
	acc, err = s.accept(good.Short())
	if err != nil || len(acc.Decisions) != 1 || acc.Decisions[0].New || acc.Decisions[0].KEK.State != store.KEKAccepted || acc.Refusal != nil {
		t.Errorf("AcceptKEKs(%s) = %+v, %v; want the accepted offer, not new", good.Short(), acc, err)
	}
	acc, err = s.accept(smallOffer.KID)
	if err != nil || len(acc.Decisions) != 1 || acc.Decisions[0].KEK.Offer != small || acc.Accepted+acc.Refused != 0 ||
		!errors.Is(acc.Refusal, ceremony.ErrOfferRefused) || !strings.Contains(acc.Refusal.Error(), "was refused: ") {
		t.Errorf("AcceptKEKs(kid of the refused offer) = %+v, %v; want its refusal again", acc, err)
	}

	// A later offer named among others: only it is decided.
	later, _ := s.offer(onlinetest.OfferOptions{Name: "kek-d"})
	other, _ := s.offer(onlinetest.OfferOptions{Name: "kek-e"})
	acc, err = s.accept(later.String())
	if err != nil || len(acc.Decisions) != 1 || acc.Decisions[0].KEK.Offer != later || !acc.Decisions[0].New || acc.Accepted != 1 {
		t.Errorf("AcceptKEKs(%s) = %+v, %v; want that one offer accepted", later.Short(), acc, err)
	}
	if _, ok := s.keks()[other]; ok {
		t.Errorf("the offer not named was decided")
	}

	// Offers that are not on the medium.
	before := s.keks()
	var ce *ceremony.Error
	if _, err := s.accept(premium + "/keys/nope/1"); !errors.Is(err, ceremony.ErrNoSuchOffer) || err.Error() != "no KEK offer for "+premium+"/keys/nope/1 on the medium" {
		t.Errorf("AcceptKEKs(unknown kid) = %v, want ErrNoSuchOffer", err)
	}
	if _, err := s.accept(bundle.ID{7}.Short()); !errors.As(err, &ce) || ce.Kind != ceremony.ErrNoSuchBundle || len(ce.Have) != 5 || !slices.Contains(ce.Have, small.Short()) {
		t.Errorf("AcceptKEKs(unknown fingerprint) = %v, want ErrNoSuchBundle listing the 5 offers", err)
	}
	if _, err := s.accept("not-a-fingerprint!"); !errors.Is(err, ceremony.ErrUsage) {
		t.Errorf("AcceptKEKs(garbage) = %v, want ErrUsage", err)
	}
	if after := s.keks(); len(after) != len(before) {
		t.Errorf("a refused --offer recorded %d decisions, want none", len(after)-len(before))
	}
}
