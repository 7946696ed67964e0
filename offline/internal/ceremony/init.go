package ceremony

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// InitRequest is what init sets up: this station's name and key, the custodians, and the
// terms of policy version 1. The command line has checked it (names, counts, ranges);
// Init checks the policy as a whole.
type InitRequest struct {
	Name               string // this station's name in its enrollment
	Module             string // the PKCS#11 module, for the station's record
	StationKeyLabel    string
	ReuseStationKey    bool
	Custodians         []CustodianSpec
	CustodianKeyLabel  string // prefix of the custodians' key labels: "-NAME" is appended
	ReuseCustodianKeys bool
	Threshold          int
	Vaults             []payload.Vault
	Regions            []payload.Region
	GlobalApproval     bool
	MinKEKBits         int
	KeyTypes           []payload.KeyType
	AllowWeakerKEK     bool
	BundleLifetime     time.Duration
	MaxClockSkew       time.Duration
	Software           string // this tool, named in the enrollment
}

// ConfirmFingerprint shows the operator fp, the fingerprint of the key that signed the
// online station's enrollment on the medium, and returns the fingerprint the online
// operator read aloud, as typed, and how it was given ("flag" or "terminal", recorded in the
// ledger). Its error ends init with nothing more read or written.
type ConfirmFingerprint func(fp string) (typed, by string, err error)

// InitHooks are what init needs a person for.
type InitHooks struct {
	// ConfirmOnline has the operator confirm the online station's key fingerprint.
	ConfirmOnline ConfirmFingerprint
	// OpenStationToken opens this station's token (asking for its PIN); Init closes it.
	OpenStationToken func(ctx context.Context) (*hsm.Token, error)
	// OpenCustodianToken opens a custodian's token (asking for their PIN); Init closes it.
	OpenCustodianToken OpenCustodianToken
}

// InitResult is what init set up.
type InitResult struct {
	Station    *store.Station
	Online     *store.Online
	Custodians []*store.Custodian // in the order of the request
	Written    []*bundle.Bundle   // the bundles this run wrote, in order
	Policy     *store.Policy      // policy version 1, in force, with its approvals
	Done       *store.InitDone
}

// CheckInitMedium checks, before a session is opened (which creates the ledger), that dir
// is a medium the online station wrote first: a missing folder is an unmounted stick
// (media.CheckFolder), a folder without the medium's marker holds no online enrollment
// (ErrNoOnlineEnrollment). Nothing is created.
func CheckInitMedium(dir string) error {
	if err := media.CheckFolder(dir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, media.MarkerName)); err != nil {
		return errorf(ErrNoOnlineEnrollment, "the medium holds no online station enrollment (%s is not an airgap-byok medium yet)", dir)
	}
	return nil
}

// Init initialises the station on sess (opened with WriteMedium and Create): it confirms
// and records the online station's enrollment, finds or generates the station key and the
// custodians' keys, and writes this station's enrollment, policy version 1 and the
// custodians' approval of it. A rerun finishes an interrupted init: what the ledger
// recorded is found again, and a policy the interrupted run wrote must be the one req
// describes (ErrInitPolicyDiffers). An initialised station is refused (ErrInitDone).
//
// The order is part of the contract: the refusals that need no token come before any PIN is
// asked or key generated, and the online enrollment's payload is decoded only after the
// operator confirmed the key that signed it.
func Init(ctx context.Context, sess *Session, req InitRequest, h InitHooks) (*InitResult, error) {
	s := sess.Store
	if d, err := s.InitDone(); err == nil {
		return nil, errorf(ErrInitDone, "this station is initialised already: policy %s is in force since %s", d.Policy.Short(), d.At.Format(time.RFC3339))
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}

	online, err := sess.confirmOnline(h.ConfirmOnline)
	if err != nil {
		return nil, err
	}

	// The station key.
	tok, err := h.OpenStationToken(ctx)
	if err != nil {
		return nil, err
	}
	defer tok.Close()
	stRec, err := s.Station()
	switch {
	case errors.Is(err, store.ErrNotFound):
		stRec = nil
	case err != nil:
		return nil, err
	case stRec.TokenLabel != tok.Label() || stRec.KeyLabel != req.StationKeyLabel:
		return nil, usagef("an interrupted init used station key %q on token %q: rerun with the same --token-label and --station-key-label", stRec.KeyLabel, stRec.TokenLabel)
	}
	sreq := SignerRequest{What: "station key", Label: req.StationKeyLabel, Reuse: req.ReuseStationKey, Flag: "--reuse-station-key"}
	if stRec != nil {
		sreq.Recorded = stRec.Key.SPKI
	}
	signer, adopted, err := Keys{Store: s, Token: tok, Log: sess.Log, Now: sess.now}.EnsureSigner(ctx, sreq)
	if err != nil {
		return nil, err
	}
	if stRec == nil {
		info, err := tok.Info(ctx)
		if err != nil {
			return nil, hsmErr(err)
		}
		pk, err := payload.NewPublicKey(signer.Public())
		if err != nil {
			return nil, err
		}
		stRec = &store.Station{Name: req.Name, Module: req.Module, TokenLabel: tok.Label(), TokenSerial: tok.Serial(),
			KeyLabel: signer.Label, KeyID: store.KeyIDHex(signer.ID), Key: pk, Token: TokenInfo(info), Adopted: adopted}
		if err := s.PutStation(stRec); err != nil {
			return nil, err
		}
	}
	sess.Log.Info("station key ready", "label", stRec.KeyLabel, "fingerprint", stRec.Fingerprint())

	// The custodians' keys; their tokens stay open until they have approved the policy.
	var custs []*CustodianSigner
	defer func() {
		for _, c := range custs {
			_ = c.Token.Close()
		}
	}()
	for _, spec := range req.Custodians {
		cs, err := sess.EnrolCustodian(ctx, h.OpenCustodianToken, spec, req.CustodianKeyLabel+"-"+spec.Name, req.ReuseCustodianKeys)
		if err != nil {
			return nil, err
		}
		custs = append(custs, cs)
	}

	// Replay what is on the medium: the peer reference of this station's bundles.
	if _, err := sess.Replay(ctx, nil); err != nil {
		return nil, err
	}
	res := &InitResult{Station: stRec, Online: online}
	for _, c := range custs {
		res.Custodians = append(res.Custodians, c.Record)
	}
	lifetime := req.BundleLifetime.Truncate(time.Second)
	// The policy about to be written sets the clock tolerance its own bundles must meet.
	sess.Station.SetMaxSkew(req.MaxClockSkew)

	// This station's enrollment.
	if _, err := s.Enrollment(); errors.Is(err, store.ErrNotFound) {
		enr := &payload.Enrollment{Station: "offline", Name: req.Name, Key: stRec.Key, Software: req.Software, HSM: &stRec.Token}
		b, err := sess.Append(ctx, bundle.ID{}, enr, signer, lifetime)
		if err != nil {
			return nil, err
		}
		res.Written = append(res.Written, b)
		crashpoint.Hit("init-enrolled")
	} else if err != nil {
		return nil, err
	}

	// Policy version 1.
	pol := &payload.Policy{
		Version: 1, OfflineStation: stRec.Key, OnlineStation: online.Key, Threshold: req.Threshold,
		Regions: req.Regions, GlobalApproval: req.GlobalApproval, Vaults: req.Vaults, MinKEKBits: req.MinKEKBits, KeyTypes: req.KeyTypes, AllowWeakerKEK: req.AllowWeakerKEK,
		BundleLifetimeSeconds: int64(lifetime / time.Second), MaxClockSkewSeconds: int64(req.MaxClockSkew / time.Second),
	}
	for _, c := range custs {
		pol.Custodians = append(pol.Custodians, payload.Custodian{Name: c.Record.Name, Key: c.Record.Key})
	}
	if err := pol.Validate(); err != nil {
		return nil, usagef("the policy is not valid: %v", err)
	}
	rec, err := s.LatestPolicy()
	switch {
	case errors.Is(err, store.ErrNotFound):
		b, err := sess.Append(ctx, bundle.ID{}, pol, signer, lifetime)
		if err != nil {
			return nil, err
		}
		res.Written = append(res.Written, b)
		crashpoint.Hit("init-policy-written")
		if rec, err = s.LatestPolicy(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if PolicyTerms(pol) != PolicyTerms(rec.Policy) {
			return nil, errorf(ErrInitPolicyDiffers, "an interrupted init wrote policy %s, which differs from the one these flags describe", rec.ID.Short())
		}
	}
	sess.Log.Info("policy written", "version", 1, "fingerprint", rec.ID.Short())

	// The custodians approve it.
	var sigs []payload.Signature
	for _, c := range custs {
		if rec.InForce(nil) {
			break
		}
		if slices.ContainsFunc(rec.Approvals, func(a store.Approval) bool { return a.Key == c.Record.Key.ID() }) {
			continue
		}
		sig, err := c.Approve(rec.ID)
		if err != nil {
			return nil, err
		}
		sess.Log.Info("custodian approved the policy", "custodian", c.Record.Name, "fingerprint", c.Record.Fingerprint())
		sigs = append(sigs, sig)
	}
	if len(sigs) > 0 {
		payload.SortSignatures(sigs)
		a := &payload.Approval{Target: rec.ID, TargetKind: bundle.KindPolicy.String(), Signatures: sigs}
		b, err := sess.Append(ctx, rec.ID, a, signer, lifetime)
		if err != nil {
			return nil, err
		}
		res.Written = append(res.Written, b)
	}
	if res.Done, err = s.InitDone(); err != nil {
		return nil, fmt.Errorf("policy %s is not in force after its approval: %w", rec.ID.Short(), err)
	}
	if res.Policy, err = s.LatestPolicy(); err != nil {
		return nil, err
	}
	sess.Log.Info("station initialised", "policy", res.Done.Policy.Short())
	return res, nil
}

// EnrolCustodian opens the token of the custodian spec names (open asks for their PIN) and
// finds or generates their signing key labelled label (see Keys.EnsureSigner; reuse adopts
// an existing key the ledger does not know), recording the custodian in the ledger. A
// custodian an interrupted run enrolled on another token or label is enrolled anew. The
// caller closes the returned signer's token.
func (s *Session) EnrolCustodian(ctx context.Context, open OpenCustodianToken, spec CustodianSpec, label string, reuse bool) (*CustodianSigner, error) {
	rec, err := s.Store.Custodian(spec.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		rec = nil
	case err != nil:
		return nil, err
	case rec.TokenLabel != spec.Token || rec.KeyLabel != label:
		// An interrupted run enrolled the custodian elsewhere; start over for them.
		rec = nil
	}
	tok, err := open(ctx, spec.Name, spec.Token)
	if err != nil {
		return nil, err
	}
	req := SignerRequest{What: "custodian key", Label: label, Reuse: reuse, Flag: "--reuse-custodian-keys"}
	if rec != nil {
		req.Recorded = rec.Key.SPKI
	}
	key, adopted, err := Keys{Store: s.Store, Token: tok, Log: s.Log, Now: s.now}.EnsureSigner(ctx, req)
	if err != nil {
		tok.Close()
		return nil, err
	}
	if rec == nil {
		pk, err := payload.NewPublicKey(key.Public())
		if err != nil {
			tok.Close()
			return nil, err
		}
		rec = &store.Custodian{Name: spec.Name, TokenLabel: tok.Label(), TokenSerial: tok.Serial(), KeyLabel: key.Label,
			KeyID: store.KeyIDHex(key.ID), Key: pk, Adopted: adopted}
		if err := s.Store.PutCustodian(rec); err != nil {
			tok.Close()
			return nil, err
		}
	}
	s.Log.Info("custodian enrolled", "custodian", spec.Name, "token", spec.Token, "fingerprint", rec.Fingerprint())
	return &CustodianSigner{Record: rec, Token: tok, Key: key}, nil
}

// confirmOnline reads the online station's enrollment from the medium, has the operator
// confirm its key fingerprint, verifies it, and records it. A ledger that confirmed it
// before only checks that the medium still holds the same one (ErrOnlineChanged).
func (s *Session) confirmOnline(confirm ConfirmFingerprint) (*store.Online, error) {
	m := s.Station.Media
	e, err := m.Find(bundle.ChainOnline, 1)
	var dup *media.DuplicateError
	switch {
	case errors.As(err, &dup):
		return nil, errorOf(ErrOnlineEnrollments, &chain.ForkError{Chain: bundle.ChainOnline, Seq: 1, A: dup.IDs[0], B: dup.IDs[1], Reason: "two online enrollments"})
	case errors.Is(err, media.ErrNotFound):
		return nil, errorf(ErrNoOnlineEnrollment, "the medium holds no online station enrollment")
	case err != nil:
		return nil, errorOf(ErrMalformed, err)
	}
	data, err := m.Read(e)
	if err != nil {
		return nil, errorf(ErrMalformed, "read %s: %w", e.Path, err)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		return nil, errorf(ErrMalformed, "%s: %w", e.Path, err)
	}
	switch {
	case b.ID() != e.ID:
		id := b.ID()
		return nil, errorOf(ErrOnlineUnverified, &bundle.HashMismatchError{What: "file name", Want: e.ID[:], Got: id[:]})
	case b.Header.Kind != bundle.KindEnrollment || b.Header.Chain != bundle.ChainOnline || b.Header.Seq != 1:
		return nil, errorf(ErrMalformed, "%s is a %s, not the online enrollment", e.Path, b.Header.Kind)
	}
	fp := b.Header.Signer.Short()
	if rec, err := s.Store.Online(); err == nil {
		if rec.Enrollment != b.ID() {
			return nil, errorf(ErrOnlineChanged, "the medium's online enrollment %s is not the one confirmed before (%s)", b.ID().Short(), rec.Enrollment.Short())
		}
		return rec, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	s.Log.Info("read the online station's enrollment", "fingerprint", fp, "path", e.Path)

	// The operator confirms the key ID the header names before anything else is read:
	// its payload is decoded only once a person vouched for the key.
	typed, by, err := confirm(fp)
	if err != nil {
		return nil, err
	}
	got, err := bundle.ParseShort(strings.TrimSpace(typed))
	if err != nil {
		return nil, usagef("online fingerprint %q: %v", strings.TrimSpace(typed), err)
	}
	if got != fp {
		return nil, errorf(ErrWrongFingerprint, "the online station's key on the medium is %s, not %s", fp, got)
	}
	payloadBytes, err := b.Open()
	if err != nil {
		return nil, station.VerifyErr(err)
	}
	var enr payload.Enrollment
	if err := payload.Unmarshal(payloadBytes, &enr); err != nil {
		return nil, errorOf(ErrMalformed, err)
	}
	if enr.Station != "online" || enr.Key.ID() != b.Header.Signer {
		return nil, errorf(ErrOnlineUnverified, "the online enrollment does not carry the key that signed it")
	}
	pub, err := enr.Key.Parse()
	if err != nil {
		return nil, errorOf(ErrMalformed, err)
	}
	if err := b.VerifySignature(pub); err != nil {
		return nil, errorf(ErrOnlineUnverified, "online enrollment: %w", err)
	}
	rec := &store.Online{Enrollment: b.ID(), Name: enr.Name, Key: enr.Key, ConfirmedAt: s.now().UTC(), ConfirmedBy: by}
	if err := s.Store.PutOnline(rec); err != nil {
		return nil, err
	}
	s.Log.Info("online station confirmed", "name", enr.Name, "fingerprint", fp, "by", by)
	return rec, nil
}
