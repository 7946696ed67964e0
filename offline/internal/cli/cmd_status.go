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
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// statusOptions are the options of "status".
type statusOptions struct {
	State stateOptions
}

func statusCommand(env *clirun.Env) *cli.Command {
	var o statusOptions
	return &cli.Command{
		Name:        "status",
		Usage:       "show the ledger: station key, policy, heads, KEKs, keys and packages",
		Description: "Shows what this station's ledger holds. It reads neither the HSM nor the medium.",
		Flags:       o.State.flags(false),
		Action:      func(c *cli.Context) error { return runStatus(c.Context, o, env) },
	}
}

// statusResult is the result of "status".
type statusResult struct {
	Initialised bool            `json:"initialised"`
	Station     *keyInfo        `json:"station,omitempty"`
	Online      *keyInfo        `json:"online,omitempty"`
	Custodians  []keyInfo       `json:"custodians"`
	Policy      *policySummary  `json:"policy,omitempty"`   // the policy in force (else the latest)
	Proposal    *policySummary  `json:"proposal,omitempty"` // a later version awaiting approval
	Vaults      []payload.Vault `json:"vaults"`
	Head        chain.Head      `json:"head"`
	Peer        chain.Head      `json:"peer"`
	Pending     bool            `json:"pending_write"`
	KEKs        []kekInfo       `json:"keks"`
	Keys        []keyResult     `json:"keys"`
	Packages    []packageStatus `json:"packages"`

	now time.Time // the station's clock: what has expired by now (text only)
}

func runStatus(_ context.Context, o statusOptions, env *clirun.Env) error {
	sess, err := o.State.openLedger(env)
	if err != nil {
		return err
	}
	defer sess.Close()
	st, err := sess.Status()
	if err != nil {
		return err
	}
	out := statusResultOf(st)
	out.now = now()
	return env.Result(out, func(w io.Writer) error { return writeStatus(w, out) })
}

// statusResultOf is what "status" prints of the ledger's status.
func statusResultOf(st *ceremony.Status) statusResult {
	out := statusResult{Initialised: st.Initialised, Custodians: []keyInfo{}, Vaults: []payload.Vault{}, KEKs: []kekInfo{}, Keys: []keyResult{}, Packages: []packageStatus{},
		Head: st.Head, Peer: st.Peer, Pending: st.Pending}
	if s := st.Station; s != nil {
		si := stationInfo(s)
		out.Station = &si
	}
	if on := st.Online; on != nil {
		oi := onlineInfo(on)
		out.Online = &oi
	}
	for _, c := range st.Custodians {
		out.Custodians = append(out.Custodians, custodianInfo(&c))
	}
	if p := st.Policy; p != nil {
		sum := summarize(p.ID, p.Policy, st.InForce)
		out.Policy = &sum
		out.Vaults = p.Policy.Vaults
	}
	if p := st.Proposal; p != nil {
		prop := summarize(p.ID, p.Policy, false)
		out.Proposal = &prop
	}
	for i := range st.KEKs {
		out.KEKs = append(out.KEKs, kekInfoOf(&st.KEKs[i], false))
	}
	for i := range st.Keys {
		k := keyResultOf(&st.Keys[i])
		k.PublicKey = nil
		out.Keys = append(out.Keys, k)
	}
	for i := range st.Packages {
		out.Packages = append(out.Packages, packageStatusOf(&st.Packages[i]))
	}
	return out
}

func writeStatus(w io.Writer, r statusResult) error {
	var b strings.Builder
	if !r.Initialised {
		b.WriteString("not initialised (run byok-offline init)\n")
	}
	if r.Station != nil {
		fmt.Fprintf(&b, "station   %s  %s (token %s, key %s)\n", r.Station.Fingerprint, r.Station.Name, r.Station.Token, r.Station.Label)
	}
	if r.Online != nil {
		fmt.Fprintf(&b, "online    %s  %s\n", r.Online.Fingerprint, r.Online.Name)
	}
	for _, c := range r.Custodians {
		fmt.Fprintf(&b, "custodian %s  %s (token %s)\n", c.Fingerprint, c.Name, c.Token)
	}
	if p := r.Policy; p != nil {
		fmt.Fprintf(&b, "policy    %s  v%d, %d of %d approve, in force: %t\n", p.Fingerprint, p.Version, p.Threshold, p.Custodians, p.InForce)
		for _, rg := range p.Regions {
			fmt.Fprintf(&b, "          %s\n", regionLine(rg))
		}
		for _, h := range p.AllowedToolsets {
			fmt.Fprintf(&b, "          binary allowed to write: sha256 %s\n", h)
		}
		if q := r.Proposal; q != nil {
			fmt.Fprintf(&b, "proposed  %s  v%d, %d of %d approve: awaiting approval (byok-offline policy approve)\n", q.Fingerprint, q.Version, q.Threshold, q.Custodians)
		}
		for _, v := range r.Vaults {
			fmt.Fprintf(&b, "  vault   %s (%s, %s)\n", v.URL, v.Kind, v.Region)
		}
		fmt.Fprintf(&b, "  keys    %s; KEK at least %d bits; weaker KEK allowed: %t\n", strings.Join(p.KeyTypes, ", "), p.MinKEKBits, p.AllowWeakerKEK)
	}
	fmt.Fprintf(&b, "heads     offline seq %d %s, online seq %d %s\n", r.Head.Seq, r.Head.ID.Short(), r.Peer.Seq, r.Peer.ID.Short())
	if r.Pending {
		b.WriteString("          an interrupted write is pending: the next package or approve finishes it\n")
	}
	for _, k := range r.KEKs {
		fmt.Fprintf(&b, "kek       %s  %s RSA-%d %s, %s; offer %s %s\n", k.KEK, k.State, k.Bits, k.KID, expiryText(k.Expires, r.now), k.Offer.Fingerprint, expiryText(k.OfferExpires, r.now))
	}
	for _, k := range r.Keys {
		fmt.Fprintf(&b, "key       %-20s %s %s (label %q)\n", k.Ident, k.Type, k.State, k.Label)
	}
	if len(r.Packages) > 0 {
		b.WriteString("packages\n")
		writePackages(&b, r.Packages)
		for _, p := range r.Packages {
			if p.State == store.PackageOutstanding && expired(p.Expires, r.now) {
				fmt.Fprintf(&b, "          %s expired at %s: package the key again\n", p.Package.Fingerprint, p.Expires)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// when formats Unix seconds for people.
// expiryText is "expires T", or "expired T" once the RFC 3339 time T is not after now.
func expiryText(t string, now time.Time) string {
	if expired(t, now) {
		return "expired " + t
	}
	return "expires " + t
}

// expired reports whether the RFC 3339 time t is not after now.
func expired(t string, now time.Time) bool {
	e, err := time.Parse(time.RFC3339, t)
	return err == nil && !now.Before(e)
}

func when(s int64) string { return time.Unix(s, 0).UTC().Format(time.RFC3339) }
