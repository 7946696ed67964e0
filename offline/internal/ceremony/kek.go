package ceremony

import (
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

// DecideKEK checks one verified offer against the policy in force, the clock and the
// attestation roots. The error is the reason for a refusal, which
// the returned record holds too (the caller sets its exit code).
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
