package ceremony

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// OpenCustodianToken opens the token of custodian name, labelled token, asking for the
// custodian's PIN as the command line sees fit (a file, the environment, a prompt). The
// caller closes the token.
type OpenCustodianToken func(ctx context.Context, name, token string) (*hsm.Token, error)

// CustodianSigner is a custodian's open token and the signing key on it enrolled for them.
type CustodianSigner struct {
	Record *store.Custodian
	Token  *hsm.Token
	Key    *hsm.SigningKey
}

// Approve has the custodian's token sign an approval of id, for an approval bundle of the
// format version this station writes, and checks the signature against the custodian's
// enrolled key (ErrApprovalUnverified if it does not verify).
func (c *CustodianSigner) Approve(id bundle.ID) (payload.Signature, error) {
	sig, err := bundle.Approve(c.Key, rand.Reader, bundle.Version, id)
	if err != nil {
		return payload.Signature{}, hsmErr(fmt.Errorf("custodian %s: sign approval: %w", c.Record.Name, err))
	}
	pub, err := c.Record.Key.Parse()
	if err != nil {
		return payload.Signature{}, err
	}
	if err := bundle.VerifyApproval(pub, bundle.Version, id, sig); err != nil {
		return payload.Signature{}, errorOf(ErrApprovalUnverified, fmt.Errorf("custodian %s: the token's approval does not verify with the enrolled key: %w", c.Record.Name, err))
	}
	return payload.Signature{Custodian: c.Record.Key.ID(), Sig: sig[:]}, nil
}

// CustodianApproves opens custodian c's token once (one PIN entry) and has their enrolled
// key sign the approval of each of ids, returning the signatures in the order of ids. A token
// that holds another key than the enrolled one is ErrNotCustodianKey.
func (s *Session) CustodianApproves(ctx context.Context, open OpenCustodianToken, c *store.Custodian, ids ...bundle.ID) ([]payload.Signature, error) {
	tok, err := open(ctx, c.Name, c.TokenLabel)
	if err != nil {
		return nil, fmt.Errorf("custodian %s: %w", c.Name, err)
	}
	defer tok.Close()
	key, err := tok.FindSigner(ctx, c.KeyLabel)
	if err != nil {
		return nil, fmt.Errorf("custodian %s: %w", c.Name, hsmErr(err))
	}
	if !SamePublic(key.Public(), c.Key.SPKI) {
		return nil, &Error{Kind: ErrNotCustodianKey, Err: fmt.Errorf("token %q holds another key than custodian %s's", c.TokenLabel, c.Name), Token: c.TokenLabel}
	}
	cs := &CustodianSigner{Record: c, Token: tok, Key: key}
	var sigs []payload.Signature
	for _, id := range ids {
		sig, err := cs.Approve(id)
		if err != nil {
			return nil, err
		}
		s.Log.Info("custodian approved", "custodian", c.Name, "target", id.Short(), "fingerprint", c.Fingerprint())
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// Append appends v to this station's chain under policy (zero for the enrollment and the
// first policy), signed by signer and valid for lifetime, recording it in the ledger in the
// same transaction.
func (s *Session) Append(ctx context.Context, policy bundle.ID, v any, signer *hsm.SigningKey, lifetime time.Duration) (*bundle.Bundle, error) {
	pos, err := s.Station.Position(policy)
	if err != nil {
		return nil, err
	}
	b, err := s.Station.Append(ctx, pos, v, signer, s.now(), lifetime, func(tx *bolt.Tx, b *bundle.Bundle) error { return store.Record(tx, b, v) })
	if err != nil {
		return nil, hsmErr(err)
	}
	return b, nil
}

// ApproverNames lists the custodians of p among approvals, in the policy's order.
func ApproverNames(p *payload.Policy, approvals []store.Approval) []string {
	names := []string{}
	for _, c := range p.Custodians {
		if slices.ContainsFunc(approvals, func(a store.Approval) bool { return a.Key == c.Key.ID() }) {
			names = append(names, c.Name)
		}
	}
	return names
}
