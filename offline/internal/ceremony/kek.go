package ceremony

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// KEKDecision is a KEK offer AcceptKEKs decided in this run (New), or one decided before
// that --offer named again.
type KEKDecision struct {
	KEK store.KEK
	New bool
}

// KEKAcceptance is what AcceptKEKs did, in the order of the offers on the medium.
type KEKAcceptance struct {
	Offers    int // the KEK offers on the medium
	Decisions []KEKDecision
	Accepted  int // new offers accepted
	Refused   int // new offers refused
	// Refusal is the first refusal (ErrOfferRefused), or nil: the step fails with it once the
	// decisions are recorded and shown.
	Refusal error
}

// AcceptKEKs replays the medium, finishes the plain .byok copies an interrupted package left,
// and decides every KEK offer on the medium not decided yet (or only the one offer names: its
// fingerprint, bundle ID or the KEK's kid) against the policy in force, the clock and the
// attestation roots (nil: a Managed HSM attestation is not checked). It records the
// decisions in the ledger. An offer named that was refused before is a refusal again. The
// session must hold the medium's write lock (LedgerOnly or WriteMedium).
func (s *Session) AcceptKEKs(ctx context.Context, offer string, roots *x509.CertPool) (*KEKAcceptance, error) {
	if _, _, err := s.RequireInit(); err != nil {
		return nil, err
	}
	var offers []*chain.Verified
	res, err := s.ReplayAndFinish(ctx, func(v *chain.Verified) error {
		if _, ok := v.Payload.(*payload.KEKOffer); ok {
			offers = append(offers, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	pol := res.State.Current()
	if pol == nil {
		return nil, ErrNoPolicy
	}
	s.Log.Info("replayed the medium", "offers", len(offers), "online_head", res.State.Heads.Online.Seq)

	var selected *bundle.ID
	if offer != "" {
		id, err := selectOffer(offer, offers)
		if err != nil {
			return nil, err
		}
		selected = &id
	}
	t := s.now()
	out := &KEKAcceptance{Offers: len(offers)}
	var decided []store.KEK
	for _, v := range offers {
		id := v.Bundle.ID()
		if selected != nil && id != *selected {
			continue
		}
		prev, err := s.Store.KEK(id)
		switch {
		case err == nil:
			if selected != nil {
				out.Decisions = append(out.Decisions, KEKDecision{KEK: *prev})
				if prev.State == store.KEKRefused {
					out.Refusal = errorf(ErrOfferRefused, "KEK offer %s was refused: %s", id.Short(), prev.Reason)
				}
			}
			continue
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
		k, why := DecideKEK(v, pol.Policy, t, roots)
		decided = append(decided, k)
		out.Decisions = append(out.Decisions, KEKDecision{KEK: k, New: true})
		if why == nil {
			out.Accepted++
			s.Log.Info("accepted KEK", "kek_fingerprint", k.Fingerprint, "kid", k.KID, "vault", k.Vault, "bits", k.Bits, "attestation", k.Attestation)
			continue
		}
		out.Refused++
		s.Log.Warn("refused KEK offer", "offer", id.Short(), "kid", k.KID, "reason", k.Reason)
		if out.Refusal == nil {
			out.Refusal = errorOf(ErrOfferRefused, fmt.Errorf("KEK offer %s refused: %w", id.Short(), why))
		}
	}
	if len(decided) > 0 {
		if err := s.Store.PutKEKs(decided); err != nil {
			return nil, err
		}
	}
	if len(out.Decisions) == 0 {
		s.Log.Info("no new KEK offers on the medium")
	}
	return out, nil
}

// selectOffer resolves the offer asked for among the offers on the medium: a kid (an
// https:// URL) that none has is ErrNoSuchOffer; anything else is a fingerprint or bundle ID
// (ResolveID).
func selectOffer(s string, offers []*chain.Verified) (bundle.ID, error) {
	var ids []bundle.ID
	for _, v := range offers {
		if strings.HasPrefix(s, "https://") && v.Payload.(*payload.KEKOffer).KID == s {
			return v.Bundle.ID(), nil
		}
		ids = append(ids, v.Bundle.ID())
	}
	if strings.HasPrefix(s, "https://") {
		return bundle.ID{}, errorf(ErrNoSuchOffer, "no KEK offer for %s on the medium", s)
	}
	return ResolveID("KEK offer", s, ids, nil)
}

// DecideKEK checks one verified offer against the policy in force, the clock and the
// attestation roots. The error is the reason for a refusal, which the returned record holds
// too (its state, reason and verdict).
func DecideKEK(v *chain.Verified, p *payload.Policy, t time.Time, roots *x509.CertPool) (store.KEK, error) {
	o := v.Payload.(*payload.KEKOffer)
	h := &v.Bundle.Header
	k := store.KEK{Offer: v.Bundle.ID(), Seq: h.Seq, State: store.KEKAccepted, Vault: o.Vault, KID: o.KID, Bits: o.KeySize,
		Expires: o.Expires, OfferExpires: h.Expires, DecidedAt: t.UTC(), Payload: o, Attestation: store.AttestationNone}
	if spki, err := x509.MarshalPKIXPublicKey(o.PublicKey()); err == nil {
		k.Fingerprint = bundle.KeyIDOfSPKI(spki).Short()
	}
	var reasons []error
	reasons = append(reasons, v.Findings...)
	vault, ok := p.Vault(o.Vault)
	switch {
	case !ok:
		reasons = append(reasons, &chain.PolicyError{Rule: "vault", Detail: fmt.Sprintf("KEK in %s, which the policy does not allow", o.Vault)})
	case vault.Kind == payload.VaultManagedHSM && o.Attestation == nil:
		k.Attestation = store.AttestationMissing
		reasons = append(reasons, &chain.PolicyError{Rule: "attestation", Detail: "a Managed HSM KEK offer carries no attestation"})
	case vault.Kind == payload.VaultManagedHSM && roots == nil:
		k.Attestation = store.AttestationUnchecked
	case vault.Kind == payload.VaultManagedHSM:
		if err := verifyAttestation(o.Attestation, roots, t); err != nil {
			k.Attestation = store.AttestationBadChain
			reasons = append(reasons, &chain.PolicyError{Rule: "attestation", Detail: err.Error()})
		} else {
			k.Attestation = store.AttestationVerified
		}
	}
	if o.KeySize < p.MinKEKBits {
		reasons = append(reasons, &chain.PolicyError{Rule: "kek-size", Detail: fmt.Sprintf("KEK of %d bits, the policy requires %d", o.KeySize, p.MinKEKBits)})
	}
	if !t.Before(time.Unix(o.Expires, 0)) {
		reasons = append(reasons, &chain.ExpiredError{ID: k.Offer, What: "KEK", Expires: time.Unix(o.Expires, 0).UTC(), At: t.UTC()})
	}
	if !t.Before(time.Unix(h.Expires, 0)) {
		reasons = append(reasons, &chain.ExpiredError{ID: k.Offer, What: "KEK offer", Expires: h.ExpiresTime(), At: t.UTC()})
	}
	if len(reasons) == 0 {
		return k, nil
	}
	err := dedupe(reasons)
	k.State, k.Reason, k.Verdict = store.KEKRefused, err.Error(), chain.Verdict(reasons[0])
	return k, err
}

// dedupe joins errors, dropping repeated messages (a finding of the replay and the same
// check made here).
func dedupe(errs []error) error {
	seen := map[string]bool{}
	var out []error
	for _, e := range errs {
		if m := e.Error(); !seen[m] {
			seen[m] = true
			out = append(out, e)
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return joined(out)
}

// joined is errors.Join with the messages on one line.
type joined []error

func (j joined) Error() string {
	s := make([]string, len(j))
	for i, e := range j {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func (j joined) Unwrap() []error { return j }

// verifyAttestation checks that the attestation's certificates chain to one of roots.
func verifyAttestation(a *payload.Attestation, roots *x509.CertPool, t time.Time) error {
	if len(a.Certificates) == 0 {
		return errors.New("the attestation has no certificates")
	}
	var certs []*x509.Certificate
	for i, der := range a.Certificates {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("attestation certificate %d: %v", i, err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: t, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return fmt.Errorf("attestation chain: %v", err)
	}
	return nil
}
