package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/online/internal/verify"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
)

type verifyOptions struct {
	stationFlags
}

func verifyCommand(env *clirun.Env, d deps) *cli.Command {
	var o verifyOptions
	return &cli.Command{
		Name:  "verify",
		Usage: "verify everything on the medium against the pinned policy",
		Description: `verify replays both chains on the medium against the pinned policy and the heads this
station saw before: every signature, link, approval, expiry and rule, and that every key
package is wrapped with a KEK this station offered for the package's vault, and that each
plain copy in byok/ is its package's .byok. It writes nothing to the medium; the ledger
keeps what it verified, so that every later command refuses an older copy of the stick
(exit 10) or a forked one (exit 3). It exits 3 if anything is wrong, 4 if a bundle is
malformed or missing, 10 for an older copy, 11 for another ceremony's stick.`,
		Flags: o.flags(true),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return runVerify(c.Context, o, env, d)
		},
	}
}

func runVerify(ctx context.Context, o verifyOptions, env *clirun.Env, d deps) error {
	if err := o.check(true); err != nil {
		return err
	}
	sess, err := openSession(env, o.stationFlags, openMode{})
	if err != nil {
		return err
	}
	defer sess.close()
	st, s := sess.st, sess.store
	rep, err := verify.Run(ctx, verify.Options{Station: st, Store: s, Now: d.now(), Log: env.Log})
	if rep != nil {
		if werr := env.Result(rep, func(w io.Writer) error { return writeReport(w, rep, err) }); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	return rep.Err()
}

// writeReport writes a verification report for people.
func writeReport(w io.Writer, rep *verify.Report, stop error) error {
	var b strings.Builder
	if rep.Policy != nil {
		fmt.Fprintf(&b, "policy %s (version %d, %d approvals required)\n", rep.Policy.Fingerprint, rep.Policy.Version, rep.Policy.Threshold)
	}
	state := "complete"
	if !rep.Complete {
		state = "stopped"
	}
	fmt.Fprintf(&b, "bundles: %d offline, %d online (%s)\n", rep.Heads.Offline.Seq, rep.Heads.Online.Seq, state)
	for _, x := range rep.Bundles {
		fmt.Fprintf(&b, "  %-7s %4d  %-11s  %s  %s\n", x.Chain, x.Seq, x.Kind, x.Fingerprint, timeText(x.Created))
	}
	if len(rep.Packages) > 0 {
		fmt.Fprintf(&b, "key packages:\n")
	}
	for _, p := range rep.Packages {
		fmt.Fprintf(&b, "  %s  %s  %s  %s\n", p.Fingerprint, p.KeyName, p.KeyType, p.Vault)
		switch {
		case !p.Outstanding:
			kid := ""
			if p.Upload != nil {
				kid = " as " + p.Upload.KID
			}
			fmt.Fprintf(&b, "    uploaded%s\n", kid)
		case p.Uploadable:
			fmt.Fprintf(&b, "    ready to upload: approved %d/%d, expires %s\n", p.Approvals, p.Threshold, timeText(p.Expires))
		default:
			fmt.Fprintf(&b, "    not uploadable: %s\n", strings.Join(p.Reasons, "; "))
		}
		if p.Upload != nil && p.Outstanding {
			fmt.Fprintf(&b, "    ledger: %s after %d attempt(s)", p.Upload.State, p.Upload.Attempts)
			if p.Upload.Error != "" {
				fmt.Fprintf(&b, ": %s", p.Upload.Error)
			}
			b.WriteString("\n")
		}
	}
	for _, wr := range rep.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", wr)
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintf(&b, "findings:\n")
	}
	for _, f := range rep.Findings {
		where := f.Chain + " chain"
		if f.Seq > 0 {
			where = fmt.Sprintf("%s seq %d (%s)", f.Chain, f.Seq, f.Kind)
		}
		fmt.Fprintf(&b, "  %s: %s: %s\n", where, f.Verdict, f.Message)
	}
	switch {
	case stop != nil:
		fmt.Fprintf(&b, "result: the replay stopped\n")
	case len(rep.Findings) == 0:
		fmt.Fprintf(&b, "result: verified, no findings\n")
	default:
		fmt.Fprintf(&b, "result: %d finding(s)\n", len(rep.Findings))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
