package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// keygenOptions are the options of "keygen".
type keygenOptions struct {
	State           stateOptions
	HSM             hsmOptions
	Type            string
	Ident           string
	WrapWithTrusted bool
	SOPINFile       string
	SelectLabel     string
	SelectID        string
	Regions         cli.StringSlice
}

func keygenCommand(env *clirun.Env) *cli.Command {
	var o keygenOptions
	fs := o.State.flags(false)
	fs = append(fs, o.HSM.flags()...)
	fs = append(fs,
		&cli.StringFlag{Name: "type", Usage: "key type: RSA-2048, RSA-3072, RSA-4096, EC-P256, EC-P384, EC-P521, AES-128, AES-192 or AES-256", Destination: &o.Type},
		&cli.StringFlag{Name: "ident", Usage: "the key's name here and its CKA_LABEL: lowercase letters, digits and dashes", Destination: &o.Ident},
		&cli.BoolFlag{Name: "wrap-with-trusted", Usage: "set CKA_WRAP_WITH_TRUSTED: the key leaves the HSM only with the security officer's PIN", Destination: &o.WrapWithTrusted},
		&cli.StringFlag{Name: "so-pin-file", Usage: "with --wrap-with-trusted: the SO PIN, to prove at once that the SO can release the key (else $" + envSOPIN + ")", Destination: &o.SOPINFile, TakesFile: true},
		&cli.StringFlag{Name: "select-label", Usage: "adopt the existing key with this CKA_LABEL instead of generating one", Destination: &o.SelectLabel},
		&cli.StringFlag{Name: "select-id", Usage: "adopt the existing key with this CKA_ID (hex)", Destination: &o.SelectID},
		&cli.StringSliceFlag{Name: "regions", Usage: "bind the key to these regions, comma-separated: package refuses a vault of any other region, and every key package carries them", Destination: &o.Regions},
	)
	return &cli.Command{
		Name:  "keygen",
		Usage: "generate a target key in the HSM, or adopt an existing one",
		Description: "Generates a token key that is private, sensitive and extractable only so that it can be\n" +
			"wrapped for the vault's KEK; or, with --select-label or --select-id, adopts a key the HSM\n" +
			"already holds. The key type must be one the policy allows. --regions binds the key to the\n" +
			"regions of the policy's vaults it may live in (its residency), for good.",
		Flags:  fs,
		Action: func(c *cli.Context) error { return runKeygen(c.Context, o, env) },
	}
}

var identRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// keyResult describes a target key for people.
type keyResult struct {
	Ident           string            `json:"ident"`
	Type            payload.KeyType   `json:"type"`
	Label           string            `json:"label"`
	ID              string            `json:"id"`
	State           string            `json:"state"`
	Regions         []string          `json:"regions,omitempty"`
	PublicKeySHA256 string            `json:"public_key_sha256,omitempty"`
	PublicKey       []byte            `json:"public_key,omitempty"`
	KCV             string            `json:"kcv,omitempty"`
	WrapWithTrusted bool              `json:"wrap_with_trusted"`
	Adopted         bool              `json:"adopted"`
	Resumed         bool              `json:"resumed"`
	TrialExport     bool              `json:"trial_export"`
	Attributes      map[string]string `json:"attributes"`
}

func keyResultOf(k *store.Key) keyResult {
	r := keyResult{Ident: k.Ident, Type: k.Type, Label: k.Label, ID: k.ID, State: k.State, Regions: k.Regions, PublicKey: k.PublicKey,
		WrapWithTrusted: k.WrapWithTrusted, Adopted: k.Adopted, Attributes: k.Attributes}
	if len(k.PublicKey) > 0 {
		sum := sha256.Sum256(k.PublicKey)
		r.PublicKeySHA256 = hex.EncodeToString(sum[:])
	}
	if len(k.KCV) > 0 {
		r.KCV = hex.EncodeToString(k.KCV)
	}
	return r
}

func runKeygen(ctx context.Context, o keygenOptions, env *clirun.Env) error {
	selecting := o.SelectLabel != "" || o.SelectID != ""
	switch {
	case selecting && (o.Type != "" || o.WrapWithTrusted):
		return clirun.Usagef("--select-label/--select-id adopt an existing key: do not give --type or --wrap-with-trusted")
	case !selecting && o.Type == "":
		return clirun.Usagef("--type is required (or --select-label/--select-id to adopt an existing key)")
	case !selecting && o.Ident == "":
		return clirun.Usagef("--ident is required")
	case o.SOPINFile != "" && !o.WrapWithTrusted:
		return clirun.Usagef("--so-pin-file goes with --wrap-with-trusted")
	}
	if o.Ident == "" {
		o.Ident = o.SelectLabel
	}
	if !identRE.MatchString(o.Ident) {
		return clirun.Usagef("--ident %q: want lowercase letters, digits and dashes, starting with a letter or digit, at most 63", o.Ident)
	}
	var selectID []byte
	if o.SelectID != "" {
		var err error
		if selectID, err = hex.DecodeString(strings.TrimPrefix(o.SelectID, "0x")); err != nil || len(selectID) == 0 {
			return clirun.Usagef("--select-id %q: want the CKA_ID in hex", o.SelectID)
		}
	}
	var kt payload.KeyType
	if !selecting {
		var err error
		if kt, err = payload.ParseKeyType(strings.ToUpper(o.Type)); err != nil {
			return clirun.Usagef("--type: %v", err)
		}
	}
	sess, err := o.State.openLedger(env)
	if err != nil {
		return err
	}
	defer sess.Close()
	plan, err := sess.PlanKeygen(ceremony.KeygenRequest{Ident: o.Ident, Type: kt, Adopt: selecting, Regions: o.Regions.Value()})
	if err != nil {
		return regionFlag("--regions", err)
	}
	if plan.WeakerKEK {
		// Said before the key is made: package refuses it until the policy changes.
		env.Log.Warn("package will refuse this key until the policy allows weaker KEKs", "key_type", string(kt), "hint", weakerKEKHint(kt))
	}
	tok, err := openStationToken(ctx, env, o.HSM.withDefaults(plan.Station))
	if err != nil {
		return err
	}
	defer tok.Close()

	keys := ceremony.Keys{Store: sess.Store, Token: tok, Log: env.Log, Now: now}
	var rec *store.Key
	trial := o.WrapWithTrusted && (o.SOPINFile != "" || envSet(envSOPIN))
	if selecting {
		rec, err = keys.Adopt(ctx, plan.Policy, o.Ident, hsm.KeyRef{Label: o.SelectLabel, ID: selectID}, plan.Regions)
	} else {
		var check func(*hsm.Key) error
		if trial {
			// The key is recorded as ready only once the SO has shown they can release it;
			// a failed trial leaves the keygen to be rerun.
			check = func(k *hsm.Key) error {
				so, err := readSecret(secret.Source{What: fmt.Sprintf("security officer PIN of token %q", tok.Label()), File: o.SOPINFile, Env: envSOPIN, Prompt: true},
					"give the SO PIN with --so-pin-file or $"+envSOPIN)
				if err != nil {
					return err
				}
				defer so.Wipe()
				return keys.TrialExport(ctx, k, so)
			}
		}
		rec, err = keys.Generate(ctx, o.Ident, kt, o.WrapWithTrusted, plan.Regions, plan.Resuming, check)
	}
	if err != nil {
		return err
	}
	res := keyResultOf(rec)
	res.Resumed = plan.Resuming
	res.TrialExport = trial && !selecting
	return env.Result(res, func(w io.Writer) error { return writeKey(w, res) })
}

// regionFlag names the flag (--region or --regions) in the error of a region it gave that no
// vault of the policy is in.
func regionFlag(flag string, err error) error {
	var ce *ceremony.Error
	if !errors.As(err, &ce) || ce.Kind != ceremony.ErrNoVaultInRegion {
		return err
	}
	if flag == "--region" {
		return clirun.Usagef("--region %s: no vault of the policy in force is in it (its regions are %s)", ce.Region, strings.Join(ce.Have, ", "))
	}
	return clirun.Usagef("%s %s: %v", flag, ce.Region, ce.Err)
}

func writeKey(w io.Writer, r keyResult) error {
	var b strings.Builder
	verb := "generated"
	switch {
	case r.Adopted:
		verb = "adopted"
	case r.Resumed:
		verb = "generated (finishing an interrupted keygen)"
	}
	fmt.Fprintf(&b, "%s %s key %q (CKA_LABEL %q, CKA_ID %s)\n", verb, r.Type, r.Ident, r.Label, r.ID)
	if r.PublicKeySHA256 != "" {
		fmt.Fprintf(&b, "public key SHA-256 %s\n", r.PublicKeySHA256)
	}
	if len(r.Regions) > 0 {
		fmt.Fprintf(&b, "bound to region(s) %s: packaged only for their vaults\n", strings.Join(r.Regions, ", "))
	}
	if r.KCV != "" {
		fmt.Fprintf(&b, "key check value    %s\n", r.KCV)
	}
	if r.WrapWithTrusted {
		b.WriteString("CKA_WRAP_WITH_TRUSTED: packaging this key needs the security officer's PIN\n")
		if r.TrialExport {
			b.WriteString("trial export with the SO PIN: ok\n")
		}
	}
	names := make([]string, 0, len(r.Attributes))
	for n := range r.Attributes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-24s %s\n", n, r.Attributes[n])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
