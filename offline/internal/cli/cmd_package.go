package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/jsonout"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// packageOptions are the options of "package".
type packageOptions struct {
	State     stateOptions
	HSM       hsmOptions
	Keys      cli.StringSlice
	Vaults    cli.StringSlice
	Regions   cli.StringSlice
	AllVaults bool
	Bind      cli.StringSlice
	Name      string
	KEK       string
	KeyOps    cli.StringSlice
	NotBefore string
	Expires   string
	Tags      cli.StringSlice
	Disabled  bool
	SOPINFile string
}

func packageCommand(env *clirun.Env) *cli.Command {
	var o packageOptions
	fs := o.State.flags(true)
	fs = append(fs, o.HSM.flags()...)
	fs = append(fs,
		&cli.StringSliceFlag{Name: "key", Usage: "ident of the key to package (see keygen); repeat it, or separate idents with commas, to package several keys in one run", Destination: &o.Keys},
		&cli.StringSliceFlag{Name: "vault", Usage: "URL of a vault the key goes to; the policy must allow it (repeat for several vaults: one key package per vault)", Destination: &o.Vaults},
		&cli.StringSliceFlag{Name: "region", Usage: "every vault of the policy in this region (repeat; with or without --vault)", Destination: &o.Regions},
		&cli.StringSliceFlag{Name: "regions", Usage: "bind a key not bound yet to these regions (comma-separated) at its first package, as keygen --regions does", Destination: &o.Bind},
		&cli.BoolFlag{Name: "all-vaults", Usage: "every vault of the policy in force (a key bound to regions is refused for the others: use --region)", Destination: &o.AllVaults},
		&cli.StringFlag{Name: "name", Usage: "the key's name in Key Vault (default: the ident)", Destination: &o.Name},
		&cli.StringFlag{Name: "kek", Usage: "the accepted KEK to wrap with: offer or KEK fingerprint, or kid (default: the newest for the vault)", Destination: &o.KEK},
		&cli.StringSliceFlag{Name: "key-ops", Usage: "operations Key Vault allows the key, comma-separated (default: all its type allows)", Destination: &o.KeyOps},
		&cli.StringFlag{Name: "not-before", Usage: "the key is not valid before: RFC 3339 time, YYYY-MM-DD, or a duration from now", Destination: &o.NotBefore},
		&cli.StringFlag{Name: "expires", Usage: "the key expires in Key Vault: RFC 3339 time, YYYY-MM-DD, or a duration from now (e.g. 8760h)", Destination: &o.Expires},
		&cli.StringSliceFlag{Name: "tag", Usage: "a Key Vault tag k=v (repeat; at most 14: upload adds byok-package)", Destination: &o.Tags},
		&cli.BoolFlag{Name: "disabled", Usage: "import the key disabled", Destination: &o.Disabled},
		&cli.StringFlag{Name: "so-pin-file", Usage: "the security officer's PIN, for keys marked CKA_WRAP_WITH_TRUSTED (else $" + envSOPIN + ", else a prompt)", Destination: &o.SOPINFile, TakesFile: true},
	)
	return &cli.Command{
		Name:  "package",
		Usage: "wrap a key for an accepted KEK and write a key package for upload",
		Description: "Wraps the key in the HSM for the vault's KEK into a .byok file exactly per Azure's BYOK\n" +
			"specification, and writes it in a signed key-package bundle with its manifest (target\n" +
			"public key or check value, key type, operations, provenance). A plain copy of the .byok goes\n" +
			"to the medium's byok/ folder. The package still needs the custodians' approvals.\n\n" +
			"Several --key values package several keys for the same vault with the same options in one\n" +
			"run: every key is checked before any is wrapped, and their bundles are written in one\n" +
			"journal cycle. --name then cannot be given: each key keeps its ident as its name.\n\n" +
			"Several --vault values, --region or --all-vaults send each key to several vaults (fan-out): one key\n" +
			"package per key and vault, each wrapped with that vault's KEK and approved by the custodians\n" +
			"of that vault's region. A key bound to regions (keygen --regions, or --regions at its first\n" +
			"package) is refused (exit 7, nothing written) for a vault outside them. A rerun after an\n" +
			"interruption finishes the same packages.",
		Flags:  fs,
		Action: func(c *cli.Context) error { return runPackage(c.Context, o, env) },
	}
}

// packageRequest is one key to package, checked for syntax.
type packageRequest struct {
	Ident     string
	Vault     string
	KeyName   string
	KEK       string
	KeyOps    []string
	NotBefore int64
	Expires   int64
	Enabled   bool
	Tags      map[string]string
}

// requests returns one request per --key and vault, keys in the order given, each key's
// vaults in the order of vaults.
func (o packageOptions) requests(t time.Time, vaults []string) ([]packageRequest, error) {
	idents := splitList(o.Keys.Value())
	switch {
	case len(idents) == 0:
		return nil, clirun.Usagef("--key is required")
	case len(idents) > 1 && o.Name != "":
		return nil, clirun.Usagef("--name names one key: with several --key values each key is named after its ident")
	case o.AllVaults && (len(o.Vaults.Value()) > 0 || len(o.Regions.Value()) > 0):
		return nil, clirun.Usagef("--all-vaults takes every vault: do not give --vault or --region too")
	case len(vaults) == 0 && len(o.Regions.Value()) == 0 && !o.AllVaults:
		return nil, clirun.Usagef("--vault is required (or --region, or --all-vaults)")
	case (len(vaults) > 1 || len(o.Regions.Value()) > 0 || o.AllVaults) && o.KEK != "":
		return nil, clirun.Usagef("--kek names the KEK of one vault: with several vaults each takes the newest KEK of its own")
	}
	var reqs []packageRequest
	for i, ident := range idents {
		if slices.Contains(idents[:i], ident) {
			return nil, clirun.Usagef("--key %s given twice", ident)
		}
		r, err := o.request(ident, t)
		if err != nil {
			return nil, err
		}
		for _, v := range vaults {
			r.Vault = v
			reqs = append(reqs, r)
		}
	}
	return reqs, nil
}

// vaultURLs returns the canonical URLs of --vault, each once, in the order given.
func (o packageOptions) vaultURLs() ([]string, error) {
	var out []string
	for _, v := range splitList(o.Vaults.Value()) {
		u, err := payload.CanonicalVaultURL(v)
		if err != nil {
			return nil, clirun.Usagef("--vault: %v", err)
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// withRegions adds to vaults the vaults of p in the regions of --region, or every vault of p
// with --all-vaults.
func (o packageOptions) withRegions(p *payload.Policy, vaults []string) ([]string, error) {
	if o.AllVaults {
		for _, v := range p.Vaults {
			vaults = append(vaults, v.URL)
		}
		return vaults, nil
	}
	for _, r := range splitList(o.Regions.Value()) {
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
			return nil, clirun.Usagef("--region %s: no vault of the policy in force is in it (its regions are %s)", r, strings.Join(p.VaultRegions(), ", "))
		}
	}
	return vaults, nil
}

// request checks the options for the key ident; the caller sets the vault.
func (o packageOptions) request(ident string, t time.Time) (packageRequest, error) {
	r := packageRequest{Ident: ident, KeyName: o.Name, KEK: o.KEK, Enabled: !o.Disabled}
	if ident == "" {
		return r, clirun.Usagef("--key is required")
	}
	var err error
	if r.KeyName == "" {
		r.KeyName = ident
	}
	if !keyNameRE.MatchString(r.KeyName) {
		return r, clirun.Usagef("--name %q: Key Vault names are 1 to 127 letters, digits and dashes", r.KeyName)
	}
	r.KeyOps = splitList(o.KeyOps.Value())
	if r.NotBefore, err = parseWhen("not-before", o.NotBefore, t); err != nil {
		return r, err
	}
	if r.Expires, err = parseWhen("expires", o.Expires, t); err != nil {
		return r, err
	}
	if r.Expires != 0 && r.Expires <= max(r.NotBefore, t.Unix()) {
		return r, clirun.Usagef("--expires must be later than now and than --not-before")
	}
	tags, err := parsePairs("tag", o.Tags.Value())
	if err != nil {
		return r, err
	}
	if _, ok := tags[uploadTag]; ok {
		return r, clirun.Usagef("--tag %s: byok-online upload sets this tag itself (the key package's ID)", uploadTag)
	}
	if len(tags) > maxPackageTags {
		return r, clirun.Usagef("%d tags: at most %d, as Key Vault allows %d on a key and byok-online upload adds its own (%s)",
			len(tags), maxPackageTags, payload.MaxTags, uploadTag)
	}
	for k, v := range tags {
		if len(k) > 512 || len(v) > 256 {
			return r, clirun.Usagef("--tag %s: names are at most 512 characters, values 256", k)
		}
	}
	if len(tags) > 0 {
		r.Tags = tags
	}
	return r, nil
}

// uploadTag is the tag byok-online upload puts on every import (the key package's bundle
// ID), and maxPackageTags the tags a package may ask for besides: SPEC.md §7.4 lets a target
// carry Key Vault's 15, but the writer leaves one for upload's own.
const (
	uploadTag      = "byok-package"
	maxPackageTags = payload.MaxTags - 1
)

// keyNameRE is Key Vault's rule for key names.
var keyNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

// parseWhen parses an RFC 3339 time, a date or a duration from t; "" is 0.
func parseWhen(flag, s string, t time.Time) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return t.Add(d).Unix(), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if v, err := time.Parse(layout, s); err == nil {
			return v.Unix(), nil
		}
	}
	return 0, clirun.Usagef("--%s %q: want an RFC 3339 time, YYYY-MM-DD or a duration", flag, s)
}

// packer holds what packaging needs across keys: the open session, the replayed state, the
// token and the station key.
type packer struct {
	env    *clirun.Env
	sess   *session
	st     *store.Station
	pol    *chain.PolicyRecord
	state  *chain.State
	tok    *hsm.Token
	signer *hsm.SigningKey
	info   hsm.Info
	soPIN  func() (secret.Value, bool)
	keks   []store.KEK
	bind   []string // --regions: the residency a key's first package binds it to
}

// packagePlan is a request checked against the ledger, the policy and the medium.
type packagePlan struct {
	req      packageRequest
	key      *store.Key
	kt       payload.KeyType
	kek      *store.KEK
	existing *store.Package // an outstanding package of the same key for the same vault
}

// packageResult is the result of "package".
type packageResult struct {
	Package      jsonout.Ref `json:"package"`
	Seq          uint64      `json:"seq"`
	Path         string      `json:"path"`
	Byok         string      `json:"byok"`
	Ident        string      `json:"ident"`
	KeyName      string      `json:"key_name"`
	KeyType      string      `json:"key_type"`
	Vault        string      `json:"vault"`
	KID          string      `json:"kek_kid"`
	KEK          string      `json:"kek_fingerprint"`
	Offer        jsonout.Ref `json:"kek_offer"`
	KeyOps       []string    `json:"key_ops"`
	WrapPath     string      `json:"wrap_path"`
	Mechanisms   []string    `json:"mechanisms"`
	Trusted      bool        `json:"wrapped_with_trusted"`
	ZeroPadding  bool        `json:"trailing_zero_padding"`
	Threshold    int         `json:"threshold"`
	Approvers    string      `json:"approvers"` // whose approvals it needs, for people
	Existing     bool        `json:"existing"`
	ExpiresAt    string      `json:"expires_at"`
	PublicSHA256 string      `json:"public_key_sha256,omitempty"`
	KCV          string      `json:"kcv,omitempty"`
	Warnings     []string    `json:"warnings"`
}

// packageBatchResult is the result of "package" with several keys.
type packageBatchResult struct {
	Packages []*packageResult `json:"packages"`
}

func runPackage(ctx context.Context, o packageOptions, env *clirun.Env) error {
	vaults, err := o.vaultURLs()
	if err != nil {
		return err
	}
	// The flags are checked before anything is opened; --region's vaults need the policy.
	if _, err := o.requests(now(), vaults); err != nil {
		return err
	}
	p, err := openPacker(ctx, env, o.State, o.HSM, o.SOPINFile)
	if err != nil {
		return err
	}
	defer p.close()
	if vaults, err = o.withRegions(p.pol.Policy, vaults); err != nil {
		return err
	}
	if p.bind, err = residency(p.pol.Policy, o.Bind.Value()); err != nil {
		return err
	}
	reqs, err := o.requests(now(), vaults)
	if err != nil {
		return err
	}
	var plans []*packagePlan
	for _, req := range reqs {
		plan, err := p.plan(req)
		if err != nil {
			switch {
			case len(vaults) > 1:
				err = fmt.Errorf("key %s for %s: %w (no key was packaged)", req.Ident, req.Vault, err)
			case len(reqs) > 1:
				err = fmt.Errorf("key %s: %w (no key was packaged)", req.Ident, err)
			}
			return err
		}
		plans = append(plans, plan)
	}
	if err := p.bindAll(plans); err != nil {
		return err
	}
	res, err := p.packAll(ctx, plans)
	if err != nil {
		return err
	}
	if len(res) == 1 {
		return env.Result(res[0], func(w io.Writer) error { return writePackage(w, res[0]) })
	}
	return env.Result(packageBatchResult{Packages: res}, func(w io.Writer) error {
		for _, r := range res {
			if err := writePackage(w, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// openPacker opens the ledger and the medium for writing, finishes what an interrupted run
// left, replays the medium, and opens the token.
func openPacker(ctx context.Context, env *clirun.Env, sto stateOptions, ho hsmOptions, soPINFile string) (*packer, error) {
	sess, err := openSession(env, sto, writeMedium, false, true)
	if err != nil {
		return nil, err
	}
	p := &packer{env: env, sess: sess}
	fail := func(err error) (*packer, error) {
		p.close()
		return nil, err
	}
	st, _, err := sess.requireInit()
	if err != nil {
		return fail(err)
	}
	p.st = st
	// Packaging needs the state (policy, offers, outstanding packages), not every bundle:
	// resume from the ledger's checkpoint rather than verify the whole medium again.
	res, err := sess.replayState(ctx)
	if err != nil {
		return fail(err)
	}
	warnFindings(env, res)
	// The replay checked that the medium holds this station's chain: now finish the plain
	// .byok copies an interrupted package did not write.
	if err := ensureByokCopies(env, sess); err != nil {
		return fail(err)
	}
	p.state = res.State
	if p.pol = res.State.Current(); p.pol == nil {
		return fail(exitcode.Wrap(exitcode.Verify, errors.New("no policy is in force on the medium"), ""))
	}
	env.Log.Info("replayed the medium", "offline_head", res.State.Heads.Offline.Seq, "online_head", res.State.Heads.Online.Seq, "policy", p.pol.ID.Short())
	if p.tok, err = openStationToken(ctx, env, ho.withDefaults(st)); err != nil {
		return fail(err)
	}
	if p.signer, err = stationSigner(ctx, p.tok, st); err != nil {
		return fail(err)
	}
	if p.info, err = p.tok.Info(ctx); err != nil {
		return fail(hsmErr(err))
	}
	var so secret.Value
	var soRead bool
	p.soPIN = func() (secret.Value, bool) {
		if !soRead {
			soRead = true
			v, err := secret.Source{What: fmt.Sprintf("security officer PIN of token %q", p.tok.Label()), File: soPINFile, Env: envSOPIN, Prompt: true}.Read()
			if err == nil {
				so = v
			} else {
				env.Log.Warn("no security officer PIN", "err", err)
			}
		}
		return so, !so.Empty()
	}
	return p, nil
}

func (p *packer) close() {
	if p.tok != nil {
		_ = p.tok.Close()
	}
	p.sess.close()
}

// bindKey returns key bound to the regions of --regions, if given: a key bound already must
// be bound to the same, and one not bound yet must never have been packaged. The binding is
// recorded in the ledger by bindAll, once every plan is checked.
func (p *packer) bindKey(key *store.Key) (*store.Key, error) {
	switch {
	case len(p.bind) == 0:
		return key, nil
	case len(key.Regions) > 0 && !slices.Equal(key.Regions, p.bind):
		return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("key %q is bound to region(s) %s already; its residency does not change", key.Ident, strings.Join(key.Regions, ", ")), "")
	case len(key.Regions) > 0:
		return key, nil
	}
	pkgs, err := p.sess.store.Packages()
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(pkgs, func(pk store.Package) bool { return pk.Ident == key.Ident }) {
		return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("key %q was packaged before without regions: only its first package can bind it", key.Ident), "")
	}
	k := *key
	k.Regions = p.bind
	return &k, nil
}

// bindAll records in the ledger the regions --regions binds the keys of plans to.
func (p *packer) bindAll(plans []*packagePlan) error {
	for _, plan := range plans {
		stored, err := p.sess.store.Key(plan.key.Ident)
		if err != nil {
			return err
		}
		if len(stored.Regions) == 0 && len(plan.key.Regions) > 0 {
			if err := p.sess.store.PutKey(plan.key); err != nil {
				return err
			}
			p.env.Log.Info("bound the key to regions", "ident", plan.key.Ident, "regions", strings.Join(plan.key.Regions, ","))
		}
	}
	return nil
}

// plan checks a request against the ledger, the policy and the KEKs, without the HSM.
func (p *packer) plan(req packageRequest) (*packagePlan, error) {
	s := p.sess.store
	pol := p.pol.Policy
	key, err := s.Key(req.Ident)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("no key %q in the ledger", req.Ident), "generate it with byok-offline keygen, or adopt it with keygen --select-label")
	case err != nil:
		return nil, err
	case key.State != store.KeyReady:
		return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("key %q is still being generated", req.Ident), "rerun the interrupted keygen")
	}
	if key, err = p.bindKey(key); err != nil {
		return nil, err
	}
	plan := &packagePlan{req: req, key: key, kt: key.Type}
	vault, ok := pol.Vault(req.Vault)
	if !ok {
		return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("the policy does not allow vault %s", req.Vault), "the policy allows "+vaultList(pol))
	}
	if err := allowedType(pol, key.Type); err != nil {
		return nil, err
	}
	if len(key.Regions) > 0 && !slices.Contains(key.Regions, vault.Region) {
		return nil, exitcode.Wrap(exitcode.Refused, &chain.PolicyError{Rule: "residency",
			Detail: fmt.Sprintf("key %q may live only in region(s) %s, and %s is in %s", key.Ident, strings.Join(key.Regions, ", "), vault.URL, vault.Region)},
			"its residency was set when it was generated or first packaged (--regions) and does not change")
	}
	if key.Type.IsSymmetric() && vault.Kind != payload.VaultManagedHSM {
		return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("%s keys (oct-HSM) go only to a Managed HSM, and %s is %s", key.Type, vault.URL, vault.Kind), "")
	}
	if len(req.KeyOps) == 0 {
		plan.req.KeyOps = key.Type.DefaultKeyOps()
	} else {
		allowed := key.Type.DefaultKeyOps()
		for _, op := range req.KeyOps {
			if !slices.Contains(allowed, op) {
				return nil, clirun.Usagef("--key-ops %s: %s keys allow %s", op, key.Type.Kty(), strings.Join(allowed, ", "))
			}
		}
		ops := slices.Clone(req.KeyOps)
		slices.Sort(ops)
		plan.req.KeyOps = slices.Compact(ops)
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

func vaultList(p *payload.Policy) string {
	var s []string
	for _, v := range p.Vaults {
		s = append(s, v.URL)
	}
	return strings.Join(s, ", ")
}

// chooseKEK picks the accepted KEK the request names, or the newest accepted one for the
// vault.
func (p *packer) chooseKEK(req packageRequest) (*store.KEK, error) {
	if p.keks == nil {
		// KEK decisions change only in kek accept: read them once per run.
		keks, err := p.sess.store.KEKs()
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
					return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("KEK %s was refused: %s", k.Fingerprint, k.Reason), "")
				case k.Vault != req.Vault:
					return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("KEK %s belongs to %s, not %s: a KEK is bound to its vault", k.Fingerprint, k.Vault, req.Vault), "")
				case !slices.ContainsFunc(cands, func(c store.KEK) bool { return c.Offer == k.Offer }):
					return nil, exitcode.Wrap(exitcode.Verify, fmt.Errorf("KEK offer %s is not on the medium", k.Offer.Short()), "is this the right stick?")
				}
				return k, nil
			}
		}
		return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("no accepted KEK %q", req.KEK), "list them with byok-offline status; accept offers with byok-offline kek accept")
	}
	if len(cands) == 0 {
		return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("no accepted KEK for %s", req.Vault), "have the online station offer one (byok-online kek create), then run byok-offline kek accept")
	}
	// The newest one that has not expired; if all have, the newest, to say so.
	t := now()
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
func (p *packer) checkKEK(k *store.KEK, kt payload.KeyType) error {
	pol := p.pol.Policy
	t := now()
	switch {
	case !t.Before(time.Unix(k.Expires, 0)):
		return exitcode.Wrap(exitcode.Verify, &chain.ExpiredError{ID: k.Offer, What: "KEK", Expires: time.Unix(k.Expires, 0).UTC(), At: t.UTC()},
			newKEKHint(k))
	case !t.Before(time.Unix(k.OfferExpires, 0)):
		return exitcode.Wrap(exitcode.Verify, &chain.ExpiredError{ID: k.Offer, What: "KEK offer", Expires: time.Unix(k.OfferExpires, 0).UTC(), At: t.UTC()},
			newKEKHint(k))
	case k.Bits < pol.MinKEKBits:
		return exitcode.Wrap(exitcode.Refused, &chain.PolicyError{Rule: "kek-size", Detail: fmt.Sprintf("KEK of %d bits, the policy requires %d", k.Bits, pol.MinKEKBits)}, "")
	}
	if s := payload.RSAStrength(k.Bits); s < kt.Strength() && !pol.AllowWeakerKEK {
		return exitcode.Wrap(exitcode.Refused, &chain.PolicyError{Rule: "kek-strength",
			Detail: fmt.Sprintf("RSA-%d KEK (%d-bit strength) is weaker than the %s key (%d-bit)", k.Bits, s, kt, kt.Strength())},
			weakerKEKHint(kt))
	}
	return nil
}

// maxKEKBits is the largest KEK Key Vault makes (RSA-HSM 4096).
const maxKEKBits = 4096

// weakerKEKHint is the way out for a key type stronger than a KEK: a larger KEK where one
// is strong enough, else a policy that allows weaker KEKs.
func weakerKEKHint(kt payload.KeyType) string {
	amend := "byok-offline policy amend --allow-weaker-kek (the custodians approve it with byok-offline policy approve)"
	if payload.RSAStrength(maxKEKBits) < kt.Strength() {
		return fmt.Sprintf("no KEK is as strong as an %s key (Azure's largest, RSA-%d, has %d-bit strength): the policy must allow weaker KEKs: %s",
			kt, maxKEKBits, payload.RSAStrength(maxKEKBits), amend)
	}
	return fmt.Sprintf("have the online station offer a larger KEK (byok-online kek create --size %d), or allow weaker KEKs: %s", maxKEKBits, amend)
}

// newKEKHint is the way out for an expired KEK or offer: the online station offers a new one.
func newKEKHint(k *store.KEK) string {
	name := "NAME"
	if kid, err := byok.ParseKeyID(k.KID); err == nil {
		name = kid.Name
	}
	return fmt.Sprintf("the online station offers a new one (byok-online kek create --vault %s --name %s), then run byok-offline kek accept", k.Vault, name)
}

// existingPackage finds a package of the same key for the same vault that is still awaiting
// upload. One with the same key name and KEK is returned (rerunning package converges);
// anything else is refused.
func (p *packer) existingPackage(plan *packagePlan) (*store.Package, error) {
	pkgs, err := p.sess.store.PackagesOf(plan.req.Ident, plan.req.Vault)
	if err != nil {
		return nil, err
	}
	t := now().Unix()
	for i := len(pkgs) - 1; i >= 0; i-- {
		old := &pkgs[i]
		rec, outstanding := p.state.Packages[old.ID]
		switch {
		case !outstanding:
			return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("key %q was uploaded to %s already (package %s)", old.Ident, old.Vault, old.ID.Short()),
				"byok-offline sync shows what landed where")
		case rec.Rejected > 0 || old.Expires < t:
			continue // refused by Key Vault, or expired: a new package may replace it
		case old.KeyName == plan.req.KeyName && old.Offer == plan.kek.Offer:
			return old, nil
		}
		return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("key %q has a package for %s awaiting upload already (%s, as %q)", old.Ident, old.Vault, old.ID.Short(), old.KeyName),
			"upload or let that package expire first")
	}
	return nil, nil
}

// pack wraps the key and writes the key package (or returns the existing one).
func (p *packer) pack(ctx context.Context, plan *packagePlan) (*packageResult, error) {
	res, err := p.packAll(ctx, []*packagePlan{plan})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// wrappedKey is a key wrapped for its package, not yet written.
type wrappedKey struct {
	plan *packagePlan
	w    *hsm.Wrapped
	kp   *payload.KeyPackage
}

// packAll wraps the keys of plans and writes their key packages in one journal cycle, then
// their plain .byok copies; a plan with an existing package returns that one. It returns
// the results in the order of plans.
func (p *packer) packAll(ctx context.Context, plans []*packagePlan) ([]*packageResult, error) {
	var todo []*wrappedKey
	for _, plan := range plans {
		if plan.existing != nil {
			p.env.Log.Info("the key package exists already", "package", plan.existing.ID.Short(), "key_name", plan.existing.KeyName)
			continue
		}
		wk, err := p.wrap(ctx, plan)
		if err != nil {
			return nil, err
		}
		todo = append(todo, wk)
	}
	written := map[*packagePlan]*packageResult{}
	if len(todo) > 0 {
		items := make([]station.Item, len(todo))
		for i, wk := range todo {
			kp := wk.kp
			items[i] = station.Item{Payload: kp, Apply: func(tx *bolt.Tx, b *bundle.Bundle) error { return store.Record(tx, b, kp) }}
		}
		pos, err := p.sess.st.Position(p.pol.ID)
		if err != nil {
			return nil, err
		}
		lifetime := time.Duration(p.pol.Policy.BundleLifetimeSeconds) * time.Second
		bs, err := p.sess.st.AppendBatch(ctx, pos, items, p.signer, now(), lifetime)
		if err != nil {
			return nil, hsmErr(err)
		}
		crashpoint.Hit("package-appended")
		recs := make([]*store.Package, len(bs))
		data := make([][]byte, len(bs))
		for i, b := range bs {
			if recs[i], err = p.sess.store.Package(b.ID()); err != nil {
				return nil, fmt.Errorf("the ledger did not record package %s: %w", b.ID().Short(), err)
			}
			data[i] = todo[i].kp.BYOK
		}
		if err := writeByokCopies(p.env, p.sess, recs, data); err != nil {
			return nil, err
		}
		for i, b := range bs {
			wk, rec := todo[i], recs[i]
			p.env.Log.Info("key package written", "package", b.ID().Short(), "key_name", wk.kp.KeyName, "vault", wk.kp.Vault, "byok", rec.ByokCopy)
			if written[wk.plan], err = p.resultOf(wk.plan, rec, wk.w, false); err != nil {
				return nil, err
			}
		}
	}
	out := make([]*packageResult, len(plans))
	for i, plan := range plans {
		if plan.existing != nil {
			r, err := p.resultOf(plan, plan.existing, nil, true)
			if err != nil {
				return nil, err
			}
			out[i] = r
			continue
		}
		out[i] = written[plan]
	}
	return out, nil
}

// wrap finds the plan's key in the HSM, wraps it for the KEK and builds its key package.
func (p *packer) wrap(ctx context.Context, plan *packagePlan) (*wrappedKey, error) {
	key := plan.key
	id, err := hex.DecodeString(key.ID)
	if err != nil {
		return nil, fmt.Errorf("ledger key %q: CKA_ID: %w", key.Ident, err)
	}
	k, err := p.tok.FindTarget(ctx, hsm.KeyRef{Label: key.Label, ID: id})
	if err != nil {
		return nil, hsmErr(err)
	}
	if err := sameKey(k, key); err != nil {
		return nil, err
	}
	crashpoint.Hit("package-key-found")
	kek := plan.kek.Payload.PublicKey()
	var w *hsm.Wrapped
	if k.WrapWithTrusted {
		if so, ok := p.soPIN(); ok {
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
	p.env.Log.Info("wrapped key", "ident", key.Ident, "kek_fingerprint", plan.kek.Fingerprint, "path", string(w.Method.Path), "bytes", len(w.Ciphertext))
	f, err := byok.New(plan.kek.KID, w.Ciphertext, p.generator())
	if err != nil {
		return nil, fmt.Errorf("build the .byok file: %w", err)
	}
	kp := &payload.KeyPackage{
		Vault: plan.req.Vault, KeyName: plan.req.KeyName, Regions: plan.key.Regions,
		KEK: payload.KEKRef{Offer: plan.kek.Offer, KID: plan.kek.KID},
		Target: payload.Target{Kty: plan.kt.Kty(), KeySize: plan.kt.Size(), Curve: plan.kt.Curve(), KeyOps: plan.req.KeyOps,
			Enabled: plan.req.Enabled, NotBefore: plan.req.NotBefore, Expires: plan.req.Expires, Tags: plan.req.Tags},
		PublicKey: key.PublicKey, KCV: key.KCV,
		BYOK: f.Marshal(),
		Provenance: payload.Provenance{
			Tool:  software(),
			Token: tokenInfo(p.info),
			Key:   payload.KeyAttributes{Label: k.Label, ID: hex.EncodeToString(k.ID), Attributes: k.Attributes},
			Wrap: payload.WrapInfo{Path: string(w.Method.Path), Mechanisms: w.Method.Mechanisms,
				EphemeralKeyDestroyed: !w.EphemeralCreated || w.EphemeralDestroyed, TrailingZeroPadding: w.ZeroPaddingExpected},
		},
	}
	if err := kp.Validate(); err != nil {
		return nil, fmt.Errorf("the key package is not valid: %w", err)
	}
	if !kp.Provenance.Wrap.EphemeralKeyDestroyed {
		p.env.Log.Warn("the ephemeral AES key could not be destroyed; it dies with the session", "ident", key.Ident)
	}
	return &wrappedKey{plan: plan, w: w, kp: kp}, nil
}

// replayState is replay for commands that need only the state: it resumes from the ledger's
// checkpoint (station.ReplayState).
func (s *session) replayState(ctx context.Context) (*chain.Result, error) {
	res, err := s.st.ReplayState(ctx)
	return res, replayHint(err)
}

// sameKey checks that the HSM's key is the one the ledger recorded.
func sameKey(k *hsm.Key, rec *store.Key) error {
	if k.Public != nil {
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err == nil && bytes.Equal(der, rec.PublicKey) {
			return nil
		}
	} else if len(rec.KCV) > 0 && bytes.Equal(k.CheckValue, rec.KCV) {
		return nil
	}
	return exitcode.Wrap(exitcode.Verify, fmt.Errorf("the HSM's key %q is not the key recorded as %q", k.Label, rec.Ident), "is this the right token?")
}

// generator names this tool and the HSM in the .byok file.
func (p *packer) generator() string {
	t := p.info.Token
	return fmt.Sprintf("%s; %s %s firmware %s (%s %s)", software(), t.Manufacturer, t.Model, t.FirmwareVersion,
		strings.TrimSpace(p.info.Library.Description), p.info.Library.Version)
}

func (p *packer) resultOf(plan *packagePlan, rec *store.Package, w *hsm.Wrapped, existing bool) (*packageResult, error) {
	r := &packageResult{
		Package: jsonout.RefOf(rec.ID), Seq: rec.Seq, Path: media.Path(bundle.ChainOffline, rec.Seq, rec.ID),
		Byok: rec.ByokCopy, Ident: rec.Ident, KeyName: rec.KeyName, KeyType: string(rec.KeyType), Vault: rec.Vault,
		KID: rec.KID, KEK: plan.kek.Fingerprint, Offer: jsonout.RefOf(rec.Offer), KeyOps: plan.req.KeyOps,
		Threshold: p.pol.Policy.VaultQuorums(rec.Vault)[0].Threshold, Approvers: quorumsText(p.pol.Policy.VaultQuorums(rec.Vault)), Existing: existing, ExpiresAt: time.Unix(rec.Expires, 0).UTC().Format(time.RFC3339),
		Warnings: []string{},
	}
	if k := keyResultOf(plan.key); k.PublicKeySHA256 != "" || k.KCV != "" {
		r.PublicSHA256, r.KCV = k.PublicKeySHA256, k.KCV
	}
	if w != nil {
		r.WrapPath, r.Mechanisms, r.Trusted, r.ZeroPadding = string(w.Method.Path), w.Method.Mechanisms, w.Trusted, w.ZeroPaddingExpected
		if w.ZeroPaddingExpected {
			r.Warnings = append(r.Warnings, "this HSM (SoftHSM before 2.7) appends 1 to 7 zero bytes to the wrapped key; OpenSSL and Go accept it, whether Azure does is not verified")
		}
	}
	return r, nil
}

// writeByokCopy writes the plain .byok copy of a package to the medium and records where.
func writeByokCopy(env *clirun.Env, sess *session, rec *store.Package, data []byte) error {
	return writeByokCopies(env, sess, []*store.Package{rec}, [][]byte{data})
}

// writeByokCopies writes the plain .byok copies of packages (data[i] for recs[i]) that the
// medium lacks, syncing the byok/ folder once for all of them. A different file under a
// copy's name stays, with a warning.
func writeByokCopies(env *clirun.Env, sess *session, recs []*store.Package, data [][]byte) error {
	var files []media.ByokFile
	done := 0
	for i, rec := range recs {
		name := rec.ByokName()
		p := path.Join(media.ByokDir, name)
		got, err := sess.st.Media.ReadFile(p, byok.MaxFileSize)
		switch {
		case err == nil && bytes.Equal(got, data[i]):
			done++ // written before
		case errors.Is(err, media.ErrBadType):
			return byokRefused(err)
		case err == nil || !errors.Is(err, fs.ErrNotExist):
			env.Log.Warn("a different file has the name of the plain .byok copy; not replacing it", "path", p)
		default:
			files = append(files, media.ByokFile{Name: name, Data: data[i]})
		}
	}
	if _, err := sess.st.Media.WriteByoks(files); err != nil {
		return exitcode.Wrap(exitcode.Media, fmt.Errorf("write the plain .byok copies: %w", err), "check that the stick is writable and not full")
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
		return exitcode.Wrap(exitcode.Bundle, fmt.Errorf("cannot check the plain .byok copies on the medium: %w", err),
			"the stick's byok folder must be a plain folder of plain files: remove what is in the way (nothing outside the stick was written), then run the command again to write the copies")
	}
	return exitcode.Wrap(exitcode.Bundle, fmt.Errorf("check the plain .byok copies on the medium: %w", err), "")
}

// ensureByokCopies writes the plain .byok copies an interrupted package did not write.
func ensureByokCopies(env *clirun.Env, sess *session) error {
	pkgs, err := sess.store.Packages()
	if err != nil {
		return err
	}
	for i := range pkgs {
		rec := &pkgs[i]
		if ok, err := sess.st.Media.IsFile(rec.ByokCopy); err != nil {
			return byokRefused(err)
		} else if ok {
			continue
		}
		e := media.Entry{Chain: bundle.ChainOffline, Seq: rec.Seq, ID: rec.ID, Path: media.Path(bundle.ChainOffline, rec.Seq, rec.ID)}
		data, err := sess.st.Media.Read(e)
		if err != nil {
			return exitcode.Wrap(exitcode.Bundle, fmt.Errorf("read own package %s: %w", rec.ID.Short(), err), "is this the right stick?")
		}
		b, err := bundle.Parse(data)
		if err != nil {
			return exitcode.Wrap(exitcode.Bundle, err, "")
		}
		pl, err := b.Open()
		if err != nil {
			return station.VerifyErr(err)
		}
		var kp payload.KeyPackage
		if err := payload.Unmarshal(pl, &kp); err != nil {
			return exitcode.Wrap(exitcode.Bundle, err, "")
		}
		env.Log.Info("writing the plain .byok copy an interrupted run did not write", "package", rec.ID.Short())
		if err := writeByokCopy(env, sess, rec, kp.BYOK); err != nil {
			return err
		}
	}
	return nil
}

func writePackage(w io.Writer, r *packageResult) error {
	var b strings.Builder
	if r.Existing {
		fmt.Fprintf(&b, "key package %s exists already (written earlier)\n", r.Package.Fingerprint)
	} else {
		fmt.Fprintf(&b, "key package %s written\n", r.Package.Fingerprint)
	}
	fmt.Fprintf(&b, "  key        %s (%s) as %q in %s\n", r.Ident, r.KeyType, r.KeyName, r.Vault)
	if r.PublicSHA256 != "" {
		fmt.Fprintf(&b, "  public key SHA-256 %s\n", r.PublicSHA256)
	}
	if r.KCV != "" {
		fmt.Fprintf(&b, "  check value %s\n", r.KCV)
	}
	fmt.Fprintf(&b, "  KEK        %s (%s)\n", r.KEK, r.KID)
	fmt.Fprintf(&b, "  key ops    %s\n", strings.Join(r.KeyOps, ", "))
	if r.WrapPath != "" {
		fmt.Fprintf(&b, "  wrapped    %s: %s\n", r.WrapPath, strings.Join(r.Mechanisms, ", "))
	}
	fmt.Fprintf(&b, "  bundle     %s\n", r.Path)
	fmt.Fprintf(&b, "  .byok      %s\n", r.Byok)
	fmt.Fprintf(&b, "  expires    %s\n", r.ExpiresAt)
	for _, warn := range r.Warnings {
		fmt.Fprintf(&b, "WARNING: %s\n", warn)
	}
	fmt.Fprintf(&b, "Next: %s approve it: byok-offline approve --package %s\n", r.Approvers, r.Package.Fingerprint)
	_, err := io.WriteString(w, b.String())
	return err
}
