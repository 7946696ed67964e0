// Package cli is the command line of byok-online, the online station: one file per command
// (cmd_<name>.go), each with an options struct, a flags builder and a run function that tests
// call directly; the cli.Command actions only fill the options.
//
// Output policy (shared/clirun, shared/jsonout): stdout carries only the command's result,
// as text for people or, with --json, as one JSON object whose fields are only ever added;
// logs, progress and prompts go to stderr. Errors map to exit codes once, in clirun.Run.
// Tokens are read from files or azidentity, never from flags, and never printed.
package cli

import (
	"context"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/online/internal/upload"
	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/mediacmd"
	"github.com/airgap-byok/airgap-byok/shared/release"
	"github.com/airgap-byok/airgap-byok/shared/testclock"
)

// Name is the binary's name, as it prints it.
const Name = "byok-online"

// deps are what tests replace: the clock, the vaults and waiting.
type deps struct {
	now      func() time.Time
	newVault func(url string, o vault.Options) vault.Vault
	sleep    func(context.Context, time.Duration) error
}

func defaultDeps() deps {
	return deps{
		now:      testclock.Now, // time.Now, shifted only in byok_crashpoints test builds
		newVault: func(url string, o vault.Options) vault.Vault { return vault.NewAzure(url, o) },
		sleep:    upload.Sleep,
	}
}

// NewApp returns the byok-online application writing to env's streams.
func NewApp(env *clirun.Env) *cli.App { return NewAppClock(env, nil) }

// NewAppClock is NewApp on the clock now (nil: the wall clock). Only the script tests give a
// clock (see shared/clitest.Clock).
func NewAppClock(env *clirun.Env, now func() time.Time) *cli.App {
	d := defaultDeps()
	if now != nil {
		d.now = now
	}
	return newApp(env, d)
}

const description = `byok-online is the online half of an air-gapped Bring Your Own Key ceremony for Azure
Key Vault. It enrolls this station, pins the policy the offline station made, creates Key
Exchange Keys in Key Vault and offers them on the transfer medium, verifies everything the
offline station wrote, and imports each approved key package exactly once, writing a signed
receipt for every upload.

` + exitcode.Help

func newApp(env *clirun.Env, d deps) *cli.App {
	env.Rules = rules
	app := clirun.NewApp(env, "the online station of an air-gapped BYOK ceremony for Azure Key Vault", description, []*cli.Command{
		initCommand(env, d),
		trustCommand(env, d),
		kekCommand(env, d),
		verifyCommand(env, d),
		uploadCommand(env, d),
		statusCommand(env, d),
		inspectCommand(env, d),
		audit.Command(env, auditLedger(env)),
		release.VerifyCommand(env),
		clirun.VersionCommand(env),
		mediacmd.Command(env, Name, stateDirFlag, openForMedia),
	})
	clirun.SetExamples(app, examples)
	return app
}
