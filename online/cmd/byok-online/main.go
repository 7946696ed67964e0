// Command byok-online is the online station of an air-gapped Bring Your Own Key ceremony for
// Azure Key Vault: it creates Key Exchange Keys, verifies what the offline station wrote on
// the transfer medium, and imports key packages exactly once. See byok-online --help.
package main

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/airgap-byok/airgap-byok/online/internal/cli"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// Version is set at link time: -ldflags "-X main.Version=v1.2.3".
var Version = ""

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr, nil))
}

// run runs the command line and returns the exit code. now, if not nil, is the clock: only
// the script tests give one (main passes nil, the wall clock).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, now func() time.Time) int {
	clirun.SetVersion(Version)
	if crashpoint.Enabled {
		// Resilience tests kill the process inside medium writes too.
		media.Hook = func(point string) { crashpoint.Hit("media-" + point) }
	}
	env := clirun.NewEnv(cli.Name, stdin, stdout, stderr)
	return clirun.Run(ctx, cli.NewAppClock(env, now), env, args)
}
