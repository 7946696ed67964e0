package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// initOptions are the options of "init".
type initOptions struct {
	State              stateOptions
	HSM                hsmOptions
	Name               string
	StationKeyLabel    string
	ReuseStationKey    bool
	Custodians         cli.StringSlice
	CustodianPINFiles  cli.StringSlice
	CustodianKeyLabel  string
	ReuseCustodianKeys bool
	OnlineFingerprint  string
	Threshold          int
	Vaults             cli.StringSlice
	Regions            cli.StringSlice
	GlobalApproval     bool
	MinKEKBits         int
	KeyTypes           string
	AllowWeakerKEK     bool
	BundleLifetime     time.Duration
	MaxClockSkew       time.Duration
}

func initFlags(o *initOptions) []cli.Flag {
	fs := o.State.flags(true)
	fs = append(fs, o.HSM.flags()...)
	return append(fs,
		&cli.StringFlag{Name: "name", Value: "offline-station", Usage: "the station's name in its enrollment", Destination: &o.Name},
		&cli.StringFlag{Name: "station-key-label", Value: "byok-station", Usage: "CKA_LABEL of the station's signing key", Destination: &o.StationKeyLabel},
		&cli.BoolFlag{Name: "reuse-station-key", Usage: "use an existing signing key with the label instead of refusing", Destination: &o.ReuseStationKey},
		&cli.StringSliceFlag{Name: "custodian", Usage: "a custodian and their token: NAME=TOKEN_LABEL (repeat for each; every label is checked against the tokens present before any PIN is asked)", Destination: &o.Custodians},
		&cli.StringSliceFlag{Name: "custodian-pin-file", Usage: "NAME=PATH: file with the custodian's PIN (else $" + envCustodian + "<NAME>, else a prompt)", Destination: &o.CustodianPINFiles},
		&cli.StringFlag{Name: "custodian-key-label", Value: "byok-custodian", Usage: "CKA_LABEL prefix of custodian keys (the custodian's name is appended)", Destination: &o.CustodianKeyLabel},
		&cli.BoolFlag{Name: "reuse-custodian-keys", Usage: "use existing custodian keys with the label instead of refusing", Destination: &o.ReuseCustodianKeys},
		&cli.StringFlag{Name: "online-fingerprint", Usage: "the online station's key fingerprint, as its operator read it (else asked on stdin)", Destination: &o.OnlineFingerprint},
		&cli.IntFlag{Name: "threshold", Usage: "approvals needed: M of the N custodians", Destination: &o.Threshold},
		&cli.StringSliceFlag{Name: "vault", Usage: "a vault the station may serve: URL=KIND:REGION, KIND premium or managed_hsm (repeat)", Destination: &o.Vaults},
		&cli.StringSliceFlag{Name: "region", Usage: regionFlagUsage, Destination: &o.Regions},
		&cli.BoolFlag{Name: "global-approval", Usage: "a key package for a vault of a --region needs --threshold of all custodians as well as the region's", Destination: &o.GlobalApproval},
		&cli.IntFlag{Name: "min-kek-bits", Value: 3072, Usage: "smallest KEK accepted: 2048, 3072 or 4096", Destination: &o.MinKEKBits},
		&cli.StringFlag{Name: "key-types", Usage: "target key types allowed, e.g. RSA-3072,EC-P256 (default: every type the vaults take)", Destination: &o.KeyTypes},
		&cli.BoolFlag{Name: "allow-weaker-kek", Usage: "allow a KEK weaker than the target key (needed for EC-P384, EC-P521, AES-192, AES-256)", Destination: &o.AllowWeakerKEK},
		&cli.DurationFlag{Name: "bundle-lifetime", Value: 168 * time.Hour, Usage: "how long a bundle stays valid", Destination: &o.BundleLifetime},
		&cli.DurationFlag{Name: "max-clock-skew", Value: 5 * time.Minute, Usage: "how far the stations' clocks may disagree", Destination: &o.MaxClockSkew},
	)
}

func initCommand(env *clirun.Env) *cli.Command {
	var o initOptions
	return &cli.Command{
		Name:  "init",
		Usage: "create the station key, enrol the custodians and write policy version 1",
		Description: "Creates the station's ECDSA P-256 signing key in the HSM and a signing key on each custodian's\n" +
			"token, reads the online station's enrollment from the medium (its fingerprint must be confirmed),\n" +
			"and writes this station's enrollment, policy version 1 and the custodians' approval of it.\n" +
			"Runs once per state folder; an interrupted init is finished by running it again.",
		Flags:  initFlags(&o),
		Action: func(c *cli.Context) error { return runInit(c.Context, o, env) },
	}
}

// initPlan is what init's flags ask for, checked before anything is touched.
type initPlan struct {
	custodians []ceremony.CustodianSpec
	pinFiles   map[string]string
	vaults     []payload.Vault
	regions    []payload.Region
	keyTypes   []payload.KeyType
}

func (o *initOptions) plan() (*initPlan, error) {
	p := &initPlan{}
	if !ceremony.CustodianNameRE.MatchString(o.Name) {
		return nil, clirun.Usagef("--name %q: station names are lowercase letters, digits, '.', '_' and '-'", o.Name)
	}
	if len(o.Custodians.Value()) == 0 {
		return nil, clirun.Usagef("at least one --custodian NAME=TOKEN_LABEL is required")
	}
	tokens := map[string]bool{o.HSM.TokenLabel: true}
	for _, v := range o.Custodians.Value() {
		name, tok, ok := strings.Cut(v, "=")
		if !ok || tok == "" {
			return nil, clirun.Usagef("--custodian %q: want NAME=TOKEN_LABEL", v)
		}
		if !ceremony.CustodianNameRE.MatchString(name) {
			return nil, clirun.Usagef("--custodian %q: names are lowercase letters, digits, '.', '_' and '-'", v)
		}
		if slices.ContainsFunc(p.custodians, func(c ceremony.CustodianSpec) bool { return c.Name == name }) {
			return nil, clirun.Usagef("custodian %s is given twice", name)
		}
		if tokens[tok] {
			return nil, clirun.Usagef("--custodian %s: token %q is the station's or another custodian's: each custodian needs a token of their own", name, tok)
		}
		tokens[tok] = true
		p.custodians = append(p.custodians, ceremony.CustodianSpec{Name: name, Token: tok})
	}
	files, err := parsePairs("custodian-pin-file", o.CustodianPINFiles.Value())
	if err != nil {
		return nil, err
	}
	for name := range files {
		if !slices.ContainsFunc(p.custodians, func(c ceremony.CustodianSpec) bool { return c.Name == name }) {
			return nil, clirun.Usagef("--custodian-pin-file names %s, who is not a --custodian", name)
		}
	}
	p.pinFiles = files
	if o.Threshold < 1 || o.Threshold > len(p.custodians) {
		return nil, clirun.Usagef("--threshold %d: want 1 to %d (the number of custodians)", o.Threshold, len(p.custodians))
	}
	if len(o.Vaults.Value()) == 0 {
		return nil, clirun.Usagef("at least one --vault URL=KIND:REGION is required")
	}
	managed := false
	for _, v := range o.Vaults.Value() {
		vault, err := ceremony.ParseVault(v)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(p.vaults, func(x payload.Vault) bool { return x.URL == vault.URL }) {
			return nil, clirun.Usagef("vault %s is given twice", vault.URL)
		}
		managed = managed || vault.Kind == payload.VaultManagedHSM
		p.vaults = append(p.vaults, vault)
	}
	var names []string
	for _, c := range p.custodians {
		names = append(names, c.Name)
	}
	for _, v := range o.Regions.Value() {
		r, err := ceremony.ParseRegion(v)
		if err != nil {
			return nil, err
		}
		if _, dup := (&payload.Policy{Regions: p.regions}).Region(r.Name); dup {
			return nil, clirun.Usagef("region %s is given twice", r.Name)
		}
		p.regions = ceremony.SetRegion(p.regions, r)
	}
	if err := ceremony.CheckRegions(p.regions, o.GlobalApproval, names, p.vaults); err != nil {
		return nil, err
	}
	if payload.RSAStrength(o.MinKEKBits) == 0 {
		return nil, clirun.Usagef("--min-kek-bits %d: want 2048, 3072 or 4096", o.MinKEKBits)
	}
	if o.KeyTypes == "" {
		for _, t := range payload.KeyTypes {
			if !t.IsSymmetric() || managed {
				p.keyTypes = append(p.keyTypes, t)
			}
		}
	} else {
		for _, s := range splitList([]string{o.KeyTypes}) {
			t, err := payload.ParseKeyType(strings.ToUpper(s))
			if err != nil {
				return nil, clirun.Usagef("--key-types: %v", err)
			}
			if t.IsSymmetric() && !managed {
				return nil, clirun.Usagef("--key-types %s: AES keys go only to a Managed HSM, and no --vault is managed_hsm", t)
			}
			p.keyTypes = append(p.keyTypes, t)
		}
	}
	p.keyTypes = payload.SortKeyTypes(p.keyTypes)
	if o.BundleLifetime < time.Minute || o.BundleLifetime > 366*24*time.Hour {
		return nil, clirun.Usagef("--bundle-lifetime %s: want 1m to 8784h", o.BundleLifetime)
	}
	if o.MaxClockSkew < 0 || o.MaxClockSkew > 24*time.Hour {
		return nil, clirun.Usagef("--max-clock-skew %s: want 0 to 24h", o.MaxClockSkew)
	}
	if o.StationKeyLabel == "" || o.CustodianKeyLabel == "" {
		return nil, clirun.Usagef("key labels must not be empty")
	}
	return p, nil
}

// keyInfo describes a signing key for people.
type keyInfo struct {
	Name        string `json:"name"`
	Token       string `json:"token"`
	Label       string `json:"label"`
	Fingerprint string `json:"fingerprint"`
	KeyID       string `json:"key_id"`
	Adopted     bool   `json:"adopted"`
}

// bundleInfo describes a bundle written.
type bundleInfo struct {
	Seq         uint64 `json:"seq"`
	Kind        string `json:"kind"`
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
	Path        string `json:"path"`
}

func infoOf(b *bundle.Bundle) bundleInfo {
	return bundleInfo{Seq: b.Header.Seq, Kind: b.Header.Kind.String(), ID: b.ID().String(), Fingerprint: b.ID().Short(),
		Path: media.Path(b.Header.Chain, b.Header.Seq, b.ID())}
}

// initResult is the result of "init".
type initResult struct {
	Station    keyInfo         `json:"station"`
	Online     keyInfo         `json:"online"`
	Custodians []keyInfo       `json:"custodians"`
	Policy     policySummary   `json:"policy"`
	Bundles    []bundleInfo    `json:"bundles"`
	Approvals  []string        `json:"approvals"`
	Vaults     []payload.Vault `json:"vaults"`
}

// policySummary describes a policy for people.
type policySummary struct {
	ID             string   `json:"id"`
	Fingerprint    string   `json:"fingerprint"`
	Version        uint64   `json:"version"`
	Threshold      int      `json:"threshold"`
	Custodians     int      `json:"custodians"`
	MinKEKBits     int      `json:"min_kek_bits"`
	KeyTypes       []string `json:"key_types"`
	AllowWeakerKEK bool     `json:"allow_weaker_kek"`
	BundleLifetime string   `json:"bundle_lifetime"`
	MaxClockSkew   string   `json:"max_clock_skew"`
	InForce        bool     `json:"in_force"`
	// Regions are the policy's regions with custodians of their own; GlobalApproval says
	// whether a regional key package needs Threshold of all custodians as well.
	Regions        []regionSummary `json:"regions,omitempty"`
	GlobalApproval bool            `json:"global_approval,omitempty"`
	// AllowedToolsets are the SHA-256 digests of the binaries that may write under it
	// (none: any).
	AllowedToolsets []string `json:"allowed_toolsets,omitempty"`
}

func summarize(id bundle.ID, p *payload.Policy, inForce bool) policySummary {
	s := policySummary{ID: id.String(), Fingerprint: id.Short(), Version: p.Version, Threshold: p.Threshold, Custodians: len(p.Custodians),
		MinKEKBits: p.MinKEKBits, AllowWeakerKEK: p.AllowWeakerKEK, InForce: inForce,
		BundleLifetime: (time.Duration(p.BundleLifetimeSeconds) * time.Second).String(),
		MaxClockSkew:   (time.Duration(p.MaxClockSkewSeconds) * time.Second).String(),
		Regions:        summarizeRegions(p), GlobalApproval: p.GlobalApproval}
	for _, t := range p.KeyTypes {
		s.KeyTypes = append(s.KeyTypes, string(t))
	}
	s.AllowedToolsets = p.AllowedToolsets
	return s
}

func runInit(ctx context.Context, o initOptions, env *clirun.Env) error {
	p, err := o.plan()
	if err != nil {
		return err
	}
	if err := o.HSM.validate(); err != nil {
		return err
	}
	want := []tokenWant{{o.HSM.TokenLabel, "--token-label " + o.HSM.TokenLabel}}
	for _, c := range p.custodians {
		want = append(want, tokenWant{c.Token, "--custodian " + c.Name + "=" + c.Token})
	}
	if err := checkTokens(ctx, o.HSM.Module, want); err != nil {
		return err
	}
	if o.State.Media == "" {
		return clirun.Usagef("--media is required (the airgap-byok folder on the transfer medium)")
	}
	// The online station writes the medium first: without its marker there is no
	// enrollment to read (and nothing is created here). A missing folder is an unmounted
	// stick.
	if err := media.CheckFolder(o.State.Media); err != nil {
		return err
	}
	if !fileExists(filepath.Join(o.State.Media, media.MarkerName)) {
		return exitcode.Wrap(exitcode.Bundle, fmt.Errorf("the medium holds no online station enrollment (%s is not an airgap-byok medium yet)", o.State.Media),
			"run byok-online init with this medium first, then bring it here")
	}
	sess, err := o.State.open(env, ceremony.Options{Access: ceremony.WriteMedium, Create: true})
	if err != nil {
		return err
	}
	defer sess.Close()
	s := sess.Store
	if d, err := s.InitDone(); err == nil {
		return exitcode.Wrap(exitcode.Refused, fmt.Errorf("this station is initialised already: policy %s is in force since %s", d.Policy.Short(), d.At.Format(time.RFC3339)),
			"init runs once per state folder; use a new --state-dir for a new ceremony")
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}

	online, err := confirmOnline(env, sess, o.OnlineFingerprint)
	if err != nil {
		return err
	}

	// The station key.
	tok, err := openStationToken(ctx, env, o.HSM)
	if err != nil {
		return err
	}
	defer tok.Close()
	stRec, err := s.Station()
	switch {
	case errors.Is(err, store.ErrNotFound):
		stRec = nil
	case err != nil:
		return err
	case stRec.TokenLabel != tok.Label() || stRec.KeyLabel != o.StationKeyLabel:
		return clirun.Usagef("an interrupted init used station key %q on token %q: rerun with the same --token-label and --station-key-label", stRec.KeyLabel, stRec.TokenLabel)
	}
	req := ceremony.SignerRequest{What: "station key", Label: o.StationKeyLabel, Reuse: o.ReuseStationKey, Flag: "--reuse-station-key"}
	if stRec != nil {
		req.Recorded = stRec.Key.SPKI
	}
	signer, adopted, err := ceremony.Keys{Store: s, Token: tok, Log: env.Log, Now: now}.EnsureSigner(ctx, req)
	if err != nil {
		return err
	}
	if stRec == nil {
		info, err := tok.Info(ctx)
		if err != nil {
			return hsmErr(err)
		}
		pk, err := payload.NewPublicKey(signer.Public())
		if err != nil {
			return err
		}
		stRec = &store.Station{Name: o.Name, Module: o.HSM.Module, TokenLabel: tok.Label(), TokenSerial: tok.Serial(),
			KeyLabel: signer.Label, KeyID: store.KeyIDHex(signer.ID), Key: pk, Token: ceremony.TokenInfo(info), Adopted: adopted}
		if err := s.PutStation(stRec); err != nil {
			return err
		}
	}
	env.Log.Info("station key ready", "label", stRec.KeyLabel, "fingerprint", stRec.Fingerprint())

	// The custodians' keys; their tokens stay open until they have approved the policy.
	var custs []*ceremony.CustodianSigner
	defer func() {
		for _, c := range custs {
			_ = c.Token.Close()
		}
	}()
	for _, spec := range p.custodians {
		cs, err := enrolCustodian(ctx, env, s, o.HSM.Module, spec, p.pinFiles, o.CustodianKeyLabel+"-"+spec.Name, o.ReuseCustodianKeys)
		if err != nil {
			return err
		}
		custs = append(custs, cs)
	}

	// Replay what is on the medium: the peer reference of this station's bundles.
	if _, err := sess.Replay(ctx, nil); err != nil {
		return err
	}
	res := initResult{Station: keyInfo{Name: stRec.Name, Token: stRec.TokenLabel, Label: stRec.KeyLabel, Fingerprint: stRec.Fingerprint(), KeyID: stRec.Key.ID().String(), Adopted: stRec.Adopted},
		Online: keyInfo{Name: online.Name, Fingerprint: online.Key.ID().Short(), KeyID: online.Key.ID().String()}, Vaults: p.vaults}
	for _, c := range custs {
		res.Custodians = append(res.Custodians, keyInfo{Name: c.Record.Name, Token: c.Record.TokenLabel, Label: c.Record.KeyLabel, Fingerprint: c.Record.Fingerprint(), KeyID: c.Record.Key.ID().String(), Adopted: c.Record.Adopted})
	}
	lifetime := o.BundleLifetime.Truncate(time.Second)
	// The policy about to be written sets the clock tolerance its own bundles must meet.
	sess.Station.SetMaxSkew(o.MaxClockSkew)

	// This station's enrollment.
	if _, err := s.Enrollment(); errors.Is(err, store.ErrNotFound) {
		enr := &payload.Enrollment{Station: "offline", Name: o.Name, Key: stRec.Key, Software: software(), HSM: &stRec.Token}
		b, err := sess.Append(ctx, bundle.ID{}, enr, signer, lifetime)
		if err != nil {
			return err
		}
		res.Bundles = append(res.Bundles, infoOf(b))
		crashpoint.Hit("init-enrolled")
	} else if err != nil {
		return err
	}

	// Policy version 1.
	pol := &payload.Policy{
		Version: 1, OfflineStation: stRec.Key, OnlineStation: online.Key, Threshold: o.Threshold,
		Regions: p.regions, GlobalApproval: o.GlobalApproval, Vaults: p.vaults, MinKEKBits: o.MinKEKBits, KeyTypes: p.keyTypes, AllowWeakerKEK: o.AllowWeakerKEK,
		BundleLifetimeSeconds: int64(lifetime / time.Second), MaxClockSkewSeconds: int64(o.MaxClockSkew / time.Second),
	}
	for _, c := range custs {
		pol.Custodians = append(pol.Custodians, payload.Custodian{Name: c.Record.Name, Key: c.Record.Key})
	}
	if err := pol.Validate(); err != nil {
		return clirun.Usagef("the policy is not valid: %v", err)
	}
	rec, err := s.LatestPolicy()
	switch {
	case errors.Is(err, store.ErrNotFound):
		b, err := sess.Append(ctx, bundle.ID{}, pol, signer, lifetime)
		if err != nil {
			return err
		}
		res.Bundles = append(res.Bundles, infoOf(b))
		crashpoint.Hit("init-policy-written")
		if rec, err = s.LatestPolicy(); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if ceremony.PolicyTerms(pol) != ceremony.PolicyTerms(rec.Policy) {
			return exitcode.Wrap(exitcode.Refused, fmt.Errorf("an interrupted init wrote policy %s, which differs from the one these flags describe", rec.ID.Short()),
				"rerun init with exactly the flags of the interrupted run")
		}
	}
	env.Log.Info("policy written", "version", 1, "fingerprint", rec.ID.Short())

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
			return err
		}
		env.Log.Info("custodian approved the policy", "custodian", c.Record.Name, "fingerprint", c.Record.Fingerprint())
		sigs = append(sigs, sig)
	}
	if len(sigs) > 0 {
		payload.SortSignatures(sigs)
		a := &payload.Approval{Target: rec.ID, TargetKind: bundle.KindPolicy.String(), Signatures: sigs}
		b, err := sess.Append(ctx, rec.ID, a, signer, lifetime)
		if err != nil {
			return err
		}
		res.Bundles = append(res.Bundles, infoOf(b))
	}
	done, err := s.InitDone()
	if err != nil {
		return fmt.Errorf("policy %s is not in force after its approval: %w", rec.ID.Short(), err)
	}
	if rec, err = s.LatestPolicy(); err != nil {
		return err
	}
	res.Approvals = ceremony.ApproverNames(rec.Policy, rec.Approvals)
	res.Policy = summarize(done.Policy, rec.Policy, true)
	env.Log.Info("station initialised", "policy", done.Policy.Short())
	return env.Result(res, func(w io.Writer) error { return writeInit(w, res) })
}

// enrolCustodian opens a custodian's token and finds or generates their signing key.
func enrolCustodian(ctx context.Context, env *clirun.Env, s *store.Store, module string, spec ceremony.CustodianSpec, files map[string]string, label string, reuse bool) (*ceremony.CustodianSigner, error) {
	rec, err := s.Custodian(spec.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		rec = nil
	case err != nil:
		return nil, err
	case rec.TokenLabel != spec.Token || rec.KeyLabel != label:
		// An interrupted run enrolled the custodian elsewhere; start over for them.
		rec = nil
	}
	tok, err := openToken(ctx, env, module, spec.Token, "", custodianSource(spec.Name, spec.Token, files),
		fmt.Sprintf("give %s's PIN with --custodian-pin-file %s=PATH or $%s, or run on a terminal", spec.Name, spec.Name, custodianPINEnv(spec.Name)))
	if err != nil {
		return nil, err
	}
	req := ceremony.SignerRequest{What: "custodian key", Label: label, Reuse: reuse, Flag: "--reuse-custodian-keys"}
	if rec != nil {
		req.Recorded = rec.Key.SPKI
	}
	key, adopted, err := ceremony.Keys{Store: s, Token: tok, Log: env.Log, Now: now}.EnsureSigner(ctx, req)
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
		if err := s.PutCustodian(rec); err != nil {
			tok.Close()
			return nil, err
		}
	}
	env.Log.Info("custodian enrolled", "custodian", spec.Name, "token", spec.Token, "fingerprint", rec.Fingerprint())
	return &ceremony.CustodianSigner{Record: rec, Token: tok, Key: key}, nil
}

func idBytes(id bundle.ID) []byte { return id[:] }

// confirmOnline reads the online station's enrollment from the medium, has the operator
// confirm its key fingerprint, verifies it, and records it. A ledger that confirmed it
// before only checks that the medium still holds the same one.
func confirmOnline(env *clirun.Env, sess *ceremony.Session, flagFP string) (*store.Online, error) {
	m := sess.Station.Media
	e, err := m.Find(bundle.ChainOnline, 1)
	var dup *media.DuplicateError
	switch {
	case errors.As(err, &dup):
		return nil, exitcode.Wrap(exitcode.Verify, &chain.ForkError{Chain: bundle.ChainOnline, Seq: 1, A: dup.IDs[0], B: dup.IDs[1], Reason: "two online enrollments"},
			"the medium must hold exactly one online station's enrollment")
	case errors.Is(err, media.ErrNotFound):
		return nil, exitcode.Wrap(exitcode.Bundle, errors.New("the medium holds no online station enrollment"),
			"run byok-online init with this medium first, then bring it here")
	case err != nil:
		return nil, exitcode.Wrap(exitcode.Bundle, err, "")
	}
	data, err := m.Read(e)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Bundle, fmt.Errorf("read %s: %w", e.Path, err), "")
	}
	b, err := bundle.Parse(data)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Bundle, fmt.Errorf("%s: %w", e.Path, err), "")
	}
	switch {
	case b.ID() != e.ID:
		return nil, exitcode.Wrap(exitcode.Verify, &bundle.HashMismatchError{What: "file name", Want: e.ID[:], Got: idBytes(b.ID())}, "")
	case b.Header.Kind != bundle.KindEnrollment || b.Header.Chain != bundle.ChainOnline || b.Header.Seq != 1:
		return nil, exitcode.Wrap(exitcode.Bundle, fmt.Errorf("%s is a %s, not the online enrollment", e.Path, b.Header.Kind), "")
	}
	fp := b.Header.Signer.Short()
	if rec, err := sess.Store.Online(); err == nil {
		if rec.Enrollment != b.ID() {
			return nil, exitcode.Wrap(exitcode.Verify, fmt.Errorf("the medium's online enrollment %s is not the one confirmed before (%s)", b.ID().Short(), rec.Enrollment.Short()), "is this the right stick?")
		}
		return rec, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	env.Log.Info("read the online station's enrollment", "fingerprint", fp, "path", e.Path)

	// The operator confirms the key ID the header names before anything else is read:
	// its payload is decoded only once a person vouched for the key.
	by := "flag"
	typed := flagFP
	if typed == "" {
		by = "terminal"
		fmt.Fprintf(env.Stderr, "The online station's key fingerprint on this medium is %s.\nType the fingerprint the online operator reads aloud: ", fp)
		line, err := bufio.NewReader(env.Stdin).ReadString('\n')
		if strings.TrimSpace(line) == "" {
			return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("no fingerprint given for the online station (%v)", errOrEOF(err)),
				"pass --online-fingerprint with the fingerprint byok-online init showed, or type it when asked")
		}
		typed = line
	}
	got, err := bundle.ParseShort(strings.TrimSpace(typed))
	if err != nil {
		return nil, clirun.Usagef("online fingerprint %q: %v", strings.TrimSpace(typed), err)
	}
	if got != fp {
		return nil, exitcode.Wrap(exitcode.Verify, fmt.Errorf("the online station's key on the medium is %s, not %s", fp, got),
			"do not continue: the medium or the fingerprint read aloud is not the online station's")
	}
	payloadBytes, err := b.Open()
	if err != nil {
		return nil, station.VerifyErr(err)
	}
	var enr payload.Enrollment
	if err := payload.Unmarshal(payloadBytes, &enr); err != nil {
		return nil, exitcode.Wrap(exitcode.Bundle, err, "")
	}
	if enr.Station != "online" || enr.Key.ID() != b.Header.Signer {
		return nil, exitcode.Wrap(exitcode.Verify, errors.New("the online enrollment does not carry the key that signed it"), "")
	}
	pub, err := enr.Key.Parse()
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Bundle, err, "")
	}
	if err := b.VerifySignature(pub); err != nil {
		return nil, exitcode.Wrap(exitcode.Verify, fmt.Errorf("online enrollment: %w", err), "")
	}
	rec := &store.Online{Enrollment: b.ID(), Name: enr.Name, Key: enr.Key, ConfirmedAt: now().UTC(), ConfirmedBy: by}
	if err := sess.Store.PutOnline(rec); err != nil {
		return nil, err
	}
	env.Log.Info("online station confirmed", "name", enr.Name, "fingerprint", fp, "by", by)
	return rec, nil
}

func errOrEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

func writeInit(w io.Writer, r initResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Read these fingerprints aloud and compare them with what the other people see.\n\n")
	fmt.Fprintf(&b, "offline station  %-19s  %s (token %s, key %s)\n", r.Station.Fingerprint, r.Station.Name, r.Station.Token, r.Station.Label)
	fmt.Fprintf(&b, "online station   %-19s  %s\n", r.Online.Fingerprint, r.Online.Name)
	for _, c := range r.Custodians {
		fmt.Fprintf(&b, "custodian        %-19s  %s (token %s, key %s)\n", c.Fingerprint, c.Name, c.Token, c.Label)
	}
	what := "each key"
	if len(r.Policy.Regions) > 0 {
		what = "each policy version and each key for a vault of no region below"
	}
	fmt.Fprintf(&b, "policy v%d        %-19s  %d of %d custodians approve %s; approved by %s\n", r.Policy.Version, r.Policy.Fingerprint, r.Policy.Threshold, r.Policy.Custodians, what, strings.Join(r.Approvals, ", "))
	for _, v := range r.Vaults {
		fmt.Fprintf(&b, "  vault          %s (%s, %s)\n", v.URL, v.Kind, v.Region)
	}
	for _, rg := range r.Policy.Regions {
		fmt.Fprintf(&b, "  %s\n", regionLine(rg))
	}
	if r.Policy.GlobalApproval {
		fmt.Fprintf(&b, "  a key for a vault of a region needs the region's approvals and %d of all %d custodians'\n", r.Policy.Threshold, r.Policy.Custodians)
	}
	fmt.Fprintf(&b, "  key types      %s\n", strings.Join(r.Policy.KeyTypes, ", "))
	fmt.Fprintf(&b, "  KEK            at least %d bits, weaker than the target allowed: %t\n", r.Policy.MinKEKBits, r.Policy.AllowWeakerKEK)
	fmt.Fprintf(&b, "  bundles        valid for %s, clock skew up to %s\n", r.Policy.BundleLifetime, r.Policy.MaxClockSkew)
	for _, bi := range r.Bundles {
		fmt.Fprintf(&b, "wrote %s\n", bi.Path)
	}
	fmt.Fprintf(&b, "\nNext: take the medium to the online station; its operator runs byok-online trust and compares the policy fingerprint %s.\n", r.Policy.Fingerprint)
	_, err := io.WriteString(w, b.String())
	return err
}

// software names this tool in enrollments and manifests.
func software() string { return Name + " " + clirun.Version() }
