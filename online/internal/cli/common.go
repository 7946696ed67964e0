package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/online/internal/keyfile"
	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/jsonout"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
)

// defaultLifetime is the lifetime of the enrollment, which no policy bounds yet.
const defaultLifetime = 30 * 24 * time.Hour

// stationFlags locate the state folder and the medium.
type stationFlags struct {
	StateDir string
	Media    string
	Wait     time.Duration // for another process's lock on the medium
}

func (s *stationFlags) flags(media bool) []cli.Flag {
	fl := []cli.Flag{stateDirFlag(&s.StateDir)}
	if media {
		fl = append(fl, &cli.StringFlag{Name: "media", Usage: "the transfer medium folder on the stick", EnvVars: []string{"BYOK_MEDIA"}, Destination: &s.Media}, clirun.WaitFlag(&s.Wait))
	}
	return fl
}

func (s stationFlags) check(media bool) error {
	if s.StateDir == "" {
		return clirun.Usagef("--state-dir is required (or BYOK_ONLINE_STATE_DIR)")
	}
	if media && s.Media == "" {
		return clirun.Usagef("--media is required (or BYOK_MEDIA)")
	}
	return nil
}

func (s stationFlags) keyPath() string { return filepath.Join(s.StateDir, keyfile.Name) }

// azureFlags say how to reach Key Vault.
type azureFlags struct {
	CAFile         string
	TokenFile      string
	RequestTimeout time.Duration
}

func (a *azureFlags) flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "ca-file", Usage: "PEM CA certificates to trust besides the system roots (a local Key Vault)", EnvVars: []string{"BYOK_ONLINE_CA_FILE"}, Destination: &a.CAFile},
		&cli.StringFlag{Name: "token-file", Usage: "file holding a static bearer token (instead of azidentity's default credential)", EnvVars: []string{"BYOK_ONLINE_TOKEN_FILE"}, Destination: &a.TokenFile},
		&cli.DurationFlag{Name: "request-timeout", Usage: "time allowed for each request to Key Vault", Value: vault.DefaultRequestTimeout, Destination: &a.RequestTimeout},
	}
}

func (a azureFlags) options(conns int) vault.Options {
	return vault.Options{CAFile: a.CAFile, TokenFile: a.TokenFile, RequestTimeout: a.RequestTimeout, MaxConns: conns}
}

// session is an open ledger, and the medium when the flags name one.
type session struct {
	st      *station.Station
	store   *store.Store
	release func() error
}

// openMode says how a command uses its session.
type openMode struct {
	write  bool // writes to the medium: an interrupted append is finished first
	create bool // may create the ledger and the medium (init)
}

// openSession opens the ledger (and the medium, if the flags name one) with the online
// chain's journal.
func openSession(env *clirun.Env, s stationFlags, m openMode) (*session, error) {
	st, release, err := station.Open(station.OpenOptions{
		Chain: bundle.ChainOnline, StateDir: s.StateDir, MediaDir: s.Media, Schema: store.Schema,
		Write: m.write, Create: m.create, InitMedium: m.create, Log: env.Log,
		Wait: s.Wait, Context: env.Context(),
	}, store.ApplyOwn)
	if err != nil {
		return nil, err
	}
	return &session{st: st, store: store.New(st.DB), release: release}, nil
}

// close releases the ledger and the medium.
func (s *session) close() error { return s.release() }

// stateDirFlag is the --state-dir flag.
func stateDirFlag(dst *string) cli.Flag {
	return clirun.StateDirFlag(Name, "online", "the station's state folder (key and ledger)", dst)
}

// openForMedia opens the station for the media commands (mediacmd.Opener).
func openForMedia(env *clirun.Env, stateDir, mediaDir string, wait time.Duration) (*station.Station, station.Apply, func() error, error) {
	if stateDir == "" {
		return nil, nil, nil, clirun.Usagef("--state-dir is required (or BYOK_ONLINE_STATE_DIR)")
	}
	sess, err := openSession(env, stationFlags{StateDir: stateDir, Media: mediaDir, Wait: wait}, openMode{})
	if err != nil {
		return nil, nil, nil, err
	}
	return sess.st, store.ApplyOwn, sess.close, nil
}

// auditLedger lets audit --state-dir consult this station's ledger: a package it imported
// whose receipt is missing from the medium is told apart from one never uploaded.
func auditLedger(env *clirun.Env) audit.Ledger {
	var dir string
	return audit.Ledger{
		Flag: &cli.StringFlag{Name: "state-dir", Usage: "this station's state folder: packages it imported whose receipt is not on the medium are reported as such, not as not uploaded", Destination: &dir},
		Open: func() (func(bundle.ID) (bool, error), func() error, error) {
			if dir == "" {
				return nil, nil, nil
			}
			sess, err := openSession(env, stationFlags{StateDir: dir}, openMode{})
			if err != nil {
				return nil, nil, err
			}
			return func(pkg bundle.ID) (bool, error) {
				u, err := sess.store.Upload(pkg)
				return u != nil && u.Terminal(), err
			}, sess.close, nil
		},
	}
}

// loadKey loads the station key, which init created.
func loadKey(s stationFlags) (ed25519.PrivateKey, error) {
	key, err := keyfile.Load(s.keyPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("no station key in %s", s.StateDir), "run byok-online init first, or pass the --state-dir that init used")
	}
	return key, err
}

// appendOwn appends payload v to the online chain under policy, signed with key, at a time
// never before the chain's head (a chain's times do not go backwards, even if the clock
// does).
func appendOwn(ctx context.Context, st *station.Station, policy bundle.ID, v any, key ed25519.PrivateKey, now time.Time, lifetime time.Duration) (*bundle.Bundle, error) {
	pos, err := st.Position(policy)
	if err != nil {
		return nil, err
	}
	if head := time.Unix(pos.Head.Created, 0); now.Before(head) {
		now = head
	}
	return st.Append(ctx, pos, v, key, now, lifetime, store.ApplyOwn)
}

// policyLifetime is the longest lifetime the policy allows a bundle.
func policyLifetime(p *chain.PolicyRecord) time.Duration {
	return time.Duration(p.Policy.BundleLifetimeSeconds) * time.Second
}

// fingerprint is an ID in both spellings, for JSON output.
type fingerprint = jsonout.Ref

func fp(id bundle.ID) fingerprint { return jsonout.RefOf(id) }

func keyID(key ed25519.PrivateKey) bundle.ID {
	id, _ := bundle.KeyID(key.Public())
	return id
}

func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return clirun.Usagef("unexpected argument %q", c.Args().First())
	}
	return nil
}

func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339) }
