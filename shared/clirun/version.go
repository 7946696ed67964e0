package clirun

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/buildinfo"
)

// VersionCommand returns the version command both binaries offer:
//
//	version [--json]
//
// It prints the version, the module and source revision it was built from, the Go version and
// the SHA-256 of the running executable, the hash to compare with a release's SHA256SUMS.
// "--version" still prints the one-line version.
func VersionCommand(env *Env) *cli.Command {
	return &cli.Command{
		Name:      "version",
		Usage:     "print the version, build information and this binary's SHA-256",
		UsageText: env.Name + " version [--json]",
		Description: "Prints the version, the Go module and source revision the binary was built from, the Go\n" +
			"version, and the SHA-256 of the running executable file. Compare the hash with the line for\n" +
			"this binary in the release's SHA256SUMS (see verify-release).",
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return Usagef("version takes no arguments, got %q", c.Args().First())
			}
			in, err := buildinfo.Read()
			if err != nil {
				return err
			}
			return env.Result(in, func(w io.Writer) error {
				return writeVersion(w, env.Name, in)
			})
		},
	}
}

func writeVersion(w io.Writer, name string, in buildinfo.Info) error {
	rev := in.Revision
	if rev == "" {
		rev = "unknown"
	} else if in.Modified {
		rev += " (modified)"
	}
	cgo := "disabled"
	if in.CGO {
		cgo = "enabled"
	}
	_, err := fmt.Fprintf(w, "%s %s\nmodule:     %s %s\nrevision:   %s\ngo:         %s %s, cgo %s\nexecutable: %s\nsha256:     %s\n",
		name, in.Version, in.Module, in.ModuleVersion, rev, in.GoVersion, in.Platform, cgo, in.Executable, in.SHA256)
	return err
}
