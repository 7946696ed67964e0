// Command byok-offline is the air-gapped station of an Azure Key Vault BYOK ceremony: it
// generates keys in a PKCS#11 HSM, wraps them for a vault's key-exchange key and writes
// signed, approved key packages to a transfer medium. See "byok-offline --help".
//
// It needs cgo: the PKCS#11 module is loaded with dlopen.
package main

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/cli"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// Version is set at link time with -ldflags "-X main.Version=...".
var Version = ""

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr, nil))
}

// run runs the command line args. now, if not nil, is the clock: only the script tests give
// one (main passes nil, the wall clock).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, now func() time.Time) int {
	clirun.SetVersion(Version)
	if now != nil {
		cli.SetClock(now)
	}
	// Resilience tests stop the process inside media writes; production builds compile
	// crashpoint.Hit to nothing.
	media.Hook = crashpoint.Hit
	return cli.Main(ctx, args, stdin, stdout, stderr)
}
