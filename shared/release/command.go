package release

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/buildinfo"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

// VerifyCommand returns the verify-release command both binaries offer:
//
//	verify-release [--allow-missing] [--allowed-signers FILE [--identity NAME] [--signature FILE] [--namespace NS]] DIR
//
// Exit codes: 0 the release verified, 3 a file does not match, is not listed or the
// signature is not good, 4 SHA256SUMS or a listed file is missing or malformed, 2 usage.
func VerifyCommand(env *clirun.Env) *cli.Command {
	var o Options
	return &cli.Command{
		Name:      "verify-release",
		Usage:     "check a carried release folder against its SHA256SUMS (and its signature) before installing",
		UsageText: env.Name + " verify-release [--allow-missing] [--allowed-signers FILE [--identity NAME] [--signature FILE] [--namespace NS]] DIR",
		Description: "Checks every file SHA256SUMS lists in DIR: present, a regular file, and with the listed SHA-256.\n" +
			"Any other file in DIR (besides SHA256SUMS and its signature) fails the check: nothing unlisted\n" +
			"is accepted. With --allowed-signers, the detached SSH signature DIR/SHA256SUMS.sig must be good\n" +
			"for a signer in that file (checked with ssh-keygen -Y verify, namespace \"file\"). Also says\n" +
			"whether this binary's own SHA-256 is listed. Writes nothing.\n" +
			"Exit codes: 0 verified, 3 a file or the signature does not match or a file is unlisted,\n" +
			"4 SHA256SUMS or a listed file missing or malformed, 2 usage.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "allow-missing", Usage: "accept a folder holding only some of the listed files (at least one)", Destination: &o.AllowMissing},
			&cli.StringFlag{Name: "allowed-signers", Usage: "ssh-keygen allowed-signers `FILE` with the publisher's key: the signature becomes mandatory", Destination: &o.AllowedSigners, TakesFile: true},
			&cli.StringFlag{Name: "signature", Usage: "detached signature `FILE` (default DIR/SHA256SUMS.sig)", Destination: &o.Signature, TakesFile: true},
			&cli.StringFlag{Name: "identity", Usage: "the signer's principal in the allowed-signers file (default: the one whose key made the signature)", Destination: &o.Identity},
			&cli.StringFlag{Name: "namespace", Value: "file", Usage: "the signature's namespace (ssh-keygen -Y sign -n)", Destination: &o.Namespace},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return clirun.Usagef("verify-release takes one release folder")
			}
			if o.AllowedSigners == "" && (c.IsSet("signature") || c.IsSet("identity") || c.IsSet("namespace")) {
				return clirun.Usagef("--signature, --identity and --namespace need --allowed-signers")
			}
			o.Dir = c.Args().First()
			if self, err := buildinfo.Self(); err == nil {
				o.Self = self.SHA256
			}
			rep, err := Verify(c.Context, o)
			if err != nil {
				return withCode(err)
			}
			if err := env.Result(rep, func(w io.Writer) error { return writeText(w, env.Name, rep) }); err != nil {
				return err
			}
			return withCode(rep.Err())
		},
	}
}

// withCode attaches the exit code: a mismatch or a bad signature outranks a missing file.
func withCode(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrMismatch) || errors.Is(err, ErrSignature):
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("%w: %w", exitcode.ErrVerify, err), "do not install anything from this folder: fetch the release again and compare SHA256SUMS with the published one")
	default:
		return exitcode.Wrap(exitcode.Bundle, fmt.Errorf("%w: %w", exitcode.ErrBundle, err), "copy the whole release folder, SHA256SUMS included (or pass --allow-missing to check a part of it)")
	}
}

func writeText(w io.Writer, name string, r *Report) error {
	var b strings.Builder
	verdict := "FAIL"
	if r.OK {
		verdict = "OK"
	}
	ok := 0
	for _, f := range r.Files {
		if f.Status == StatusOK {
			ok++
		}
	}
	fmt.Fprintf(&b, "%s: %s (%d of %d listed files match SHA256SUMS)\n", verdict, r.Dir, ok, len(r.Files)-count(r.Files, StatusUnlisted))
	for _, f := range r.Files {
		fmt.Fprintf(&b, "  %-18s %s\n", f.Status, f.Name)
	}
	if r.Signer != "" {
		fmt.Fprintf(&b, "signature: good, by %s\n", r.Signer)
	} else {
		fmt.Fprintf(&b, "signature: %s\n", r.Signature)
	}
	switch {
	case r.SelfSHA256 == "":
	case r.SelfListedAs != "":
		fmt.Fprintf(&b, "this %s (sha256 %s) is listed as %s\n", name, r.SelfSHA256, r.SelfListedAs)
	default:
		fmt.Fprintf(&b, "this %s (sha256 %s) is not in this release\n", name, r.SelfSHA256)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func count(fs []File, status string) int {
	n := 0
	for _, f := range fs {
		if f.Status == status {
			n++
		}
	}
	return n
}
