package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// logOptions are the options of "log".
type logOptions struct {
	State stateOptions
}

func logCommand(env *clirun.Env) *cli.Command {
	var o logOptions
	return &cli.Command{
		Name:  "log",
		Usage: "show the timeline of both chains on the medium",
		Description: "Replays the medium against the ledger and lists every verified bundle of both chains in\n" +
			"the order they happened, with what each says and any finding about it.",
		Flags:  o.State.flags(true),
		Action: func(c *cli.Context) error { return runLog(c.Context, o, env) },
	}
}

// logEntry is one bundle of the timeline.
type logEntry struct {
	Chain       string   `json:"chain"`
	Seq         uint64   `json:"seq"`
	Kind        string   `json:"kind"`
	ID          string   `json:"id"`
	Fingerprint string   `json:"fingerprint"`
	Created     string   `json:"created"`
	Expires     string   `json:"expires"`
	Summary     string   `json:"summary"`
	Findings    []string `json:"findings"`
}

// logResult is the result of "log".
type logResult struct {
	Entries  []logEntry `json:"entries"`
	Findings []string   `json:"findings"`
	Complete bool       `json:"complete"`
	Error    string     `json:"error,omitempty"`
}

func runLog(ctx context.Context, o logOptions, env *clirun.Env) error {
	sess, err := o.State.open(env, ceremony.Options{Access: ceremony.ReadMedium})
	if err != nil {
		return err
	}
	defer sess.Close()
	out := logResult{Entries: []logEntry{}, Findings: []string{}}
	names := map[bundle.ID]string{}
	res, rerr := sess.Timeline(ctx, func(v *chain.Verified) error {
		h := &v.Bundle.Header
		e := logEntry{Chain: h.Chain.String(), Seq: h.Seq, Kind: h.Kind.String(), ID: v.Bundle.ID().String(), Fingerprint: v.Bundle.ID().Short(),
			Created: when(h.Created), Expires: when(h.Expires), Summary: summary(v.Payload, names), Findings: []string{}}
		if k, ok := v.Payload.(*payload.KeyPackage); ok {
			names[v.Bundle.ID()] = k.KeyName
		}
		for _, f := range v.Findings {
			e.Findings = append(e.Findings, fmt.Sprintf("%s: %v", chain.Verdict(f), f))
		}
		out.Entries = append(out.Entries, e)
		return nil
	})
	if res != nil {
		out.Complete = res.Complete
		for _, f := range res.Findings {
			out.Findings = append(out.Findings, fmt.Sprintf("%s: %v", chain.Verdict(f.Err), f))
		}
	}
	if rerr != nil {
		out.Error = rerr.Error()
	}
	if err := env.Result(out, func(w io.Writer) error { return writeLog(w, out) }); err != nil {
		return err
	}
	return rerr
}

// summary says in a line what a payload is about.
func summary(v any, names map[bundle.ID]string) string {
	switch p := v.(type) {
	case *payload.Enrollment:
		return fmt.Sprintf("%s station %q enrolled, key %s", p.Station, p.Name, p.Key.ID().Short())
	case *payload.Policy:
		return fmt.Sprintf("policy v%d: %d of %d custodians, %d vault(s), KEK >= %d bits", p.Version, p.Threshold, len(p.Custodians), len(p.Vaults), p.MinKEKBits)
	case *payload.KEKOffer:
		return fmt.Sprintf("KEK offer RSA-%d %s", p.KeySize, p.KID)
	case *payload.KeyPackage:
		kt, _ := p.Target.KeyType()
		return fmt.Sprintf("key package %q (%s) for %s, KEK %s", p.KeyName, kt, p.Vault, p.KEK.KID)
	case *payload.Approval:
		target := p.Target.Short()
		if n, ok := names[p.Target]; ok {
			target = fmt.Sprintf("%s (%q)", target, n)
		}
		return fmt.Sprintf("approval of %s %s by %d custodian(s)", p.TargetKind, target, len(p.Signatures))
	case *payload.Receipt:
		target := p.Package.Short()
		if n, ok := names[p.Package]; ok {
			target = fmt.Sprintf("%s (%q)", target, n)
		}
		if p.Outcome == payload.OutcomeRejected {
			return fmt.Sprintf("receipt: %s rejected: %s", target, p.Error)
		}
		return fmt.Sprintf("receipt: %s %s as %s", target, p.Outcome, p.KID)
	}
	return ""
}

func writeLog(w io.Writer, r logResult) error {
	var b strings.Builder
	for _, e := range r.Entries {
		fmt.Fprintf(&b, "%s  %-7s %3d  %-11s %s  %s\n", e.Created, e.Chain, e.Seq, e.Kind, e.Fingerprint, e.Summary)
		for _, f := range e.Findings {
			fmt.Fprintf(&b, "      finding: %s\n", f)
		}
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "replay stopped: %s\n", r.Error)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
