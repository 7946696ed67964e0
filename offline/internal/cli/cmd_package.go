package cli

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/jsonout"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
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

// requests returns one request per --key and vault, keys in the order given, each key's
// vaults in the order of vaults.
func (o packageOptions) requests(t time.Time, vaults []string) ([]ceremony.PackageRequest, error) {
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
	var reqs []ceremony.PackageRequest
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

// request checks the options for the key ident; the caller sets the vault.
func (o packageOptions) request(ident string, t time.Time) (ceremony.PackageRequest, error) {
	r := ceremony.PackageRequest{Ident: ident, KeyName: o.Name, KEK: o.KEK, Enabled: !o.Disabled}
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
	if vaults, err = ceremony.RegionVaults(p.Policy().Policy, vaults, o.Regions.Value(), o.AllVaults); err != nil {
		return regionFlag("--region", err)
	}
	if p.Bind, err = ceremony.Residency(p.Policy().Policy, o.Bind.Value()); err != nil {
		return regionFlag("--regions", err)
	}
	reqs, err := o.requests(now(), vaults)
	if err != nil {
		return err
	}
	done, err := p.Package(ctx, reqs)
	if err != nil {
		return err
	}
	res := make([]*packageResult, len(done))
	for i, d := range done {
		res[i] = packageResultOf(p.Policy().Policy, d)
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

// packing is a run of "package": the session, the packer and the station's token.
type packing struct {
	*ceremony.Packer
	sess *ceremony.Session
	tok  *hsm.Token
	st   *store.Station
}

// openPacker opens the ledger and the medium for writing, finishes what an interrupted run
// left, replays the medium, and opens the token with the station's PIN.
func openPacker(ctx context.Context, env *clirun.Env, sto stateOptions, ho hsmOptions, soPINFile string) (*packing, error) {
	sess, err := sto.open(env, ceremony.Options{Access: ceremony.WriteMedium})
	if err != nil {
		return nil, err
	}
	p := &packing{sess: sess}
	fail := func(err error) (*packing, error) {
		p.close()
		return nil, err
	}
	if p.Packer, err = ceremony.NewPacker(ctx, sess, now, software()); err != nil {
		return fail(err)
	}
	p.st = p.Self()
	if p.tok, err = openStationToken(ctx, env, ho.withDefaults(p.st)); err != nil {
		return fail(err)
	}
	if err := p.UseToken(ctx, p.tok); err != nil {
		return fail(err)
	}
	var so secret.Value
	var soRead bool
	p.SOPIN = func() (secret.Value, bool) {
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

func (p *packing) close() {
	if p.tok != nil {
		_ = p.tok.Close()
	}
	p.sess.Close()
}

// packageResultOf is what "package" prints of a key package.
func packageResultOf(pol *payload.Policy, d *ceremony.Packaged) *packageResult {
	rec, plan := d.Record, d.Plan
	r := &packageResult{
		Package: jsonout.RefOf(rec.ID), Seq: rec.Seq, Path: media.Path(bundle.ChainOffline, rec.Seq, rec.ID),
		Byok: rec.ByokCopy, Ident: rec.Ident, KeyName: rec.KeyName, KeyType: string(rec.KeyType), Vault: rec.Vault,
		KID: rec.KID, KEK: plan.KEK().Fingerprint, Offer: jsonout.RefOf(rec.Offer), KeyOps: plan.Req.KeyOps,
		Threshold: pol.VaultQuorums(rec.Vault)[0].Threshold, Approvers: quorumsText(pol.VaultQuorums(rec.Vault)), Existing: d.Existing, ExpiresAt: time.Unix(rec.Expires, 0).UTC().Format(time.RFC3339),
		Warnings: []string{},
	}
	if k := keyResultOf(plan.Key()); k.PublicKeySHA256 != "" || k.KCV != "" {
		r.PublicSHA256, r.KCV = k.PublicKeySHA256, k.KCV
	}
	if w := d.Wrapped; w != nil {
		r.WrapPath, r.Mechanisms, r.Trusted, r.ZeroPadding = string(w.Method.Path), w.Method.Mechanisms, w.Trusted, w.ZeroPaddingExpected
		if w.ZeroPaddingExpected {
			r.Warnings = append(r.Warnings, "this HSM (SoftHSM before 2.7) appends 1 to 7 zero bytes to the wrapped key; OpenSSL and Go accept it, whether Azure does is not verified")
		}
	}
	return r
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
