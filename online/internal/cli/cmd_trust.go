package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

type trustOptions struct {
	stationFlags
	Fingerprint string
}

func trustCommand(env *clirun.Env, d deps) *cli.Command {
	var o trustOptions
	return &cli.Command{
		Name:  "trust",
		Usage: "pin the offline station's policy after comparing its fingerprint",
		Description: `trust replays the medium, finds policy version 1 (it must be approved by its custodians
and name this station's key as the online station), shows its fingerprint and what it allows,
and pins it once the operator confirms the fingerprint shown by byok-offline: typed at the
prompt, or given with --fingerprint. A different fingerprint is refused (exit 3). A state
folder pins one policy for its life.`,
		Flags: append(o.flags(true),
			&cli.StringFlag{Name: "fingerprint", Usage: "the policy fingerprint shown by byok-offline (else it is asked for)", Destination: &o.Fingerprint}),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return runTrust(c.Context, o, env, d)
		},
	}
}

// policySummary is what a person checks before trusting a policy.
type policySummary struct {
	fingerprint
	Version        uint64            `json:"version"`
	OfflineStation fingerprint       `json:"offline_station"`
	OnlineStation  fingerprint       `json:"online_station"`
	Custodians     []custodian       `json:"custodians"`
	Threshold      int               `json:"threshold"`
	Regions        []payload.Region  `json:"regions,omitempty"`
	GlobalApproval bool              `json:"global_approval,omitempty"`
	Vaults         []payload.Vault   `json:"vaults"`
	MinKEKBits     int               `json:"min_kek_bits"`
	KeyTypes       []payload.KeyType `json:"key_types"`
	AllowWeakerKEK bool              `json:"allow_weaker_kek"`
	LifetimeSecs   int64             `json:"bundle_lifetime_seconds"`
	MaxSkewSecs    int64             `json:"max_clock_skew_seconds"`
}

type custodian struct {
	Name string `json:"name"`
	fingerprint
}

func summarise(id bundle.ID, p *payload.Policy) policySummary {
	s := policySummary{fingerprint: fp(id), Version: p.Version, OfflineStation: fp(p.OfflineStation.ID()), OnlineStation: fp(p.OnlineStation.ID()),
		Threshold: p.Threshold, Regions: p.Regions, GlobalApproval: p.GlobalApproval, Vaults: p.Vaults, MinKEKBits: p.MinKEKBits, KeyTypes: p.KeyTypes, AllowWeakerKEK: p.AllowWeakerKEK,
		LifetimeSecs: p.BundleLifetimeSeconds, MaxSkewSecs: p.MaxClockSkewSeconds, Custodians: []custodian{}}
	for _, c := range p.Custodians {
		s.Custodians = append(s.Custodians, custodian{Name: c.Name, fingerprint: fp(c.Key.ID())})
	}
	return s
}

func (s policySummary) write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "policy version %d\n  fingerprint:      %s\n", s.Version, s.Fingerprint)
	fmt.Fprintf(&b, "  offline station:  %s\n  online station:   %s (this station)\n", s.OfflineStation.Fingerprint, s.OnlineStation.Fingerprint)
	fmt.Fprintf(&b, "  approvals:        %d of %d custodians\n", s.Threshold, len(s.Custodians))
	for _, c := range s.Custodians {
		fmt.Fprintf(&b, "    %-24s %s\n", c.Name, c.Fingerprint)
	}
	fmt.Fprintf(&b, "  vaults:\n")
	for _, v := range s.Vaults {
		fmt.Fprintf(&b, "    %s (%s, %s)\n", v.URL, v.Kind, v.Region)
	}
	for _, r := range s.Regions {
		also := ""
		if s.GlobalApproval {
			also = fmt.Sprintf(", and %d of all custodians", s.Threshold)
		}
		fmt.Fprintf(&b, "  region %s: %d of %s approve its keys%s\n", r.Name, r.Threshold, strings.Join(r.Custodians, ", "), also)
	}
	types := make([]string, len(s.KeyTypes))
	for i, t := range s.KeyTypes {
		types[i] = string(t)
	}
	fmt.Fprintf(&b, "  KEK minimum:      RSA-%d\n  key types:        %s\n", s.MinKEKBits, strings.Join(types, ", "))
	if s.AllowWeakerKEK {
		fmt.Fprintf(&b, "  weaker KEKs:      allowed for stronger targets\n")
	}
	fmt.Fprintf(&b, "  bundle lifetime:  %s (clock skew tolerance %s)\n", time.Duration(s.LifetimeSecs)*time.Second, time.Duration(s.MaxSkewSecs)*time.Second)
	_, err := io.WriteString(w, b.String())
	return err
}

type trustResult struct {
	Policy policySummary `json:"policy"`
	Pinned bool          `json:"pinned"`
}

func runTrust(ctx context.Context, o trustOptions, env *clirun.Env, d deps) error {
	if err := o.check(true); err != nil {
		return err
	}
	var want string
	if o.Fingerprint != "" {
		var err error
		if want, err = bundle.ParseShort(o.Fingerprint); err != nil {
			return clirun.Usagef("--fingerprint: %v", err)
		}
	}
	key, err := loadKey(o.stationFlags)
	if err != nil {
		return err
	}
	sess, err := openSession(env, o.stationFlags, openMode{})
	if err != nil {
		return err
	}
	defer sess.close()
	st, s := sess.st, sess.store
	state, err := st.Load()
	if err != nil {
		return err
	}
	if !state.Anchor.IsZero() {
		return exitcode.Wrap(exitcode.Refused, fmt.Errorf("this station trusts policy %s already", state.Anchor.Short()),
			"a state folder pins one policy for its life; use a new --state-dir for a new ceremony")
	}
	if id, err := s.Identity(); err != nil {
		return err
	} else if id == nil || id.KeyID != keyID(key) {
		return exitcode.Wrap(exitcode.Usage, errors.New("this state folder has no enrollment for its station key"), "run byok-online init first")
	}
	var seen []*bundle.Bundle // kept in the ledger's archive once the policy is pinned
	res, err := chain.Replay(ctx, st.Media, chain.Options{
		Remembered: state.Heads(bundle.ChainOnline),
		OnBundle: func(v *chain.Verified) error {
			if h := v.Bundle.Header; h.Chain == bundle.ChainOffline || h.Seq <= state.Head.Seq {
				seen = append(seen, v.Bundle)
			}
			return nil
		},
		Warn: func(w media.Warning) {
			env.Log.Warn("ignoring a file on the medium", "path", w.Path, "reason", w.Reason)
		},
	})
	if err != nil {
		return station.VerifyErr(err)
	}
	if err := st.CheckMedia(); err != nil {
		return err
	}
	for _, f := range res.Findings {
		env.Log.Warn("finding on the medium; run verify after trusting", "finding", f.Error())
	}
	if len(res.State.Policies) == 0 {
		if p := res.State.Pending; p != nil {
			return exitcode.Wrap(exitcode.Verify, &chain.ApprovalError{Target: p.ID, Have: len(p.Approvals), Need: p.Policy.Threshold, Reason: ": policy version 1 is not in force"},
				"the custodians approve the policy at the offline station; then bring the stick back")
		}
		return exitcode.Wrap(exitcode.Bundle, errors.New("the medium holds no policy"), "run byok-offline init with this station's fingerprint, then bring the stick back")
	}
	v1 := res.State.Policies[0]
	if got, mine := v1.Policy.OnlineStation.ID(), keyID(key); got != mine {
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("policy %s names online station key %s, but this station's key is %s", v1.ID.Short(), got.Short(), mine.Short()),
			"the offline operator must enroll this station's key")
	}
	sum := summarise(v1.ID, v1.Policy)
	if !env.JSON {
		if err := sum.write(env.Stdout); err != nil {
			return err
		}
	}
	if want == "" {
		if want, err = askFingerprint(env); err != nil {
			return err
		}
	}
	if want != v1.ID.Short() {
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("%w: fingerprint %s does not match policy %s", chain.ErrUntrusted, want, v1.ID.Short()),
			"compare with the fingerprint byok-offline shows; never pin a policy you cannot confirm")
	}
	now := d.now()
	if err := st.DB.Update(func(tx *bolt.Tx) error {
		if err := station.SetAnchor(tx, v1.ID); err != nil {
			return err
		}
		if err := store.SetPolicy(tx, &store.PinnedPolicy{ID: v1.ID, Pinned: now.Unix(), Policy: v1.Policy}); err != nil {
			return err
		}
		if err := station.ArchiveTx(tx, seen); err != nil {
			return err
		}
		return station.SetPeer(tx, res.State.Heads.Offline)
	}); err != nil {
		return err
	}
	env.Log.Info("policy pinned", "policy", v1.ID.Short())
	return env.Result(trustResult{Policy: sum, Pinned: true}, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "pinned policy %s\n", v1.ID.Short())
		return err
	})
}

// askFingerprint asks the operator to type the fingerprint, on stderr, and reads one line of
// stdin.
func askFingerprint(env *clirun.Env) (string, error) {
	fmt.Fprint(env.Stderr, "Type the policy fingerprint that byok-offline shows: ")
	line, err := bufio.NewReader(io.LimitReader(env.Stdin, 256)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the fingerprint: %w", err)
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", clirun.Usagef("no fingerprint given: type it at the prompt or pass --fingerprint")
	}
	fpr, err := bundle.ParseShort(line)
	if err != nil {
		return "", exitcode.Wrap(exitcode.Verify, fmt.Errorf("%w: %v", chain.ErrUntrusted, err), "type the four groups of four characters byok-offline shows")
	}
	return fpr, nil
}
