package ceremony

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Keys makes and adopts the keys of an open token, and records them in the ledger.
type Keys struct {
	Store *store.Store
	Token *hsm.Token
	Log   *slog.Logger
	Now   func() time.Time
}

// Generate generates the target key ident of type kt, convergently: the intent is recorded
// first, and a rerun after an interruption (resuming) adopts the object the interrupted run
// created. check, if not nil, must pass before the key is recorded as ready.
func (ks Keys) Generate(ctx context.Context, ident string, kt payload.KeyType, trusted bool, regions []string, resuming bool, check func(*hsm.Key) error) (*store.Key, error) {
	s, tok := ks.Store, ks.Token
	rec := &store.Key{Ident: ident, State: store.KeyGenerating, Type: kt, Label: ident, WrapWithTrusted: trusted, Regions: regions, Created: ks.Now().UTC()}
	if err := s.StartKey(rec); err != nil {
		return nil, err
	}
	ks.Log.Info("recorded the intent to generate a key", "ident", ident, "type", string(kt))
	crashpoint.Hit("keygen-intent-recorded")
	spec := SpecOf(kt)
	k, err := tok.FindTarget(ctx, hsm.KeyRef{Label: ident})
	switch {
	case err == nil && resuming:
		if k.Spec != spec || k.WrapWithTrusted != trusted {
			return nil, errorf(ErrOtherObject, "the token's key %q is %s (wrap with trusted %t), not the %s this keygen was generating", ident, k.Spec, k.WrapWithTrusted, kt)
		}
		ks.Log.Info("adopting the key an interrupted keygen generated", "ident", ident, "id", hex.EncodeToString(k.ID))
	case err == nil:
		if derr := s.DeleteKeyIntent(ident); derr != nil {
			return nil, derr
		}
		return nil, &Error{Kind: ErrLabelHeld, Err: fmt.Errorf("token %q already holds a key labelled %q", tok.Label(), ident), Label: ident}
	case errors.Is(err, hsm.ErrKeyNotFound):
		if k, err = tok.GenerateTarget(ctx, spec, ident, hsm.TargetOptions{WrapWithTrusted: trusted}); err != nil {
			if errors.Is(err, hsm.ErrExists) {
				_ = s.DeleteKeyIntent(ident)
				return nil, errorOf(ErrLabelTaken, err)
			}
			return nil, hsmErr(err)
		}
		crashpoint.Hit("keygen-generated")
		ks.Log.Info("generated key", "ident", ident, "type", string(kt), "id", hex.EncodeToString(k.ID))
	default:
		return nil, hsmErr(err)
	}
	if err := fillKey(rec, k); err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(k); err != nil {
			return nil, err
		}
	}
	rec.State = store.KeyReady
	if err := s.PutKey(rec); err != nil {
		return nil, err
	}
	ks.Log.Info("recorded key", "ident", ident)
	return rec, nil
}

// Adopt records an existing key of the token under ident, if the policy p allows its type.
func (ks Keys) Adopt(ctx context.Context, p *payload.Policy, ident string, ref hsm.KeyRef, regions []string) (*store.Key, error) {
	s, tok := ks.Store, ks.Token
	k, err := tok.FindTarget(ctx, ref)
	if err != nil {
		if errors.Is(err, hsm.ErrKeyNotFound) {
			return nil, errorOf(ErrNoSuchObject, err)
		}
		return nil, hsmErr(err)
	}
	kt := TypeOf(k.Spec)
	if err := AllowedType(p, kt); err != nil {
		return nil, err
	}
	keys, err := s.Keys()
	if err != nil {
		return nil, err
	}
	for _, other := range keys {
		if other.Label == k.Label && other.ID == hex.EncodeToString(k.ID) {
			return nil, errorf(ErrRecordedAlready, "that key is recorded already as %q", other.Ident)
		}
	}
	if k.Attributes["CKA_EXTRACTABLE"] != "true" {
		return nil, errorf(ErrNotExtractable, "key %q is not extractable: it cannot be wrapped for Azure", k.Label)
	}
	rec := &store.Key{Ident: ident, State: store.KeyReady, Type: kt, Label: k.Label, WrapWithTrusted: k.WrapWithTrusted, Adopted: true, Regions: regions, Created: ks.Now().UTC()}
	if err := fillKey(rec, k); err != nil {
		return nil, err
	}
	if err := s.PutKey(rec); err != nil {
		return nil, err
	}
	ks.Log.Info("adopted key", "ident", ident, "label", k.Label, "id", hex.EncodeToString(k.ID), "type", string(kt))
	return rec, nil
}

// fillKey copies what the HSM says about k into rec.
func fillKey(rec *store.Key, k *hsm.Key) error {
	rec.ID = hex.EncodeToString(k.ID)
	rec.Attributes = k.Attributes
	rec.WrapWithTrusted = k.WrapWithTrusted
	if k.Public != nil {
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err != nil {
			return fmt.Errorf("public key of %q: %w", k.Label, err)
		}
		rec.PublicKey = der
	}
	rec.KCV = k.CheckValue
	return nil
}

// SpecOf and TypeOf translate between the policy's key types and the HSM's key specs.
func SpecOf(kt payload.KeyType) hsm.KeySpec {
	switch kt.Kty() {
	case "RSA-HSM":
		return hsm.KeySpec{Type: hsm.RSA, Bits: kt.Size()}
	case "EC-HSM":
		bits := map[string]int{"P-256": 256, "P-384": 384, "P-521": 521}[kt.Curve()]
		return hsm.KeySpec{Type: hsm.EC, Bits: bits, Curve: kt.Curve()}
	}
	return hsm.KeySpec{Type: hsm.AES, Bits: kt.Size()}
}

// TypeOf is the key type of an HSM key spec, or "".
func TypeOf(s hsm.KeySpec) payload.KeyType {
	for _, t := range payload.KeyTypes {
		if SpecOf(t) == s {
			return t
		}
	}
	return ""
}

// SignerRequest says which signing key EnsureSigner wants.
type SignerRequest struct {
	What     string // "station key" or "custodian key"
	Label    string
	Reuse    bool   // adopt an existing key with the label
	Recorded []byte // SPKI of the key the ledger recorded for this label, if any
	Flag     string // the option that allows reuse, for the refusal's next step
}

// EnsureSigner returns the signing key labelled r.Label in the token, generating it if
// needed:
//
//   - a key the ledger recorded is found again and must be the same key;
//   - a key whose generation the ledger recorded as an intent (an interrupted run) is
//     adopted;
//   - any other existing key is adopted only if r.Reuse, else refused (ErrSignerHeld);
//   - otherwise the intent is recorded and the key generated.
func (ks Keys) EnsureSigner(ctx context.Context, r SignerRequest) (key *hsm.SigningKey, adopted bool, err error) {
	s, tok := ks.Store, ks.Token
	found, err := tok.FindSigner(ctx, r.Label)
	switch {
	case err == nil && r.Recorded != nil:
		if !SamePublic(found.Public(), r.Recorded) {
			return nil, false, errorf(ErrOtherKey, "the %s labelled %q in token %q is not the one this ledger recorded", r.What, r.Label, tok.Label())
		}
		return found, false, nil
	case err == nil:
		if _, ierr := s.Intent(tok.Label(), r.Label); ierr == nil {
			ks.Log.Info("adopting a key an interrupted run generated", "what", r.What, "token", tok.Label(), "label", r.Label)
			return found, false, nil
		} else if !errors.Is(ierr, store.ErrNotFound) {
			return nil, false, ierr
		}
		if !r.Reuse {
			return nil, false, &Error{Kind: ErrSignerHeld, Err: fmt.Errorf("token %q already holds a key labelled %q", tok.Label(), r.Label), Flag: r.Flag, What: r.What}
		}
		ks.Log.Info("reusing an existing key", "what", r.What, "token", tok.Label(), "label", r.Label)
		return found, true, nil
	case !errors.Is(err, hsm.ErrKeyNotFound):
		return nil, false, hsmErr(err)
	case r.Recorded != nil:
		return nil, false, errorf(ErrKeyGone, "the %s labelled %q is gone from token %q", r.What, r.Label, tok.Label())
	}
	if err := s.PutIntent(&store.Intent{Token: tok.Label(), Label: r.Label, What: r.What, Started: ks.Now()}); err != nil {
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
			return nil, false, &Error{Kind: ErrSignerLabelTaken, Err: err, Token: tok.Label(), Label: r.Label}
		}
		return nil, false, hsmErr(err)
	}
	crashpoint.Hit("signer-generated")
	return k, false, nil
}
