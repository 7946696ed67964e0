package cli

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/inspect"
)

// inspectOptions are the options of "inspect".
type inspectOptions struct {
	State      stateOptions
	File       string
	Unverified bool
}

func inspectCommand(env *clirun.Env) *cli.Command {
	var o inspectOptions
	return &cli.Command{
		Name:      "inspect",
		Usage:     "render a bundle file as JSON",
		ArgsUsage: "FILE",
		Description: "Shows a bundle's header, its signature (verified with the station and custodian keys of\n" +
			"the ledger in --state-dir, if any) and its payload, decoded only once the signature verifies.",
		Flags: []cli.Flag{
			stateDirFlag(&o.State.StateDir),
			&cli.BoolFlag{Name: "unverified", Usage: "decode the payload even if the signature does not verify (forensics)", Destination: &o.Unverified},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return clirun.Usagef("inspect takes one bundle file")
			}
			o.File = c.Args().First()
			return runInspect(c.Context, o, env)
		},
	}
}

func runInspect(_ context.Context, o inspectOptions, env *clirun.Env) error {
	data, err := inspect.ReadFile(o.File)
	if err != nil {
		return exitcode.Wrap(exitcode.Bundle, err, "")
	}
	keys, err := ledgerKeys(env, o.State)
	if err != nil {
		return err
	}
	r, err := inspect.Bundle(data, inspect.Options{Keys: keys, Unverified: o.Unverified})
	if err != nil {
		return exitcode.Wrap(exitcode.Bundle, fmt.Errorf("%s: %w", o.File, err), "")
	}
	if _, err := env.Stdout.Write(r.JSON()); err != nil {
		return err
	}
	switch rerr := r.Err(); {
	case rerr == nil:
		return nil
	case errors.Is(rerr, inspect.ErrNoKey):
		env.Log.Warn("the signature was not checked: no known key", "signer", r.Signature.Signer.Short)
		return nil
	default:
		return station.VerifyErr(rerr)
	}
}

// ledgerKeys returns the station and custodian keys the ledger knows, if there is one.
func ledgerKeys(env *clirun.Env, o stateOptions) (map[bundle.ID]crypto.PublicKey, error) {
	if !ceremony.HasLedger(o.StateDir) {
		return map[bundle.ID]crypto.PublicKey{}, nil
	}
	sess, err := o.openLedger(env)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	return sess.KnownKeys()
}
