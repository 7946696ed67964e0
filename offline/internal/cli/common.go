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

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
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
	switch {
	case errors.Is(err, hsm.ErrPINIncorrect):
		return exitcode.Wrap(exitcode.HSM, err, "check the PIN: the token locks the PIN after a few wrong tries")
	case errors.Is(err, hsm.ErrPINLocked):
		return exitcode.Wrap(exitcode.HSM, err, "the security officer must unlock the PIN")
	case errors.Is(err, hsm.ErrTokenNotFound):
		return exitcode.Wrap(exitcode.HSM, err, "check --token-label and that the HSM is attached (byok-offline hsm check)")
	case errors.Is(err, hsm.ErrNotTrusted):
		return exitcode.Wrap(exitcode.HSM, err, "the key is marked CKA_WRAP_WITH_TRUSTED: the security officer must be present, give the SO PIN with --so-pin-file or $"+envSOPIN)
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

// custodianSource returns where custodian name's PIN comes from.
func custodianSource(name, token string, files map[string]string) secret.Source {
	return secret.Source{
		What:   fmt.Sprintf("PIN of custodian %s (token %q)", name, token),
		File:   files[name],
		Env:    custodianPINEnv(name),
		Prompt: true,
	}
}

// session is an open ledger (and medium).
type session struct {
	st      *station.Station
	store   *store.Store
	release func() error
}

func (s *session) close() {
	if s != nil && s.release != nil {
		_ = s.release()
	}
}

// access is how a command uses the medium.
type access int

const (
	readMedium  access = iota // reads it (and may write its ledger)
	ledgerOnly                // writes only its ledger, but finishes an interrupted write first
	writeMedium               // writes bundles to it
)

// openSession opens the ledger and, if o.Media is set, the medium; ledgerOnly and writeMedium
// take the medium's write lock and finish an interrupted append (ledgerOnly opens a read-only
// medium for reading when nothing is pending); create allows a new ledger.
func openSession(env *clirun.Env, o stateOptions, acc access, create, needMedia bool) (*session, error) {
	if needMedia && o.Media == "" {
		return nil, clirun.Usagef("--media is required (the airgap-byok folder on the transfer medium)")
	}
	media := o.Media
	if !needMedia {
		media = ""
	}
	st, release, err := station.Open(station.OpenOptions{
		Chain: bundle.ChainOffline, StateDir: o.StateDir, MediaDir: media, Schema: store.Schema(),
		Write: acc != readMedium, LedgerOnly: acc == ledgerOnly, Create: create, InitMedium: create, Log: env.Log,
		Wait: o.Wait, Context: env.Context(),
	}, store.RecordOwn)
	if err != nil {
		return nil, err
	}
	return &session{st: st, store: store.New(st.DB), release: release}, nil
}

// openForMedia opens the station for the media commands (mediacmd.Opener).
func openForMedia(env *clirun.Env, stateDir, mediaDir string, wait time.Duration) (*station.Station, station.Apply, func() error, error) {
	sess, err := openSession(env, stateOptions{StateDir: stateDir, Media: mediaDir, Wait: wait}, readMedium, false, mediaDir != "")
	if err != nil {
		return nil, nil, nil, err
	}
	return sess.st, store.RecordOwn, sess.release, nil
}

// replay verifies the medium against the ledger (station.Replay) and adds the operator's
// next step to the failures that have an obvious one.
func (s *session) replay(ctx context.Context, onBundle func(*chain.Verified) error) (*chain.Result, error) {
	res, err := s.st.Replay(ctx, onBundle)
	return res, replayHint(err)
}

// replayHint adds the operator's next step to a replay failure that has an obvious one.
func replayHint(err error) error {
	if err != nil && clirun.Hint(err, rules...) == "" {
		switch {
		case errors.Is(err, chain.ErrRollback):
			err = exitcode.Wrap(exitCode(err), err, "is this the right stick? it must hold everything both stations wrote")
		case errors.Is(err, chain.ErrUntrusted):
			err = exitcode.Wrap(exitCode(err), err, "this medium belongs to another ceremony")
		case errors.Is(err, chain.ErrFork), errors.Is(err, station.ErrForeignBundles):
			err = exitcode.Wrap(exitCode(err), err, "another station wrote to this medium's chains: do not use it, investigate")
		}
	}
	return err
}

// requireInit returns the station and the policy in force, or a usage error if init has not
// finished.
func (s *session) requireInit() (*store.Station, *store.Policy, error) {
	if _, err := s.store.InitDone(); errors.Is(err, store.ErrNotFound) {
		return nil, nil, exitcode.Wrap(exitcode.Usage, errors.New("this station is not initialised"), "run byok-offline init first")
	} else if err != nil {
		return nil, nil, err
	}
	st, err := s.store.Station()
	if err != nil {
		return nil, nil, err
	}
	pol, err := s.store.CurrentPolicy()
	if err != nil {
		return nil, nil, err
	}
	return st, pol, nil
}

// openInForce opens the session for writing to the medium, requires an initialised station,
// replays the medium (warning about findings that did not stop it) and returns the policy in
// force with the replay's result.
func openInForce(ctx context.Context, env *clirun.Env, o stateOptions) (*session, *store.Station, *chain.Result, *chain.PolicyRecord, error) {
	sess, err := openSession(env, o, writeMedium, false, true)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	st, _, err := sess.requireInit()
	if err == nil {
		var res *chain.Result
		if res, err = sess.replay(ctx, nil); err == nil {
			warnFindings(env, res)
			if cur := res.State.Current(); cur != nil {
				return sess, st, res, cur, nil
			}
			err = exitcode.Wrap(exitcode.Verify, errors.New("no policy is in force on the medium"), "")
		}
	}
	sess.close()
	return nil, nil, nil, nil, err
}

// openStationSigner opens the station's token and finds its enrolled signing key; the caller
// closes the token.
func openStationSigner(ctx context.Context, env *clirun.Env, o hsmOptions, st *store.Station) (*hsm.Token, *hsm.SigningKey, error) {
	tok, err := openStationToken(ctx, env, o.withDefaults(st))
	if err != nil {
		return nil, nil, err
	}
	signer, err := stationSigner(ctx, tok, st)
	if err != nil {
		tok.Close()
		return nil, nil, err
	}
	return tok, signer, nil
}

// stationSigner finds the station key in the token and checks it is the enrolled one.
func stationSigner(ctx context.Context, tok *hsm.Token, st *store.Station) (*hsm.SigningKey, error) {
	k, err := tok.FindSigner(ctx, st.KeyLabel)
	if err != nil {
		return nil, hsmErr(err)
	}
	if !samePublic(k.Public(), st.Key.SPKI) {
		return nil, exitcode.Wrap(exitcode.Verify, fmt.Errorf("the key labelled %q in token %q is not the station key this ledger enrolled (%s)", st.KeyLabel, tok.Label(), st.Fingerprint()),
			"is this the right token? check --token-label")
	}
	return k, nil
}

// resolveID finds the one ID among candidates that s names: 64 hex digits, or a short
// fingerprint as people read it. One that names none is a missing bundle (exit 4), and the
// hint lists the candidates, each as describe says (nil: its fingerprint).
func resolveID(what, s string, candidates []bundle.ID, describe func(bundle.ID) string) (bundle.ID, error) {
	var found []bundle.ID
	if id, err := bundle.ParseID(strings.ToLower(s)); err == nil {
		if slices.Contains(candidates, id) {
			return id, nil
		}
	} else {
		short, err := bundle.ParseShort(s)
		if err != nil {
			return bundle.ID{}, clirun.Usagef("%s %q: want a fingerprint (XXXX-XXXX-XXXX-XXXX) or a 64-digit ID", what, s)
		}
		s = short
		for _, c := range candidates {
			if c.Short() == short {
				found = append(found, c)
			}
		}
	}
	switch len(found) {
	case 0:
		var have []string
		for _, c := range candidates {
			if describe != nil {
				have = append(have, describe(c))
			} else {
				have = append(have, c.Short())
			}
		}
		hint := "there is none"
		if len(have) > 0 {
			hint = "there are: " + strings.Join(have, ", ")
		}
		return bundle.ID{}, exitcode.Wrap(exitcode.Bundle, fmt.Errorf("no %s %s", what, s), hint)
	case 1:
		return found[0], nil
	}
	return bundle.ID{}, clirun.Usagef("fingerprint %s names %d %ss: give the full ID", s, len(found), what)
}

// splitList splits comma-separated flag values and drops empty items.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// envSet reports whether the environment variable name is set and not empty.
func envSet(name string) bool { return os.Getenv(name) != "" }

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
