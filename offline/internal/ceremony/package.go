package ceremony

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// PackageRequest is one key to package, its options checked for syntax.
type PackageRequest struct {
	Ident     string
	Vault     string // canonical URL
	KeyName   string
	KEK       string // the KEK asked for (offer or KEK fingerprint, or kid); "" picks the newest
	KeyOps    []string
	NotBefore int64
	Expires   int64
	Enabled   bool
	Tags      map[string]string
}

// Packer packages keys: it holds what packaging needs across keys, the open session, the
// replayed state, the token and the station key.
type Packer struct {
	sess   *Session
	self   *store.Station
	pol    *chain.PolicyRecord
	state  *chain.State
	tok    *hsm.Token
	signer *hsm.SigningKey
	info   hsm.Info
	keks   []store.KEK

	now  func() time.Time
	tool string

	// Bind, if set, is the residency (regions) a key not bound yet is bound to at its first
	// package (package --regions).
	Bind []string

	// SOPIN returns the security officer's PIN, for keys marked CKA_WRAP_WITH_TRUSTED, and
	// whether there is one; nil asks the token without it (which refuses).
	SOPIN func() (secret.Value, bool)
}

// NewPacker prepares packaging on a session that writes to the medium: it requires an
// initialised station, replays the medium from the ledger's checkpoint and finishes the plain
// .byok copies an interrupted run did not write. now is the clock, tool names this software
// in manifests. The caller opens the token with the station's PIN and passes it to UseToken.
func NewPacker(ctx context.Context, sess *Session, now func() time.Time, tool string) (*Packer, error) {
	self, _, err := sess.RequireInit()
	if err != nil {
		return nil, err
	}
	// Packaging needs the state (policy, offers, outstanding packages), not every bundle:
	// resume from the ledger's checkpoint rather than verify the whole medium again.
	res, err := sess.ReplayState(ctx)
	if err != nil {
		return nil, err
	}
	sess.WarnFindings(res)
	// The replay checked that the medium holds this station's chain: now finish the plain
	// .byok copies an interrupted package did not write.
	if err := sess.EnsureByokCopies(); err != nil {
		return nil, err
	}
	p := &Packer{sess: sess, self: self, state: res.State, now: now, tool: tool}
	if p.pol = res.State.Current(); p.pol == nil {
		return nil, ErrNoPolicy
	}
	sess.Log.Info("replayed the medium", "offline_head", res.State.Heads.Offline.Seq, "online_head", res.State.Heads.Online.Seq, "policy", p.pol.ID.Short())
	return p, nil
}

// Self returns this station's record.
func (p *Packer) Self() *store.Station { return p.self }

// Policy returns the policy in force.
func (p *Packer) Policy() *chain.PolicyRecord { return p.pol }

// UseToken finds the station key in tok and reads the token's information; the caller
// closes tok.
func (p *Packer) UseToken(ctx context.Context, tok *hsm.Token) error {
	signer, err := StationSigner(ctx, tok, p.self)
	if err != nil {
		return err
	}
	info, err := tok.Info(ctx)
	if err != nil {
		return hsmErr(err)
	}
	p.tok, p.signer, p.info = tok, signer, info
	return nil
}

// PackagePlan is a request checked against the ledger, the policy and the medium.
type PackagePlan struct {
	Req      PackageRequest
	key      *store.Key
	kt       payload.KeyType
	kek      *store.KEK
	existing *store.Package // an outstanding package of the same key for the same vault
}

// Key returns the ledger's record of the key to package.
func (p *PackagePlan) Key() *store.Key { return p.key }

// KEK returns the accepted KEK the key is wrapped for.
func (p *PackagePlan) KEK() *store.KEK { return p.kek }

// Plan checks a request against the ledger, the policy and the KEKs, without the HSM.
func (p *Packer) Plan(req PackageRequest) (*PackagePlan, error) {
	s := p.sess.Store
	pol := p.pol.Policy
	key, err := s.Key(req.Ident)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errorf(ErrNoKey, "no key %q in the ledger", req.Ident)
	case err != nil:
		return nil, err
	case key.State != store.KeyReady:
		return nil, errorf(ErrKeyGenerating, "key %q is still being generated", req.Ident)
	}
	if key, err = p.bindKey(key); err != nil {
		return nil, err
	}
	plan := &PackagePlan{Req: req, key: key, kt: key.Type}
	vault, ok := pol.Vault(req.Vault)
	if !ok {
		var urls []string
		for _, v := range pol.Vaults {
			urls = append(urls, v.URL)
		}
		return nil, &Error{Kind: ErrVaultNotAllowed, Err: fmt.Errorf("the policy does not allow vault %s", req.Vault), Vaults: urls}
	}
	if err := AllowedType(pol, key.Type); err != nil {
		return nil, err
	}
	if len(key.Regions) > 0 && !slices.Contains(key.Regions, vault.Region) {
		return nil, errorOf(ErrResidency, &chain.PolicyError{Rule: "residency",
			Detail: fmt.Sprintf("key %q may live only in region(s) %s, and %s is in %s", key.Ident, strings.Join(key.Regions, ", "), vault.URL, vault.Region)})
	}
	if key.Type.IsSymmetric() && vault.Kind != payload.VaultManagedHSM {
		return nil, errorf(ErrKeyTypeNotAllowed, "%s keys (oct-HSM) go only to a Managed HSM, and %s is %s", key.Type, vault.URL, vault.Kind)
	}
	if len(req.KeyOps) == 0 {
		plan.Req.KeyOps = key.Type.DefaultKeyOps()
	} else {
		allowed := key.Type.DefaultKeyOps()
		for _, op := range req.KeyOps {
			if !slices.Contains(allowed, op) {
				return nil, fmt.Errorf("%w: --key-ops %s: %s keys allow %s", ErrUsage, op, key.Type.Kty(), strings.Join(allowed, ", "))
			}
		}
		ops := slices.Clone(req.KeyOps)
		slices.Sort(ops)
		plan.Req.KeyOps = slices.Compact(ops)
	}
	if plan.kek, err = p.chooseKEK(req); err != nil {
		return nil, err
	}
	if err := p.checkKEK(plan.kek, key.Type); err != nil {
		return nil, err
	}
	if plan.existing, err = p.existingPackage(plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// Package checks every request before any key is wrapped (a refusal names the key, and the
// vault when the requests go to several, and says that no key was packaged), records the
// regions Bind binds keys to, and wraps and writes the key packages (PackAll).
func (p *Packer) Package(ctx context.Context, reqs []PackageRequest) ([]*Packaged, error) {
	var vaults []string
	for _, r := range reqs {
		if !slices.Contains(vaults, r.Vault) {
			vaults = append(vaults, r.Vault)
		}
	}
	var plans []*PackagePlan
	for _, req := range reqs {
		plan, err := p.Plan(req)
		if err != nil {
			switch {
			case len(vaults) > 1:
				err = fmt.Errorf("key %s for %s: %w (no key was packaged)", req.Ident, req.Vault, err)
			case len(reqs) > 1:
				err = fmt.Errorf("key %s: %w (no key was packaged)", req.Ident, err)
			}
			return nil, err
		}
		plans = append(plans, plan)
	}
	if err := p.BindAll(plans); err != nil {
		return nil, err
	}
	return p.PackAll(ctx, plans)
}

// RegionVaults adds to vaults the vaults of p in regions, or every vault of p with all. A
// region that no vault of p is in is ErrNoVaultInRegion (Error.Region names it, Error.Have
// lists p's regions).
func RegionVaults(p *payload.Policy, vaults, regions []string, all bool) ([]string, error) {
	if all {
		for _, v := range p.Vaults {
			vaults = append(vaults, v.URL)
		}
		return vaults, nil
	}
	for _, r := range SplitList(regions) {
		r = strings.ToLower(r)
		n := 0
		for _, v := range p.Vaults {
			if v.Region == r {
				n++
				if !slices.Contains(vaults, v.URL) {
					vaults = append(vaults, v.URL)
				}
			}
		}
		if n == 0 {
			return nil, noVaultIn(p, r)
		}
	}
	return vaults, nil
}

// noVaultIn refuses region r, which no vault of p is in.
func noVaultIn(p *payload.Policy, r string) error {
	return &Error{Kind: ErrNoVaultInRegion, Err: fmt.Errorf("no vault of the policy in force is in region %s (its regions are %s)", r, strings.Join(p.VaultRegions(), ", ")),
		Region: r, Have: p.VaultRegions()}
}

// bindKey returns key bound to the regions of Bind, if set: a key bound already must be
// bound to the same, and one not bound yet must never have been packaged. The binding is
// recorded in the ledger by BindAll, once every plan is checked.
func (p *Packer) bindKey(key *store.Key) (*store.Key, error) {
	switch {
	case len(p.Bind) == 0:
		return key, nil
	case len(key.Regions) > 0 && !slices.Equal(key.Regions, p.Bind):
		return nil, errorf(ErrBound, "key %q is bound to region(s) %s already; its residency does not change", key.Ident, strings.Join(key.Regions, ", "))
	case len(key.Regions) > 0:
		return key, nil
	}
	pkgs, err := p.sess.Store.Packages()
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(pkgs, func(pk store.Package) bool { return pk.Ident == key.Ident }) {
		return nil, errorf(ErrBound, "key %q was packaged before without regions: only its first package can bind it", key.Ident)
	}
	k := *key
	k.Regions = p.Bind
	return &k, nil
}

// BindAll records in the ledger the regions Bind binds the keys of plans to.
func (p *Packer) BindAll(plans []*PackagePlan) error {
	for _, plan := range plans {
		stored, err := p.sess.Store.Key(plan.key.Ident)
		if err != nil {
			return err
		}
		if len(stored.Regions) == 0 && len(plan.key.Regions) > 0 {
			if err := p.sess.Store.PutKey(plan.key); err != nil {
				return err
			}
			p.sess.Log.Info("bound the key to regions", "ident", plan.key.Ident, "regions", strings.Join(plan.key.Regions, ","))
		}
	}
	return nil
}

// AllowedType refuses key types the policy does not allow.
func AllowedType(p *payload.Policy, kt payload.KeyType) error {
	if !p.AllowsKeyType(kt) {
		return errorf(ErrKeyTypeNotAllowed, "the policy does not allow %s keys (it allows %s)", kt, JoinTypes(p.KeyTypes))
	}
	if kt.IsSymmetric() {
		for _, v := range p.Vaults {
			if v.Kind == payload.VaultManagedHSM {
				return nil
			}
		}
		return errorf(ErrKeyTypeNotAllowed, "%s keys go only to a Managed HSM, and the policy names none", kt)
	}
	return nil
}

// JoinTypes lists key types, comma-separated.
func JoinTypes(ts []payload.KeyType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// chooseKEK picks the accepted KEK the request names, or the newest accepted one for the
// vault.
func (p *Packer) chooseKEK(req PackageRequest) (*store.KEK, error) {
	if p.keks == nil {
		// KEK decisions change only in kek accept: read them once per run.
		keks, err := p.sess.Store.KEKs()
		if err != nil {
			return nil, err
		}
		p.keks = keks
	}
	keks := p.keks
	var cands []store.KEK
	for _, k := range keks {
		if k.State == store.KEKAccepted && k.Vault == req.Vault {
			if _, ok := p.state.Offers[k.Offer]; ok {
				cands = append(cands, k)
			}
		}
	}
	if req.KEK != "" {
		for i := range keks {
			k := &keks[i]
			if req.KEK == k.KID || req.KEK == k.Offer.String() || eqShort(req.KEK, k.Offer.Short()) || eqShort(req.KEK, k.Fingerprint) {
				switch {
				case k.State != store.KEKAccepted:
					return nil, errorf(ErrKEKRefused, "KEK %s was refused: %s", k.Fingerprint, k.Reason)
				case k.Vault != req.Vault:
					return nil, errorf(ErrKEKRefused, "KEK %s belongs to %s, not %s: a KEK is bound to its vault", k.Fingerprint, k.Vault, req.Vault)
				case !slices.ContainsFunc(cands, func(c store.KEK) bool { return c.Offer == k.Offer }):
					return nil, errorf(ErrOfferMissing, "KEK offer %s is not on the medium", k.Offer.Short())
				}
				return k, nil
			}
		}
		return nil, errorf(ErrNoSuchKEK, "no accepted KEK %q", req.KEK)
	}
	if len(cands) == 0 {
		return nil, errorf(ErrNoKEK, "no accepted KEK for %s", req.Vault)
	}
	// The newest one that has not expired; if all have, the newest, to say so.
	t := p.now()
	for i := len(cands) - 1; i >= 0; i-- {
		if t.Before(time.Unix(cands[i].Expires, 0)) && t.Before(time.Unix(cands[i].OfferExpires, 0)) {
			return &cands[i], nil
		}
	}
	return &cands[len(cands)-1], nil
}

func eqShort(typed, short string) bool {
	s, err := bundle.ParseShort(typed)
	return err == nil && s == short
}

// checkKEK refuses a KEK that has expired, is smaller than the policy allows or is weaker
// than the target key (unless the policy allows that).
func (p *Packer) checkKEK(k *store.KEK, kt payload.KeyType) error {
	pol := p.pol.Policy
	t := p.now()
	switch {
	case !t.Before(time.Unix(k.Expires, 0)):
		return &Error{Kind: ErrKEKExpired, Err: &chain.ExpiredError{ID: k.Offer, What: "KEK", Expires: time.Unix(k.Expires, 0).UTC(), At: t.UTC()}, Vault: k.Vault, KID: k.KID}
	case !t.Before(time.Unix(k.OfferExpires, 0)):
		return &Error{Kind: ErrKEKExpired, Err: &chain.ExpiredError{ID: k.Offer, What: "KEK offer", Expires: time.Unix(k.OfferExpires, 0).UTC(), At: t.UTC()}, Vault: k.Vault, KID: k.KID}
	case k.Bits < pol.MinKEKBits:
		return errorOf(ErrKEKSize, &chain.PolicyError{Rule: "kek-size", Detail: fmt.Sprintf("KEK of %d bits, the policy requires %d", k.Bits, pol.MinKEKBits)})
	}
	if s := payload.RSAStrength(k.Bits); s < kt.Strength() && !pol.AllowWeakerKEK {
		return &Error{Kind: ErrKEKStrength, Err: &chain.PolicyError{Rule: "kek-strength",
			Detail: fmt.Sprintf("RSA-%d KEK (%d-bit strength) is weaker than the %s key (%d-bit)", k.Bits, s, kt, kt.Strength())}, KeyType: kt}
	}
	return nil
}

// existingPackage finds a package of the same key for the same vault that is still awaiting
// upload. One with the same key name and KEK is returned (rerunning package converges);
// anything else is refused.
func (p *Packer) existingPackage(plan *PackagePlan) (*store.Package, error) {
	pkgs, err := p.sess.Store.PackagesOf(plan.Req.Ident, plan.Req.Vault)
	if err != nil {
		return nil, err
	}
	t := p.now().Unix()
	for i := len(pkgs) - 1; i >= 0; i-- {
		old := &pkgs[i]
		rec, outstanding := p.state.Packages[old.ID]
		switch {
		case !outstanding:
			return nil, errorf(ErrUploaded, "key %q was uploaded to %s already (package %s)", old.Ident, old.Vault, old.ID.Short())
		case rec.Rejected > 0 || old.Expires < t:
			continue // refused by Key Vault, or expired: a new package may replace it
		case old.KeyName == plan.Req.KeyName && old.Offer == plan.kek.Offer:
			return old, nil
		}
		return nil, errorf(ErrAwaitingUpload, "key %q has a package for %s awaiting upload already (%s, as %q)", old.Ident, old.Vault, old.ID.Short(), old.KeyName)
	}
	return nil, nil
}

// Packaged is a key package that packaging wrote, or found written (Existing).
type Packaged struct {
	Plan     *PackagePlan
	Record   *store.Package
	Wrapped  *hsm.Wrapped // how the key was wrapped; nil for an existing package
	Existing bool
}

// wrappedKey is a key wrapped for its package, not yet written.
type wrappedKey struct {
	plan *PackagePlan
	w    *hsm.Wrapped
	kp   *payload.KeyPackage
}

// PackAll wraps the keys of plans and writes their key packages in one journal cycle, then
// their plain .byok copies; a plan with an existing package returns that one. It returns
// the results in the order of plans.
func (p *Packer) PackAll(ctx context.Context, plans []*PackagePlan) ([]*Packaged, error) {
	var todo []*wrappedKey
	for _, plan := range plans {
		if plan.existing != nil {
			p.sess.Log.Info("the key package exists already", "package", plan.existing.ID.Short(), "key_name", plan.existing.KeyName)
			continue
		}
		wk, err := p.wrap(ctx, plan)
		if err != nil {
			return nil, err
		}
		todo = append(todo, wk)
	}
	written := map[*PackagePlan]*Packaged{}
	if len(todo) > 0 {
		items := make([]station.Item, len(todo))
		for i, wk := range todo {
			kp := wk.kp
			items[i] = station.Item{Payload: kp, Apply: func(tx *bolt.Tx, b *bundle.Bundle) error { return store.Record(tx, b, kp) }}
		}
		pos, err := p.sess.Station.Position(p.pol.ID)
		if err != nil {
			return nil, err
		}
		lifetime := time.Duration(p.pol.Policy.BundleLifetimeSeconds) * time.Second
		bs, err := p.sess.Station.AppendBatch(ctx, pos, items, p.signer, p.now(), lifetime)
		if err != nil {
			return nil, hsmErr(err)
		}
		crashpoint.Hit("package-appended")
		recs := make([]*store.Package, len(bs))
		data := make([][]byte, len(bs))
		for i, b := range bs {
			if recs[i], err = p.sess.Store.Package(b.ID()); err != nil {
				return nil, fmt.Errorf("the ledger did not record package %s: %w", b.ID().Short(), err)
			}
			data[i] = todo[i].kp.BYOK
		}
		if err := p.sess.WriteByokCopies(recs, data); err != nil {
			return nil, err
		}
		for i, b := range bs {
			wk, rec := todo[i], recs[i]
			p.sess.Log.Info("key package written", "package", b.ID().Short(), "key_name", wk.kp.KeyName, "vault", wk.kp.Vault, "byok", rec.ByokCopy)
			written[wk.plan] = &Packaged{Plan: wk.plan, Record: rec, Wrapped: wk.w}
		}
	}
	out := make([]*Packaged, len(plans))
	for i, plan := range plans {
		if plan.existing != nil {
			out[i] = &Packaged{Plan: plan, Record: plan.existing, Existing: true}
			continue
		}
		out[i] = written[plan]
	}
	return out, nil
}

// wrap finds the plan's key in the HSM, wraps it for the KEK and builds its key package.
func (p *Packer) wrap(ctx context.Context, plan *PackagePlan) (*wrappedKey, error) {
	key := plan.key
	id, err := hex.DecodeString(key.ID)
	if err != nil {
		return nil, fmt.Errorf("ledger key %q: CKA_ID: %w", key.Ident, err)
	}
	k, err := p.tok.FindTarget(ctx, hsm.KeyRef{Label: key.Label, ID: id})
	if err != nil {
		return nil, hsmErr(err)
	}
	if err := SameKey(k, key); err != nil {
		return nil, err
	}
	crashpoint.Hit("package-key-found")
	kek := plan.kek.Payload.PublicKey()
	var w *hsm.Wrapped
	if k.WrapWithTrusted && p.SOPIN != nil {
		if so, ok := p.SOPIN(); ok {
			w, err = p.tok.WrapTrusted(ctx, k, kek, so)
		} else {
			// Without the SO PIN the token is asked anyway: it is the one that refuses.
			w, err = p.tok.Wrap(ctx, k, kek)
		}
	} else {
		w, err = p.tok.Wrap(ctx, k, kek)
	}
	if err != nil {
		return nil, hsmErr(err)
	}
	crashpoint.Hit("package-wrapped")
	p.sess.Log.Info("wrapped key", "ident", key.Ident, "kek_fingerprint", plan.kek.Fingerprint, "path", string(w.Method.Path), "bytes", len(w.Ciphertext))
	f, err := byok.New(plan.kek.KID, w.Ciphertext, p.generator())
	if err != nil {
		return nil, fmt.Errorf("build the .byok file: %w", err)
	}
	kp := &payload.KeyPackage{
		Vault: plan.Req.Vault, KeyName: plan.Req.KeyName, Regions: plan.key.Regions,
		KEK: payload.KEKRef{Offer: plan.kek.Offer, KID: plan.kek.KID},
		Target: payload.Target{Kty: plan.kt.Kty(), KeySize: plan.kt.Size(), Curve: plan.kt.Curve(), KeyOps: plan.Req.KeyOps,
			Enabled: plan.Req.Enabled, NotBefore: plan.Req.NotBefore, Expires: plan.Req.Expires, Tags: plan.Req.Tags},
		PublicKey: key.PublicKey, KCV: key.KCV,
		BYOK: f.Marshal(),
		Provenance: payload.Provenance{
			Tool:  p.tool,
			Token: TokenInfo(p.info),
			Key:   payload.KeyAttributes{Label: k.Label, ID: hex.EncodeToString(k.ID), Attributes: k.Attributes},
			Wrap: payload.WrapInfo{Path: string(w.Method.Path), Mechanisms: w.Method.Mechanisms,
				EphemeralKeyDestroyed: !w.EphemeralCreated || w.EphemeralDestroyed, TrailingZeroPadding: w.ZeroPaddingExpected},
		},
	}
	if err := kp.Validate(); err != nil {
		return nil, fmt.Errorf("the key package is not valid: %w", err)
	}
	if !kp.Provenance.Wrap.EphemeralKeyDestroyed {
		p.sess.Log.Warn("the ephemeral AES key could not be destroyed; it dies with the session", "ident", key.Ident)
	}
	return &wrappedKey{plan: plan, w: w, kp: kp}, nil
}

// SameKey checks that the HSM's key is the one the ledger recorded.
func SameKey(k *hsm.Key, rec *store.Key) error {
	if k.Public != nil {
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err == nil && bytes.Equal(der, rec.PublicKey) {
			return nil
		}
	} else if len(rec.KCV) > 0 && bytes.Equal(k.CheckValue, rec.KCV) {
		return nil
	}
	return errorf(ErrOtherKey, "the HSM's key %q is not the key recorded as %q", k.Label, rec.Ident)
}

// generator names this tool and the HSM in the .byok file.
func (p *Packer) generator() string {
	t := p.info.Token
	return fmt.Sprintf("%s; %s %s firmware %s (%s %s)", p.tool, t.Manufacturer, t.Model, t.FirmwareVersion,
		strings.TrimSpace(p.info.Library.Description), p.info.Library.Version)
}

// WriteByokCopies writes the plain .byok copies of packages (data[i] for recs[i]) that the
// medium lacks, syncing the byok/ folder once for all of them. A different file under a
// copy's name stays, with a warning.
func (s *Session) WriteByokCopies(recs []*store.Package, data [][]byte) error {
	var files []media.ByokFile
	done := 0
	for i, rec := range recs {
		name := rec.ByokName()
		p := path.Join(media.ByokDir, name)
		got, err := s.Station.Media.ReadFile(p, byok.MaxFileSize)
		switch {
		case err == nil && bytes.Equal(got, data[i]):
			done++ // written before
		case errors.Is(err, media.ErrBadType):
			return byokRefused(err)
		case err == nil || !errors.Is(err, fs.ErrNotExist):
			s.Log.Warn("a different file has the name of the plain .byok copy; not replacing it", "path", p)
		default:
			files = append(files, media.ByokFile{Name: name, Data: data[i]})
		}
	}
	if _, err := s.Station.Media.WriteByoks(files); err != nil {
		return errorf(ErrByokWrite, "write the plain .byok copies: %w", err)
	}
	for range done + len(files) {
		crashpoint.Hit("package-byok-written")
	}
	return nil
}

// byokRefused refuses to write the plain .byok copies to a medium whose byok/ folder (or a
// copy's name) is a link, a FIFO or a device: nothing is followed out of the medium.
func byokRefused(err error) error {
	if errors.Is(err, media.ErrBadType) {
		return errorf(ErrByokBadType, "cannot check the plain .byok copies on the medium: %w", err)
	}
	return errorf(ErrByokCheck, "check the plain .byok copies on the medium: %w", err)
}

// EnsureByokCopies writes the plain .byok copies an interrupted package did not write.
func (s *Session) EnsureByokCopies() error {
	pkgs, err := s.Store.Packages()
	if err != nil {
		return err
	}
	for i := range pkgs {
		rec := &pkgs[i]
		if ok, err := s.Station.Media.IsFile(rec.ByokCopy); err != nil {
			return byokRefused(err)
		} else if ok {
			continue
		}
		e := media.Entry{Chain: bundle.ChainOffline, Seq: rec.Seq, ID: rec.ID, Path: media.Path(bundle.ChainOffline, rec.Seq, rec.ID)}
		data, err := s.Station.Media.Read(e)
		if err != nil {
			return errorf(ErrOwnPackage, "read own package %s: %w", rec.ID.Short(), err)
		}
		b, err := bundle.Parse(data)
		if err != nil {
			return errorOf(ErrMalformed, err)
		}
		pl, err := b.Open()
		if err != nil {
			return station.VerifyErr(err)
		}
		var kp payload.KeyPackage
		if err := payload.Unmarshal(pl, &kp); err != nil {
			return errorOf(ErrMalformed, err)
		}
		s.Log.Info("writing the plain .byok copy an interrupted run did not write", "package", rec.ID.Short())
		if err := s.WriteByokCopies([]*store.Package{rec}, [][]byte{kp.BYOK}); err != nil {
			return err
		}
	}
	return nil
}

// TokenInfo converts the HSM's information for a manifest or enrollment.
func TokenInfo(i hsm.Info) payload.TokenInfo {
	return payload.TokenInfo{
		Label: i.Token.Label, Manufacturer: i.Token.Manufacturer, Model: i.Token.Model, Serial: i.Token.Serial,
		Firmware: i.Token.FirmwareVersion.String(), Hardware: i.Token.HardwareVersion.String(),
		Library:        strings.TrimSpace(i.Library.Manufacturer + " " + i.Library.Description),
		LibraryVersion: i.Library.Version.String(), Cryptoki: i.Library.CryptokiVersion.String(),
	}
}

// StationSigner finds the station key in the token and checks it is the enrolled one.
func StationSigner(ctx context.Context, tok *hsm.Token, st *store.Station) (*hsm.SigningKey, error) {
	k, err := tok.FindSigner(ctx, st.KeyLabel)
	if err != nil {
		return nil, hsmErr(err)
	}
	if !SamePublic(k.Public(), st.Key.SPKI) {
		return nil, errorf(ErrNotStationKey, "the key labelled %q in token %q is not the station key this ledger enrolled (%s)", st.KeyLabel, tok.Label(), st.Fingerprint())
	}
	return k, nil
}

// SamePublic reports whether pub's DER SubjectPublicKeyInfo is spki.
func SamePublic(pub any, spki []byte) bool {
	der, err := x509.MarshalPKIXPublicKey(pub)
	return err == nil && bytes.Equal(der, spki)
}
