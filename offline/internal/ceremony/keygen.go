package ceremony

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"slices"
	"strings"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// MaxKEKBits is the largest KEK Key Vault makes (RSA-HSM 4096).
const MaxKEKBits = 4096

// KeygenRequest is a key to generate or adopt, its options checked for syntax.
type KeygenRequest struct {
	Ident   string
	Type    payload.KeyType // the type to generate; "" when adopting
	Adopt   bool            // adopt an existing key of the token instead of generating one
	Regions []string        // the regions to bind the key to, as given (keygen --regions)
}

// KeygenPlan is a keygen checked against the ledger and the policy in force, before the
// token is opened.
type KeygenPlan struct {
	Station *store.Station
	Policy  *payload.Policy
	// Resuming says that an interrupted keygen of the ident is pending: it is finished, not
	// refused.
	Resuming bool
	// Regions are the key's residency: region labels of the policy's vaults, sorted, each
	// once (nil for none).
	Regions []string
	// WeakerKEK says that no KEK is as strong as the key and the policy does not allow
	// weaker ones: package will refuse the key until the policy changes.
	WeakerKEK bool
}

// PlanKeygen checks a keygen against the ledger and the policy in force: the ident must be
// free (ErrKeyExists), or an interrupted keygen that the request finishes with the same
// regions (ErrKeygenPending when adopting, ErrResumeRegions for other regions); the regions
// must be those of the policy's vaults (ErrNoVaultInRegion) and the type one the policy allows.
func (s *Session) PlanKeygen(r KeygenRequest) (*KeygenPlan, error) {
	st, pol, err := s.RequireInit()
	if err != nil {
		return nil, err
	}
	prev, err := s.Store.Key(r.Ident)
	switch {
	case err == nil && prev.State == store.KeyReady:
		return nil, errorf(ErrKeyExists, "key %q exists already (%s, label %q)", r.Ident, prev.Type, prev.Label)
	case err == nil && r.Adopt:
		return nil, errorf(ErrKeygenPending, "an interrupted keygen of %q is pending", r.Ident)
	case errors.Is(err, store.ErrNotFound):
		prev = nil
	case err != nil:
		return nil, err
	}
	regions, err := Residency(pol.Policy, r.Regions)
	if err != nil {
		return nil, err
	}
	if prev != nil && !slices.Equal(prev.Regions, regions) {
		return nil, errorf(ErrResumeRegions, "the interrupted keygen of %q binds it to regions %q, not %q", r.Ident, prev.Regions, regions)
	}
	plan := &KeygenPlan{Station: st, Policy: pol.Policy, Resuming: prev != nil, Regions: regions}
	if !r.Adopt {
		if err := AllowedType(pol.Policy, r.Type); err != nil {
			return nil, err
		}
		plan.WeakerKEK = payload.RSAStrength(MaxKEKBits) < r.Type.Strength() && !pol.Policy.AllowWeakerKEK
	}
	return plan, nil
}

// Residency returns the regions of vals (comma-separated region labels, each the region of a
// vault of p), sorted and each once (nil for none). A region without a vault of p is
// ErrNoVaultInRegion (see RegionVaults).
func Residency(p *payload.Policy, vals []string) ([]string, error) {
	var out []string
	for _, r := range SplitList(vals) {
		r = strings.ToLower(r)
		if !slices.Contains(p.VaultRegions(), r) {
			return nil, noVaultIn(p, r)
		}
		out = append(out, r)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// TrialExport proves that the security officer, whose PIN is so, can release a
// CKA_WRAP_WITH_TRUSTED key: it wraps the key for a fresh RSA key whose private half is
// discarded at once, so that the ciphertext can be opened by nobody.
func (ks Keys) TrialExport(ctx context.Context, k *hsm.Key, so secret.Value) error {
	throwaway, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if _, err := ks.Token.WrapTrusted(ctx, k, &throwaway.PublicKey, so); err != nil {
		return hsmErr(err)
	}
	ks.Log.Info("the security officer can release the key", "label", k.Label)
	return nil
}
