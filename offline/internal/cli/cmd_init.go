package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
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
	// enrollment to read (and nothing is created here).
	if err := ceremony.CheckInitMedium(o.State.Media); err != nil {
		return err
	}
	sess, err := o.State.open(env, ceremony.Options{Access: ceremony.WriteMedium, Create: true})
	if err != nil {
		return err
	}
	defer sess.Close()
	req := ceremony.InitRequest{
		Name: o.Name, Module: o.HSM.Module, StationKeyLabel: o.StationKeyLabel, ReuseStationKey: o.ReuseStationKey,
		Custodians: p.custodians, CustodianKeyLabel: o.CustodianKeyLabel, ReuseCustodianKeys: o.ReuseCustodianKeys,
		Threshold: o.Threshold, Vaults: p.vaults, Regions: p.regions, GlobalApproval: o.GlobalApproval,
		MinKEKBits: o.MinKEKBits, KeyTypes: p.keyTypes, AllowWeakerKEK: o.AllowWeakerKEK,
		BundleLifetime: o.BundleLifetime, MaxClockSkew: o.MaxClockSkew, Software: software(),
	}
	hooks := ceremony.InitHooks{
		ConfirmOnline:      confirmFingerprint(env, o.OnlineFingerprint),
		OpenStationToken:   func(ctx context.Context) (*hsm.Token, error) { return openStationToken(ctx, env, o.HSM) },
		OpenCustodianToken: custodianOpener(env, o.HSM.Module, p.pinFiles),
	}
	r, err := ceremony.Init(ctx, sess, req, hooks)
	if err != nil {
		return err
	}
	st := r.Station
	res := initResult{Station: stationInfo(st), Online: onlineInfo(r.Online), Vaults: p.vaults}
	for _, c := range r.Custodians {
		res.Custodians = append(res.Custodians, custodianInfo(c))
	}
	for _, b := range r.Written {
		res.Bundles = append(res.Bundles, infoOf(b))
	}
	res.Approvals = ceremony.ApproverNames(r.Policy.Policy, r.Policy.Approvals)
	res.Policy = summarize(r.Done.Policy, r.Policy.Policy, true)
	return env.Result(res, func(w io.Writer) error { return writeInit(w, res) })
}

// custodianInfo describes an enrolled custodian's key for people.
func custodianInfo(c *store.Custodian) keyInfo {
	return keyInfo{Name: c.Name, Token: c.TokenLabel, Label: c.KeyLabel, Fingerprint: c.Fingerprint(), KeyID: c.Key.ID().String(), Adopted: c.Adopted}
}

// stationInfo is the keyInfo of this station's record.
func stationInfo(st *store.Station) keyInfo {
	return keyInfo{Name: st.Name, Token: st.TokenLabel, Label: st.KeyLabel, Fingerprint: st.Fingerprint(), KeyID: st.Key.ID().String(), Adopted: st.Adopted}
}

// onlineInfo is the keyInfo of the online station's record.
func onlineInfo(on *store.Online) keyInfo {
	return keyInfo{Name: on.Name, Fingerprint: on.Key.ID().Short(), KeyID: on.Key.ID().String()}
}

// confirmFingerprint has the operator confirm the online station's key fingerprint: the one
// given with --online-fingerprint (flagFP), else one typed at the prompt on stderr.
func confirmFingerprint(env *clirun.Env, flagFP string) ceremony.ConfirmFingerprint {
	return func(fp string) (string, string, error) {
		if flagFP != "" {
			return flagFP, "flag", nil
		}
		fmt.Fprintf(env.Stderr, "The online station's key fingerprint on this medium is %s.\nType the fingerprint the online operator reads aloud: ", fp)
		line, err := bufio.NewReader(env.Stdin).ReadString('\n')
		if strings.TrimSpace(line) == "" {
			return "", "", exitcode.Wrap(exitcode.Usage, fmt.Errorf("no fingerprint given for the online station (%v)", errOrEOF(err)),
				"pass --online-fingerprint with the fingerprint byok-online init showed, or type it when asked")
		}
		return line, "terminal", nil
	}
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
