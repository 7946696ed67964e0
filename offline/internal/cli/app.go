// Package cli implements the byok-offline commands: the air-gapped side of an Azure Key
// Vault BYOK ceremony.
//
// Each command lives in cmd_<name>.go with an options struct, a flags builder and a
// run function (runInit, runPackage, ...) that tests call directly; the urfave/cli Action
// only fills the options. The ceremony's steps live in offline/internal/ceremony (the
// session that opens the ledger and the medium, packaging); what remains here of them is
// being moved there.
//
// # Output and errors
//
// Policy enforced here: stdout carries only a command's result (text, or one JSON object
// with --json); the transcript of the ceremony goes to stderr as one INFO log line per
// step; prompts go to the terminal. A command returns an error and never exits: the error
// carries its exit code (shared/exitcode) and, where the operator has something to do, a
// hint; errors.go maps the domain packages' errors (ceremony, hsm, store) to both. PINs come from a file, the environment or a no-echo prompt, never from a flag, and
// never appear in output, logs or errors.
//
// # Interruption
//
// Every command can be killed at any point and rerun. Bundles are written through
// shared/station's journal, whose pending entry the next command that writes finishes;
// the ledger is derived from the bundles (store.RecordOwn); key generation records its
// intent first and adopts the labelled object on a rerun.
package cli

import (
	"context"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/mediacmd"
	"github.com/airgap-byok/airgap-byok/shared/release"
	"github.com/airgap-byok/airgap-byok/shared/testclock"
)

// Name is the binary's name.
const Name = "byok-offline"

// Main runs byok-offline with args (args[0] is the program name) and returns its exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := clirun.NewEnv(Name, stdin, stdout, stderr)
	return clirun.Run(ctx, NewApp(env), env, args)
}

// NewApp returns the byok-offline command-line application writing to env.
func NewApp(env *clirun.Env) *cli.App {
	env.Rules = rules
	app := clirun.NewApp(env, "the air-gapped station of an Azure Key Vault BYOK ceremony",
		"byok-offline generates keys in a PKCS#11 HSM, wraps them for an Azure Key Vault key-exchange key\n"+
			"and writes signed, approved key packages to a transfer medium for byok-online to upload.\n\n"+
			exitcode.Help,
		[]*cli.Command{
			hsmCommand(env),
			initCommand(env),
			kekCommand(env),
			keygenCommand(env),
			packageCommand(env),
			approveCommand(env),
			policyCommand(env),
			syncCommand(env),
			statusCommand(env),
			logCommand(env),
			inspectCommand(env),
			audit.Command(env),
			release.VerifyCommand(env),
			clirun.VersionCommand(env),
			mediacmd.Command(env, Name, stateDirFlag, openForMedia),
		})
	// Flag values such as --tag k=v and vault URLs are taken whole; lists are split by the
	// commands themselves.
	app.DisableSliceFlagSeparator = true
	clirun.SetExamples(app, examples)
	return app
}

// testOnlyNow, when set, replaces the clock.
var testOnlyNow func() time.Time

// SetClock makes the commands read the time from now. Only the script tests call it (see
// shared/clitest.Clock); the binary runs on the wall clock.
func SetClock(now func() time.Time) { testOnlyNow = now }

func now() time.Time {
	if testOnlyNow != nil {
		return testOnlyNow()
	}
	return testclock.Now() // time.Now, shifted only in byok_crashpoints test builds
}
