package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// Environment variables.
const (
	envStateDir  = "BYOK_OFFLINE_STATE_DIR" // read by clirun.StateDirFlag
	envMedia     = "BYOK_MEDIA"
	envModule    = "BYOK_OFFLINE_HSM_MODULE"
	envToken     = "BYOK_OFFLINE_TOKEN_LABEL"
	envPIN       = "BYOK_OFFLINE_PIN"
	envSOPIN     = "BYOK_OFFLINE_SO_PIN"
	envCustodian = "BYOK_OFFLINE_CUSTODIAN_PIN_" // + the custodian's name, see custodianPINEnv
)

// stateOptions locate the ledger and the medium.
type stateOptions struct {
	StateDir string
	Media    string
	Wait     time.Duration // for another process's lock on the medium
}

func stateDirFlag(dst *string) cli.Flag {
	return clirun.StateDirFlag(Name, "offline", "folder of the station's ledger", dst)
}

func mediaFlag(dst *string) cli.Flag {
	return &cli.StringFlag{Name: "media", Usage: "the airgap-byok folder on the transfer medium", EnvVars: []string{envMedia}, Destination: dst, TakesFile: true}
}

func (o *stateOptions) flags(media bool) []cli.Flag {
	fs := []cli.Flag{stateDirFlag(&o.StateDir)}
	if media {
		fs = append(fs, mediaFlag(&o.Media), clirun.WaitFlag(&o.Wait))
	}
	return fs
}

// hsmOptions select the station's token and its PIN.
type hsmOptions struct {
	Module     string
	TokenLabel string
	PINFile    string
}

func (o *hsmOptions) flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "hsm-module", Usage: "path of the PKCS#11 module (default: the one init recorded)", EnvVars: []string{envModule}, Destination: &o.Module, TakesFile: true},
		&cli.StringFlag{Name: "token-label", Usage: "label of the station's token (default: the one init recorded)", EnvVars: []string{envToken}, Destination: &o.TokenLabel},
		&cli.StringFlag{Name: "pin-file", Usage: "file whose first line is the token PIN (else $" + envPIN + ", else a prompt, which asks again after a wrong PIN: three tries)", Destination: &o.PINFile, TakesFile: true},
	}
}

// withDefaults fills the module and token label from the ledger's station record.
func (o hsmOptions) withDefaults(st *store.Station) hsmOptions {
	if st != nil {
		if o.Module == "" {
			o.Module = st.Module
		}
		if o.TokenLabel == "" {
			o.TokenLabel = st.TokenLabel
		}
	}
	return o
}

// validate checks that the module and token are named and that the module is a file, before
// any PIN is asked for.
func (o hsmOptions) validate() error {
	switch {
	case o.Module == "":
		return clirun.Usagef("--hsm-module is required")
	case o.TokenLabel == "":
		return clirun.Usagef("--token-label is required")
	}
	if fi, err := os.Stat(o.Module); err != nil || !fi.Mode().IsRegular() {
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("no PKCS#11 module at %s", o.Module),
			"check --hsm-module (or $"+envModule+"): the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so for SoftHSM2")
	}
	return nil
}

// tokenWant is a token a command was given: its label, and the flag (as typed) that gave it.
type tokenWant struct{ label, flag string }

// checkTokens checks, before any PIN is asked or anything generated, that module holds a
// token for each of want; a label it lacks is a usage error naming the flag and listing the
// tokens present. Call it while no token is open.
func checkTokens(ctx context.Context, module string, want []tokenWant) error {
	labels, err := hsm.TokenLabels(ctx, module)
	if err != nil {
		return hsmErr(err)
	}
	for _, w := range want {
		if slices.Contains(labels, w.label) {
			continue
		}
		present := "there are none"
		if len(labels) > 0 {
			present = "the tokens present are " + strings.Join(labels, ", ")
		}
		return exitcode.Wrap(exitcode.Usage, fmt.Errorf("%s: no token labelled %q in %s", w.flag, w.label, module),
			present+": correct "+strings.Fields(w.flag)[0]+" (nothing was generated and no PIN asked)")
	}
	return nil
}

// readSecret reads a PIN from its source; a missing one is a usage error naming the
// sources.
func readSecret(src secret.Source, hint string) (secret.Value, error) {
	v, err := src.Read()
	if errors.Is(err, secret.ErrNoSecret) {
		return v, exitcode.Wrap(exitcode.Usage, err, hint)
	}
	if err != nil {
		return v, exitcode.Wrap(exitcode.Usage, err, "")
	}
	return v, nil
}

// pinTries is how many times a PIN typed at the prompt is asked for before a wrong one ends
// the command.
const pinTries = 3

// openToken opens a token, reading its PIN from src. A wrong PIN typed at the terminal is
// asked for again, up to pinTries times in all; one from a file or the environment fails at
// once.
func openToken(ctx context.Context, env *clirun.Env, module, label, serial string, src secret.Source, hint string) (*hsm.Token, error) {
	if src.Terminal == nil {
		src.Terminal = env.Terminal
	}
	what := src.What
	for try := 1; ; try++ {
		pin, err := readSecret(src, hint)
		if err != nil {
			return nil, err
		}
		tok, err := hsm.Open(ctx, hsm.Config{Module: module, TokenLabel: label, TokenSerial: serial, PIN: pin, Logger: env.Log})
		pin.Wipe()
		if err == nil {
			return tok, nil
		}
		if !errors.Is(err, hsm.ErrPINIncorrect) || !src.Interactive() || try == pinTries {
			return nil, hsmErr(err)
		}
		// Said where the PIN is typed: the next prompt.
		src.What = fmt.Sprintf("%s (the last one was not correct: try %d of %d)", what, try+1, pinTries)
	}
}

// openStationToken opens the station's token with the station PIN.
func openStationToken(ctx context.Context, env *clirun.Env, o hsmOptions) (*hsm.Token, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	src := secret.Source{What: fmt.Sprintf("PIN of token %q", o.TokenLabel), File: o.PINFile, Env: envPIN, Prompt: true}
	return openToken(ctx, env, o.Module, o.TokenLabel, "", src, "give the token PIN with --pin-file or $"+envPIN+", or run on a terminal")
}

// hsmErr adds the operator's next step to HSM errors that have an obvious one.
func hsmErr(err error) error {
	if h := hsmHint(err); h != "" {
		return exitcode.Wrap(exitcode.HSM, err, h)
	}
	return err
}

// custodianPINEnv returns the environment variable holding a custodian's PIN.
func custodianPINEnv(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if c == '-' || c == '.' {
			b[i] = '_'
		}
	}
	return envCustodian + string(b)
}

// parsePairs parses NAME=VALUE flag values into a map, refusing duplicates.
func parsePairs(flag string, vals []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" || val == "" {
			return nil, clirun.Usagef("--%s %q: want NAME=VALUE", flag, v)
		}
		if _, dup := out[k]; dup {
			return nil, clirun.Usagef("--%s: %s given twice", flag, k)
		}
		out[k] = val
	}
	return out, nil
}

// custodianOpener opens custodians' tokens for the ceremony package, each with the
// custodian's PIN from files (--custodian-pin-file), the environment or a prompt.
func custodianOpener(env *clirun.Env, module string, files map[string]string) ceremony.OpenCustodianToken {
	return func(ctx context.Context, name, token string) (*hsm.Token, error) {
		return openToken(ctx, env, module, token, "", custodianSource(name, token, files),
			fmt.Sprintf("give %s's PIN with --custodian-pin-file %s=PATH or $%s, or run on a terminal", name, name, custodianPINEnv(name)))
	}
}

// custodianSource returns where custodian name's PIN comes from.
func custodianSource(name, token string, files map[string]string) secret.Source {
	return secret.Source{
		What:   fmt.Sprintf("PIN of custodian %s (token %q)", name, token),
		File:   files[name],
		Env:    custodianPINEnv(name),
		Prompt: true,
	}
}

// open opens the command's session on the ledger and the medium (ceremony.Open), as so
// says; --media is required.
func (o stateOptions) open(env *clirun.Env, so ceremony.Options) (*ceremony.Session, error) {
	if o.Media == "" {
		return nil, clirun.Usagef("--media is required (the airgap-byok folder on the transfer medium)")
	}
	so.StateDir, so.Media, so.Wait, so.Context, so.Log, so.Now = o.StateDir, o.Media, o.Wait, env.Context(), env.Log, now
	return ceremony.Open(so)
}

// openLedger opens the command's session on the ledger alone.
func (o stateOptions) openLedger(env *clirun.Env) (*ceremony.Session, error) {
	return ceremony.Open(ceremony.Options{StateDir: o.StateDir, Wait: o.Wait, Context: env.Context(), Log: env.Log, Now: now})
}

// openInForce opens the command's session for writing to the medium, with the policy in
// force (ceremony.OpenInForce); --media is required.
func (o stateOptions) openInForce(ctx context.Context, env *clirun.Env) (*ceremony.Session, error) {
	if o.Media == "" {
		return nil, clirun.Usagef("--media is required (the airgap-byok folder on the transfer medium)")
	}
	return ceremony.OpenInForce(ctx, ceremony.Options{StateDir: o.StateDir, Media: o.Media, Wait: o.Wait, Context: env.Context(), Log: env.Log, Now: now})
}

// openForMedia opens the station for the media commands (mediacmd.Opener).
func openForMedia(env *clirun.Env, stateDir, mediaDir string, wait time.Duration) (*station.Station, station.Apply, func() error, error) {
	o := stateOptions{StateDir: stateDir, Media: mediaDir, Wait: wait}
	var sess *ceremony.Session
	var err error
	if mediaDir != "" {
		sess, err = o.open(env, ceremony.Options{Access: ceremony.ReadMedium})
	} else {
		sess, err = o.openLedger(env)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return sess.Station, store.RecordOwn, sess.Close, nil
}

// openStationSigner opens the station's token and finds its enrolled signing key; the caller
// closes the token.
func openStationSigner(ctx context.Context, env *clirun.Env, o hsmOptions, st *store.Station) (*hsm.Token, *hsm.SigningKey, error) {
	tok, err := openStationToken(ctx, env, o.withDefaults(st))
	if err != nil {
		return nil, nil, err
	}
	signer, err := ceremony.StationSigner(ctx, tok, st)
	if err != nil {
		tok.Close()
		return nil, nil, err
	}
	return tok, signer, nil
}

// resolveID finds the one ID among candidates that s names (ceremony.ResolveID).
func resolveID(what, s string, candidates []bundle.ID, describe func(bundle.ID) string) (bundle.ID, error) {
	return ceremony.ResolveID(what, s, candidates, describe)
}

// splitList splits comma-separated flag values and drops empty items.
func splitList(vals []string) []string {
	return ceremony.SplitList(vals)
}

// envSet reports whether the environment variable name is set and not empty.
func envSet(name string) bool { return os.Getenv(name) != "" }
