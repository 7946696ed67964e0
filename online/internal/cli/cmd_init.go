package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/online/internal/keyfile"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

type initOptions struct {
	stationFlags
	Name string
}

func initCommand(env *clirun.Env, d deps) *cli.Command {
	var o initOptions
	return &cli.Command{
		Name:  "init",
		Usage: "create this station's signing key and write its enrollment to the medium",
		Description: `init creates the station's Ed25519 key in <state-dir>/station.key (mode 0600; an existing key
is never replaced) and writes the enrollment bundle, the first bundle of the online chain,
to the medium. It prints the key's fingerprint: read it aloud to the offline operator, whose
policy must name this key as the online station.`,
		Flags: append(o.flags(true),
			&cli.StringFlag{Name: "name", Usage: "the station's name in its enrollment (lowercase letters, digits, '.', '_', '-')", Value: "online", Destination: &o.Name}),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return runInit(c.Context, o, env, d)
		},
	}
}

type initResult struct {
	Name       string      `json:"name"`
	StationKey fingerprint `json:"station_key"`
	Enrollment struct {
		fingerprint
		Seq  uint64 `json:"seq"`
		Path string `json:"path"`
	} `json:"enrollment"`
}

func runInit(ctx context.Context, o initOptions, env *clirun.Env, d deps) error {
	if err := o.check(true); err != nil {
		return err
	}
	// Check the name before anything is created.
	if !validName(o.Name) {
		return clirun.Usagef("--name %q: want 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", o.Name)
	}
	sess, err := openSession(env, o.stationFlags, openMode{write: true, create: true})
	if err != nil {
		return err
	}
	defer sess.close()
	st, s := sess.st, sess.store
	state, err := st.Load()
	if err != nil {
		return err
	}
	if state.Head.Seq > 0 {
		return exitcode.Wrap(exitcode.Refused, fmt.Errorf("%s is initialised already", o.StateDir), "byok-online status shows its key fingerprint; a new station needs a new --state-dir")
	}
	if h, ok, err := st.Media.Head(bundle.ChainOnline); err != nil {
		return exitcode.Wrap(exitcode.Bundle, fmt.Errorf("list the medium: %w", err), "")
	} else if ok {
		return exitcode.Wrap(exitcode.Refused, fmt.Errorf("the medium holds an online chain already (seq %d, %s) that this station did not write", h.Seq, h.ID.Short()),
			"one online station serves a medium; use a fresh folder on the stick")
	}
	key, err := keyfile.Load(o.keyPath())
	switch {
	case err == nil:
		env.Log.Info("resuming an interrupted init with the existing station key", "path", o.keyPath())
	case errors.Is(err, fs.ErrNotExist):
		if key, err = keyfile.Generate(o.keyPath(), nil); err != nil {
			return err
		}
		env.Log.Info("station key created", "path", o.keyPath(), "key", keyID(key).Short())
	default:
		return err
	}
	pk, err := payload.NewPublicKey(key.Public())
	if err != nil {
		return err
	}
	e := &payload.Enrollment{Station: "online", Name: o.Name, Key: pk, Software: Name + " " + clirun.Version()}
	if err := e.Validate(); err != nil {
		return clirun.Usagef("enrollment: %v", err)
	}
	b, err := appendOwn(ctx, st, bundle.ID{}, e, key, d.now(), defaultLifetime)
	if err != nil {
		return err
	}
	id, err := s.Identity()
	if err != nil {
		return err
	}
	if id == nil {
		return errors.New("the ledger did not record the enrollment")
	}
	var r initResult
	r.Name = o.Name
	r.StationKey = fp(pk.ID())
	r.Enrollment.fingerprint = fp(b.ID())
	r.Enrollment.Seq = b.Header.Seq
	r.Enrollment.Path = media.Path(bundle.ChainOnline, b.Header.Seq, b.ID())
	return env.Result(r, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, `online station %q initialised
station key fingerprint: %s
  read it aloud to the offline operator: the policy must name this key as the online station
enrollment: online seq %d, %s
  written to %s
`, r.Name, r.StationKey.Fingerprint, r.Enrollment.Seq, r.Enrollment.Fingerprint, r.Enrollment.Path)
		return err
	})
}

// validName mirrors the format's rule for station names (SPEC §7.1).
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}
