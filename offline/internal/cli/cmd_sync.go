package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/jsonout"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// syncOptions are the options of "sync".
type syncOptions struct {
	State stateOptions
}

func syncCommand(env *clirun.Env) *cli.Command {
	var o syncOptions
	return &cli.Command{
		Name:  "sync",
		Usage: "read the online station's receipts: which keys landed in which vault as which version",
		Description: "Replays the medium, reads the upload receipts on the online chain and records, for each key\n" +
			"package, whether Key Vault imported it (and as which key version), rejected it, or holds a\n" +
			"key whose public half is not the packaged one. A mismatch makes the command fail.",
		Flags:  o.State.flags(true),
		Action: func(c *cli.Context) error { return runSync(c.Context, o, env) },
	}
}

// packageStatus describes a key package and its fate for people.
type packageStatus struct {
	Package   jsonout.Ref `json:"package"`
	Seq       uint64      `json:"seq"`
	Ident     string      `json:"ident"`
	KeyName   string      `json:"key_name"`
	KeyType   string      `json:"key_type"`
	Vault     string      `json:"vault"`
	KEK       string      `json:"kek_kid"`
	State     string      `json:"state"`
	Approvals []string    `json:"approvals"`
	Expires   string      `json:"expires"`
	KID       string      `json:"kid,omitempty"`
	Version   string      `json:"version,omitempty"`
	Error     string      `json:"error,omitempty"`
	Finding   string      `json:"finding,omitempty"`
	Byok      string      `json:"byok,omitempty"`
}

func packageStatusOf(p *store.Package) packageStatus {
	s := packageStatus{Package: jsonout.RefOf(p.ID), Seq: p.Seq, Ident: p.Ident, KeyName: p.KeyName, KeyType: string(p.KeyType),
		Vault: p.Vault, KEK: p.KID, State: p.State, Approvals: []string{}, Expires: time.Unix(p.Expires, 0).UTC().Format(time.RFC3339), Byok: p.ByokCopy}
	for _, a := range p.Approvals {
		s.Approvals = append(s.Approvals, a.Custodian)
	}
	for _, r := range p.Receipts {
		if r.Outcome == payload.OutcomeRejected && s.Error == "" {
			s.Error = r.Error
		}
	}
	if r := ceremony.Landed(p.Receipts); r != nil {
		s.KID, s.Version, s.Finding = r.KID, r.Version, r.Finding
	}
	return s
}

// syncResult is the result of "sync".
type syncResult struct {
	Receipts   int             `json:"receipts"`
	New        int             `json:"new"`
	Packages   []packageStatus `json:"packages"`
	Mismatches int             `json:"mismatches"`
	Findings   int             `json:"findings"`
	// BadCopies are plain .byok copies in byok/ that are not their package's .byok.
	BadCopies []string `json:"bad_byok_copies,omitempty"`
}

func runSync(ctx context.Context, o syncOptions, env *clirun.Env) error {
	// Opened for writing, as kek accept: an interrupted write is finished first.
	sess, err := o.State.open(env, ceremony.Options{Access: ceremony.LedgerOnly})
	if err != nil {
		return err
	}
	defer sess.Close()
	rep, err := sess.Sync(ctx)
	if err != nil {
		return err
	}
	out := syncResult{Receipts: rep.Receipts, New: rep.New, Packages: []packageStatus{}, Mismatches: rep.Mismatches, Findings: rep.Findings, BadCopies: rep.BadCopies}
	for i := range rep.Packages {
		out.Packages = append(out.Packages, packageStatusOf(&rep.Packages[i]))
	}
	if err := env.Result(out, func(w io.Writer) error { return writeSync(w, out) }); err != nil {
		return err
	}
	return rep.Err()
}

func writeSync(w io.Writer, r syncResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d receipt(s) on the medium, %d new\n", r.Receipts, r.New)
	writePackages(&b, r.Packages)
	if r.Mismatches > 0 {
		fmt.Fprintf(&b, "WARNING: %d key(s) in Key Vault are not the packaged keys\n", r.Mismatches)
	}
	for _, p := range r.Packages {
		if p.Finding != "" {
			fmt.Fprintf(&b, "FINDING %s: %s\n", p.Package.Fingerprint, p.Finding)
		}
	}
	for _, c := range r.BadCopies {
		fmt.Fprintf(&b, "WARNING: %s\n", c)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writePackages(b *strings.Builder, ps []packageStatus) {
	for _, p := range ps {
		fmt.Fprintf(b, "%-19s %-10s %-20s %s in %s: %s", p.Package.Fingerprint, p.KeyType, p.Ident, p.KeyName, p.Vault, p.State)
		switch p.State {
		case store.PackageImported:
			fmt.Fprintf(b, " as version %s", p.Version)
		case store.PackageMismatch:
			fmt.Fprintf(b, " (%s)", p.KID)
		case store.PackageRejected:
			fmt.Fprintf(b, " (%s)", p.Error)
		case store.PackageOutstanding:
			fmt.Fprintf(b, ", approved by %d: %s", len(p.Approvals), strings.Join(p.Approvals, ", "))
		}
		b.WriteString("\n")
	}
}
