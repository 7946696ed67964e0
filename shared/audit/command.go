package audit

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// Command returns the audit command both binaries offer:
//
//	audit --media DIR [--policy FINGERPRINT] [--since FILE] [--checkpoint FILE] [--html FILE] [--json]
//
// It writes the report to stdout (text, or one JSON object with --json) and exits 0 on PASS,
// 3 on any finding, 4 if the replay was stopped by a malformed or unreadable bundle or the
// checkpoint cannot be read, 2 on usage errors.
//
// A binary that keeps a ledger of its imports passes led: its flag (--state-dir) and the
// opener of Options.Imported, which the audit uses when the flag is given.
func Command(env *clirun.Env, led ...Ledger) *cli.Command {
	var o Options
	var action cli.ActionFunc
	cmd := &cli.Command{
		Name:      "audit",
		Usage:     "replay a medium (or a copy of it) and give a verdict, without an HSM or a network",
		UsageText: env.Name + " audit --media DIR [--policy FINGERPRINT] [--since FILE] [--checkpoint FILE] [--html FILE] [--wait DURATION] [--json]",
		Description: "Verifies both chains from genesis: every signature, link, policy version, approval threshold\n" +
			"and expiry; each key package matched to at most one receipt and each receipt's public key to\n" +
			"its package. Prints PASS or FAIL first, then the counts, the keys and where they landed, and\n" +
			"the findings. Never writes to the medium: it creates, changes and deletes nothing there\n" +
			"(no lock file either) and works on a write-protected stick. Exit codes: 0 PASS, 3 FAIL,\n" +
			"4 no medium at DIR, unreadable or malformed input, 2 usage, 8 a writer holds the medium\n" +
			"(--wait waits for it).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "media", Usage: "the medium folder, or a copy of it", EnvVars: []string{"BYOK_MEDIA"}, Destination: &o.Media, TakesFile: true},
			&cli.StringFlag{Name: "policy", Usage: "fingerprint (or 64-digit ID) of policy version 1 to pin; without it the first policy is trusted on first use, and the report says so", Destination: &o.Policy},
			&cli.StringFlag{Name: "since", Usage: "checkpoint `FILE` of an earlier audit: verify only bundles after it", Destination: &o.Since, TakesFile: true},
			&cli.StringFlag{Name: "checkpoint", Usage: "write a checkpoint to `FILE` for the next audit's --since", Destination: &o.Checkpoint, TakesFile: true},
			&cli.StringFlag{Name: "html", Usage: "write a self-contained HTML report to `FILE`", Destination: &o.HTML, TakesFile: true},
			clirun.WaitFlag(&o.Wait),
		},
		Action: func(c *cli.Context) error { return exitError(action(c)) },
	}
	action = func(c *cli.Context) error {
		if c.Args().Present() {
			return clirun.Usagef("audit takes no arguments, got %q", c.Args().First())
		}
		if o.Media == "" {
			return clirun.Usagef("--media is required (or BYOK_MEDIA)")
		}
		for _, l := range led {
			imported, done, err := l.Open()
			if err != nil {
				return err
			}
			if imported != nil {
				defer done()
				o.Imported = imported
			}
		}
		rep, err := Run(c.Context, o, env.Log)
		if err != nil {
			return err
		}
		defer rep.Close()
		if env.JSON {
			err = WriteJSON(env.Stdout, rep)
		} else {
			err = WriteText(env.Stdout, rep)
		}
		if err != nil {
			return err
		}
		return rep.Err()
	}
	for _, l := range led {
		cmd.Flags = append(cmd.Flags, l.Flag)
	}
	return cmd
}

// Ledger is a station ledger the audit can consult: Flag names it, and Open (called once the
// flags are parsed) returns Options.Imported and the function that closes the ledger, or a
// nil Imported if the flag was not given.
type Ledger struct {
	Flag cli.Flag
	Open func() (imported func(pkg bundle.ID) (bool, error), done func() error, err error)
}

// exitError gives the audit's errors their exit codes and hints: this file is the audit's
// command line, and the only one of the package that knows them.
func exitError(err error) error {
	if err == nil {
		return nil
	}
	code, hint := clirun.Classify(err, rule)
	if code == exitcode.Internal {
		return err
	}
	return exitcode.Wrap(code, err, hint)
}

// rule maps the errors of Run and Report.Err.
func rule(err error) (exitcode.Class, bool) {
	switch err.(type) {
	case *MalformedError:
		return exitcode.Class{Code: exitcode.Bundle, Hint: "the medium holds a bundle that cannot be read or parsed: see the finding where the replay stopped"}, true
	case *HTMLError:
		return exitcode.Class{Code: exitcode.Usage, Hint: "--html must name a file in a folder that exists and is writable"}, true
	}
	for _, s := range []struct {
		err  error
		code int
	}{
		{ErrOptions, exitcode.Usage},
		{ErrUnreadable, exitcode.Bundle},
		{ErrOutput, exitcode.Media},
		{ErrInterrupted, exitcode.Interrupted},
		{ErrFailed, exitcode.Verify},
	} {
		if errors.Is(err, s.err) {
			return exitcode.Class{Code: s.code, Sentinel: true}, true
		}
	}
	return exitcode.Class{}, false
}
