package ceremony_test

import (
	"context"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

const premium = onlinetest.DefaultVault

// station is an initialised offline station on SoftHSM2, with its ledger and its medium:
// the init fixture's request (custodians alice and bob, threshold 2, the premium vault in
// westeurope), every key type the vault takes, and the extra vaults given.
type station struct {
	*initFixture
}

func newStation(t *testing.T, vaults ...payload.Vault) *station {
	t.Helper()
	s := &station{newInitFixture(t)}
	req := s.request()
	req.Vaults = append(req.Vaults, vaults...)
	req.KeyTypes = []payload.KeyType{payload.RSA2048, payload.RSA3072, payload.RSA4096, payload.ECP256, payload.ECP384, payload.ECP521}
	sess := s.open(nil)
	if _, err := ceremony.Init(context.Background(), sess, req, s.hooks(s.onlineFP)); err != nil {
		t.Fatalf("Init: %v", err)
	}
	sess.Close()
	return s
}

// online opens the online station on the medium; the caller closes it.
func (s *station) online() *onlinetest.Station {
	s.t.Helper()
	on, err := onlinetest.Open(s.media, onlinetest.DefaultSeed)
	if err != nil {
		s.t.Fatal(err)
	}
	return on
}

// offer has the online station write a KEK offer.
func (s *station) offer(o onlinetest.OfferOptions) (bundle.ID, *payload.KEKOffer) {
	s.t.Helper()
	on := s.online()
	defer on.Close()
	b, kp, err := on.Offer(o)
	if err != nil {
		s.t.Fatal(err)
	}
	return b.ID(), kp
}

// token opens the station's token; it closes at the end of the test.
func (s *station) token() *hsm.Token {
	s.t.Helper()
	tok, err := hsm.Open(context.Background(), hsm.Config{Module: s.module, TokenLabel: "station", PIN: secret.New(initTokens[0].PIN)})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { tok.Close() })
	return tok
}

// with runs fn on a session on the ledger and, unless access is ledgerOnly, on the medium,
// with the clock now (nil: time.Now), and closes it.
func (s *station) with(access ceremony.Access, now func() time.Time, fn func(*ceremony.Session)) {
	s.t.Helper()
	o := ceremony.Options{StateDir: s.state, Media: s.media, Access: access, Context: context.Background(), Now: now}
	if access == ledgerOnly {
		o.Media, o.Access = "", ceremony.ReadMedium
	}
	sess, err := ceremony.Open(o)
	if err != nil {
		s.t.Fatal(err)
	}
	defer sess.Close()
	fn(sess)
}

// ledgerOnly is the access of a session on the ledger alone.
const ledgerOnly ceremony.Access = -1
