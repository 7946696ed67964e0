package cli

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/inspect"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

type inspectOptions struct {
	stationFlags
	File       string
	Unverified bool
}

func inspectCommand(env *clirun.Env, d deps) *cli.Command {
	var o inspectOptions
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show one bundle file: header, signature and payload, as JSON",
		ArgsUsage: "FILE",
		Description: `inspect renders a bundle file as indented JSON. Where the state folder (--state-dir, or the
default one) holds a station, its own key and the keys of the pinned policy verify the
bundle's signature (and approvals); the payload is shown only
once the signature verifies, unless --unverified. It exits 4 if the file is not a bundle, 3 if
its signature or payload does not verify, 0 otherwise (also when no key was known to check
it: the output says so).`,
		Flags: append(o.flags(false),
			&cli.BoolFlag{Name: "unverified", Usage: "decode the payload even if the signature does not verify (forensics)", Destination: &o.Unverified}),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return clirun.Usagef("inspect takes one bundle file")
			}
			o.File = c.Args().First()
			return runInspect(c.Context, o, env, d)
		},
	}
}

func runInspect(_ context.Context, o inspectOptions, env *clirun.Env, _ deps) error {
	keys := map[bundle.ID]crypto.PublicKey{}
	// The state folder's keys, where it holds a station (the default folder may hold none).
	if _, err := os.Stat(o.keyPath()); o.StateDir != "" && err == nil {
		if err := stationKeys(env, o.stationFlags, keys); err != nil {
			return err
		}
	}
	data, err := inspect.ReadFile(o.File)
	if err != nil {
		return exitcode.Wrap(exitcode.Bundle, fmt.Errorf("open bundle: %w", err), "")
	}
	r, err := inspect.Bundle(data, inspect.Options{Keys: keys, Unverified: o.Unverified})
	if err != nil {
		return exitcode.Wrap(exitcode.Bundle, err, "")
	}
	if _, err := env.Stdout.Write(r.JSON()); err != nil {
		return err
	}
	switch err := r.Err(); {
	case err == nil, errors.Is(err, inspect.ErrNoKey):
		return nil
	default:
		var pe *bundle.ParseError
		if errors.As(err, &pe) {
			return exitcode.Wrap(exitcode.Bundle, err, "")
		}
		return exitcode.Wrap(exitcode.Verify, err, "")
	}
}

// stationKeys adds the station's own key and the pinned policy's keys.
func stationKeys(env *clirun.Env, s stationFlags, keys map[bundle.ID]crypto.PublicKey) error {
	if key, err := loadKey(s); err == nil {
		keys[keyID(key)] = key.Public()
	} else {
		return err
	}
	sess, err := openSession(env, stationFlags{StateDir: s.StateDir}, openMode{})
	if err != nil {
		return err
	}
	defer sess.close()
	st := sess.store
	p, err := st.Policy()
	if err != nil || p == nil {
		return err
	}
	add := func(k payload.PublicKey) {
		if pub, err := k.Parse(); err == nil {
			keys[k.ID()] = pub
		}
	}
	add(p.Policy.OfflineStation)
	add(p.Policy.OnlineStation)
	for _, c := range p.Policy.Custodians {
		add(c.Key)
	}
	return nil
}
