package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

// signerRequest says which signing key ensureSigner wants.
type signerRequest struct {
	What     string // "station key" or "custodian key"
	Label    string
	Reuse    bool   // adopt an existing key with the label
	Recorded []byte // SPKI of the key the ledger recorded for this label, if any
	Flag     string // the flag that allows reuse, for the refusal's hint
}

// ensureSigner returns the signing key labelled r.Label in tok, generating it if needed:
//
//   - a key the ledger recorded is found again and must be the same key;
//   - a key whose generation the ledger recorded as an intent (an interrupted run) is
//     adopted;
//   - any other existing key is adopted only if r.Reuse, else refused (exit code 7);
//   - otherwise the intent is recorded and the key generated.
func ensureSigner(ctx context.Context, env *clirun.Env, s *store.Store, tok *hsm.Token, r signerRequest) (key *hsm.SigningKey, adopted bool, err error) {
	found, err := tok.FindSigner(ctx, r.Label)
	switch {
	case err == nil && r.Recorded != nil:
		if !ceremony.SamePublic(found.Public(), r.Recorded) {
			return nil, false, exitcode.Wrap(exitcode.Verify, fmt.Errorf("the %s labelled %q in token %q is not the one this ledger recorded", r.What, r.Label, tok.Label()),
				"is this the right token?")
		}
		return found, false, nil
	case err == nil:
		if _, ierr := s.Intent(tok.Label(), r.Label); ierr == nil {
			env.Log.Info("adopting a key an interrupted run generated", "what", r.What, "token", tok.Label(), "label", r.Label)
			return found, false, nil
		} else if !errors.Is(ierr, store.ErrNotFound) {
			return nil, false, ierr
		}
		if !r.Reuse {
			return nil, false, exitcode.Wrap(exitcode.Refused, fmt.Errorf("token %q already holds a key labelled %q", tok.Label(), r.Label),
				fmt.Sprintf("pass %s to use it as the %s, or remove it", r.Flag, r.What))
		}
		env.Log.Info("reusing an existing key", "what", r.What, "token", tok.Label(), "label", r.Label)
		return found, true, nil
	case !errors.Is(err, hsm.ErrKeyNotFound):
		return nil, false, hsmErr(err)
	case r.Recorded != nil:
		return nil, false, exitcode.Wrap(exitcode.HSM, fmt.Errorf("the %s labelled %q is gone from token %q", r.What, r.Label, tok.Label()), "is this the right token?")
	}
	if err := s.PutIntent(&store.Intent{Token: tok.Label(), Label: r.Label, What: r.What, Started: now()}); err != nil {
		return nil, false, err
	}
	crashpoint.Hit("signer-intent-recorded")
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, false, err
	}
	k, err := tok.GenerateSigner(ctx, r.Label, id)
	if err != nil {
		if errors.Is(err, hsm.ErrExists) {
			return nil, false, exitcode.Wrap(exitcode.Refused, err, fmt.Sprintf("another object in token %q carries label %q: choose another label", tok.Label(), r.Label))
		}
		return nil, false, hsmErr(err)
	}
	crashpoint.Hit("signer-generated")
	return k, false, nil
}
