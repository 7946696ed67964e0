package audit_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// findingKeys lists the findings as "class chain seq id", sorted: what must agree between an
// incremental and a full audit.
func findingKeys(r *audit.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, fmt.Sprintf("%s %s %d %s", f.Verdict, f.Chain, f.Seq, f.Fingerprint))
	}
	slices.Sort(out)
	return out
}

// totals are the counts that must agree between an incremental and a full audit.
func totals(c audit.Counts) audit.Counts {
	c.Replayed, c.Keys = 0, 0
	return c
}

// An audit --since a checkpoint replays only what is newer and reaches the verdict of a full
// replay, whether the medium passes, fails before the checkpoint or fails after it.
func TestSinceSameVerdictAsFullReplay(t *testing.T) {
	// key writes a KEK offer, a package and its approvals (by the given custodians) and
	// returns the package.
	key := func(t *testing.T, c *chaintest.Ceremony, name string, custodians ...int) *bundle.Bundle {
		off := must[*bundle.Bundle](t)(c.Offer())
		pkg := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.ECP256, name))
		must[*bundle.Bundle](t)(c.Approve(pkg.ID(), bundle.KindKeyPackage, custodians...))
		return pkg
	}
	var pkg, v2 *bundle.Bundle
	tests := []struct {
		name          string
		before, after func(t *testing.T, c *chaintest.Ceremony)
		verdict       string // a class among the findings; "" for PASS
		resumed       bool
		check         func(t *testing.T, full *audit.Report)
	}{
		{
			name:   "passing",
			before: func(t *testing.T, c *chaintest.Ceremony) { check(t, c.Setup()); pkg = key(t, c, "key-1", 0, 1) },
			after: func(t *testing.T, c *chaintest.Ceremony) {
				must[*bundle.Bundle](t)(c.Receipt(pkg)) // a package from before the checkpoint
				p2 := key(t, c, "key-2", 1, 2)
				must[*bundle.Bundle](t)(c.Receipt(p2))
			},
			resumed: true,
		},
		{
			name:   "passing, checkpoint before any policy",
			before: func(t *testing.T, c *chaintest.Ceremony) { check(t, c.Enroll()) },
			after: func(t *testing.T, c *chaintest.Ceremony) {
				p := c.NewPolicy()
				b := must[*bundle.Bundle](t)(c.Append(bundle.ChainOffline, p))
				c.Policy, c.PolicyID = p, b.ID()
				must[*bundle.Bundle](t)(c.Approve(b.ID(), bundle.KindPolicy, 0, 1))
				pkg := key(t, c, "key-1", 0, 2)
				must[*bundle.Bundle](t)(c.Receipt(pkg))
			},
		},
		{
			name: "passing, checkpoint while policy v2 awaits its own custodians",
			before: func(t *testing.T, c *chaintest.Ceremony) {
				check(t, c.Setup())
				p := c.NewPolicy()
				p.Version, p.Previous = 2, c.PolicyID
				p.Custodians = p.Custodians[:2] // custodian-1 and -2 stay
				for _, l := range []string{"new-a", "new-b"} {
					pk := must[payload.PublicKey](t)(payload.NewPublicKey(c.Key(l).Public()))
					p.Custodians = append(p.Custodians, payload.Custodian{Name: l, Key: pk})
				}
				v2 = must[*bundle.Bundle](t)(c.Append(bundle.ChainOffline, p))
				must[*bundle.Bundle](t)(c.Approve(v2.ID(), bundle.KindPolicy, 0, 2)) // v1's threshold
				c.Policy = p
			},
			after: func(t *testing.T, c *chaintest.Ceremony) {
				must[*bundle.Bundle](t)(c.Append(bundle.ChainOffline, c.ApprovalBy(v2.ID(), bundle.KindPolicy, c.Key("new-a"))))
				c.PolicyID = v2.ID()
				pkg := key(t, c, "key-1", 0, 1)
				must[*bundle.Bundle](t)(c.Receipt(pkg))
			},
			resumed: true,
			check: func(t *testing.T, full *audit.Report) {
				if len(full.Policies) != 2 || full.Policies[1].Effective == 0 {
					t.Fatalf("policies %+v, want v2 in force", full.Policies)
				}
				var by []string
				for _, a := range full.Policies[1].ApprovedBy {
					by = append(by, a.Name)
				}
				slices.Sort(by)
				if !slices.Equal(by, []string{"custodian-1", "custodian-3", "new-a"}) {
					t.Errorf("v2 approved by %v, want custodian-1, custodian-3 (of v1) and new-a (of v2)", by)
				}
			},
		},
		{
			name:   "passing, the stations move to format version 2 after the checkpoint",
			before: func(t *testing.T, c *chaintest.Ceremony) { check(t, c.Setup()); pkg = key(t, c, "key-1", 0, 1) },
			after: func(t *testing.T, c *chaintest.Ceremony) {
				c.Version = bundle.Version2
				must[*bundle.Bundle](t)(c.Receipt(pkg))
				p2 := key(t, c, "key-2", 1, 2)
				must[*bundle.Bundle](t)(c.Receipt(p2))
			},
			resumed: true,
			check: func(t *testing.T, full *audit.Report) {
				if len(full.Toolsets) != 4 {
					t.Errorf("toolsets %+v, want version 1 and version 2 of each chain", full.Toolsets)
				}
			},
		},
		{
			name: "failing before the checkpoint",
			before: func(t *testing.T, c *chaintest.Ceremony) {
				check(t, c.Setup())
				p := key(t, c, "key-1", 0) // one approval of two
				must[*bundle.Bundle](t)(c.Receipt(p))
			},
			after: func(t *testing.T, c *chaintest.Ceremony) {
				p := key(t, c, "key-2", 0, 1)
				must[*bundle.Bundle](t)(c.Receipt(p))
			},
			verdict: "missing approval", resumed: true,
		},
		{
			name:   "failing after the checkpoint",
			before: func(t *testing.T, c *chaintest.Ceremony) { check(t, c.Setup()); pkg = key(t, c, "key-1", 0, 1) },
			after: func(t *testing.T, c *chaintest.Ceremony) {
				r := must[*payload.Receipt](t)(c.ReceiptPayload(pkg))
				r.PublicKey = must[[]byte](t)(x509.MarshalPKIXPublicKey(&c.KEK.PublicKey))
				must[*bundle.Bundle](t)(c.Append(bundle.ChainOnline, r))
			},
			verdict: "key mismatch", resumed: true,
		},
		{
			name:   "replay stopped after the checkpoint",
			before: func(t *testing.T, c *chaintest.Ceremony) { check(t, c.Setup()); pkg = key(t, c, "key-1", 0, 1) },
			after: func(t *testing.T, c *chaintest.Ceremony) {
				r := must[*bundle.Bundle](t)(c.Receipt(pkg))
				rewrite(t, c, r, func(b []byte) []byte { b[bundle.HeaderSize] ^= 0x80; return b })
			},
			verdict: "bad signature", resumed: true,
		},
		{
			name: "replay stopped before the checkpoint",
			before: func(t *testing.T, c *chaintest.Ceremony) {
				check(t, c.Setup())
				pkg = key(t, c, "key-1", 0, 1)
				rewrite(t, c, pkg, func(b []byte) []byte { b[bundle.HeaderSize+1] ^= 0x80; return b })
			},
			after: func(t *testing.T, c *chaintest.Ceremony) {
				must[*bundle.Bundle](t)(c.Receipt(pkg))
			},
			verdict: "bad signature", resumed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCeremony(t, chaintest.Config{})
			cp := filepath.Join(t.TempDir(), "audit.checkpoint")
			tt.before(t, c)
			first := run(t, audit.Options{Media: c.M.Dir(), Checkpoint: cp})
			tt.after(t, c)

			v1 := run(t, audit.Options{Media: c.M.Dir()}).AnchorFingerprint // the policy v1 on the medium
			since := run(t, audit.Options{Media: c.M.Dir(), Since: cp, Checkpoint: cp, Policy: v1})
			full := run(t, audit.Options{Media: c.M.Dir(), Policy: v1})
			if since.Verdict != full.Verdict {
				t.Fatalf("--since verdict %s, full replay %s\nsince: %+v\nfull: %+v", since.Verdict, full.Verdict, since.Findings, full.Findings)
			}
			wantVerdict := audit.Pass
			if tt.verdict != "" {
				wantVerdict = audit.Fail
			}
			if full.Verdict != wantVerdict || (tt.verdict != "" && !slices.ContainsFunc(full.Findings, func(f audit.Finding) bool { return f.Verdict == tt.verdict })) {
				t.Fatalf("full replay: %s %+v, want %s with a %q finding", full.Verdict, full.Findings, wantVerdict, tt.verdict)
			}
			if tt.check != nil {
				tt.check(t, full)
			}
			if got, want := findingKeys(since), findingKeys(full); !slices.Equal(got, want) {
				t.Errorf("--since findings %q, full replay %q", got, want)
			}
			if got, want := totals(since.Counts), totals(full.Counts); got != want {
				t.Errorf("--since counts %+v, full replay %+v", got, want)
			}
			if !reflect.DeepEqual(since.Policies, full.Policies) {
				t.Errorf("--since policies %+v, full replay %+v", since.Policies, full.Policies)
			}
			if !reflect.DeepEqual(since.Toolsets, full.Toolsets) {
				t.Errorf("--since toolsets %+v, full replay %+v", since.Toolsets, full.Toolsets)
			}
			if since.Heads != full.Heads {
				t.Errorf("--since heads %+v, full replay %+v", since.Heads, full.Heads)
			}
			if since.Since == nil || since.Since.Resumed != tt.resumed {
				t.Fatalf("since = %+v, want resumed %v", since.Since, tt.resumed)
			}
			if tt.resumed {
				if want := full.Counts.Replayed - first.Counts.Replayed; since.Counts.Replayed != want {
					t.Errorf("--since verified %d bundles, want the %d after the checkpoint", since.Counts.Replayed, want)
				}
			}
			// The checkpoint --since wrote (over the one it read) continues the same way.
			again := run(t, audit.Options{Media: c.M.Dir(), Since: cp})
			if again.Verdict != full.Verdict || !slices.Equal(findingKeys(again), findingKeys(full)) {
				t.Errorf("second --since: %s %q, want %s %q", again.Verdict, findingKeys(again), full.Verdict, findingKeys(full))
			}
			if tt.resumed && full.Complete && again.Counts.Replayed != 0 {
				t.Errorf("second --since verified %d bundles, want 0", again.Counts.Replayed)
			}
			if again.Pinned != true || again.TrustedOnFirstUse {
				t.Errorf("second --since: pinned %v, tofu %v; the checkpoint was written by a pinned audit", again.Pinned, again.TrustedOnFirstUse)
			}
		})
	}
}

// A checkpoint is refused, with a finding that names the bundle, when the medium no longer
// extends it or it was made for another anchor; the checkpoint file is left as it was.
func TestSinceRefused(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(t *testing.T, c *chaintest.Ceremony, last *bundle.Bundle) []string
		verdict string
		chain   string
		seq     uint64
	}{
		{
			name: "rollback: the last receipt removed",
			edit: func(t *testing.T, c *chaintest.Ceremony, last *bundle.Bundle) []string {
				check(t, os.Remove(c.File(last)))
				return nil
			},
			verdict: "rollback", chain: "online", seq: 3,
		},
		{
			name: "fork: another receipt at the checkpoint's head",
			edit: func(t *testing.T, c *chaintest.Ceremony, last *bundle.Bundle) []string {
				check(t, os.Remove(c.File(last)))
				c.Heads.Online = chain.Head{Seq: 2, ID: last.Header.Prev, Created: last.Header.Created - 60}
				c.Clock = c.Clock.Add(time.Hour)
				pkg := c.Written[len(c.Written)-3] // the key package
				must[*bundle.Bundle](t)(c.Receipt(pkg))
				return nil
			},
			verdict: "fork", chain: "online", seq: 3,
		},
		{
			name: "another anchor pinned",
			edit: func(t *testing.T, c *chaintest.Ceremony, last *bundle.Bundle) []string {
				return []string{"--policy", otherPolicy(t).Short()}
			},
			verdict: "untrusted", chain: "offline", seq: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCeremony(t, chaintest.Config{})
			pkg := approved(t, c)
			last := must[*bundle.Bundle](t)(c.Receipt(pkg))
			cp := filepath.Join(t.TempDir(), "cp.json")
			if r := run(t, audit.Options{Media: c.M.Dir(), Policy: c.PolicyID.Short(), Checkpoint: cp}); r.Failed() {
				t.Fatalf("first audit: %+v", r.Findings)
			}
			saved := must[[]byte](t)(os.ReadFile(cp))
			extra := tt.edit(t, c, last)
			if r := run(t, audit.Options{Media: c.M.Dir()}); tt.verdict != "untrusted" && r.Failed() {
				t.Fatalf("the edited medium fails a full replay on its own (%+v): the test would prove nothing", r.Findings)
			}
			html := filepath.Join(t.TempDir(), "r.html")
			code, out, errs := cliRun(t, append([]string{"audit", "--json", "--media", c.M.Dir(), "--since", cp, "--checkpoint", cp, "--html", html}, extra...)...)
			if code != exitcode.Verify {
				t.Fatalf("exit code %d, want %d; stderr %s", code, exitcode.Verify, errs)
			}
			r := parseJSON(t, out)
			if len(r.Findings) != 1 {
				t.Fatalf("findings = %+v, want one", r.Findings)
			}
			f := r.Findings[0]
			if f.Verdict != tt.verdict || f.Chain != tt.chain || f.Seq != tt.seq || !f.Stopped {
				t.Errorf("finding = [%s] %s seq %d stopped %v (%s), want [%s] %s seq %d stopped", f.Verdict, f.Chain, f.Seq, f.Stopped, f.Message, tt.verdict, tt.chain, tt.seq)
			}
			if tt.verdict != "untrusted" && f.ID != last.ID().String() {
				t.Errorf("finding names %s, want the checkpoint's head %s", f.Fingerprint, last.ID().Short())
			}
			if r.Counts.Replayed != 0 {
				t.Errorf("verified %d bundles after refusing the checkpoint", r.Counts.Replayed)
			}
			if got := must[[]byte](t)(os.ReadFile(cp)); !bytes.Equal(got, saved) {
				t.Errorf("a refused audit rewrote the checkpoint")
			}
			if _, err := os.Stat(html); err != nil {
				t.Errorf("no HTML report for a refused audit: %v", err)
			}
		})
	}
}

// A checkpoint made on another deployment's medium is refused even without --policy.
func TestSinceOtherMedium(t *testing.T) {
	other := newCeremony(t, chaintest.Config{Seed: 7})
	must[[]*bundle.Bundle](t)(other.Full(payload.ECP256))
	cp := filepath.Join(t.TempDir(), "cp.json")
	run(t, audit.Options{Media: other.M.Dir(), Checkpoint: cp})

	c := newCeremony(t, chaintest.Config{})
	must[[]*bundle.Bundle](t)(c.Full(payload.ECP256))
	r := run(t, audit.Options{Media: c.M.Dir(), Since: cp})
	var ae *audit.CheckpointAnchorError
	if !r.Failed() || len(r.Findings) != 1 || !errors.As(r.Findings[0].Err, &ae) || r.Findings[0].Seq != 2 {
		t.Fatalf("findings = %+v, want one CheckpointAnchorError at the first policy", r.Findings)
	}
	// Pinning this medium's policy does not make the other medium's checkpoint acceptable.
	r = run(t, audit.Options{Media: c.M.Dir(), Since: cp, Policy: c.PolicyID.Short()})
	if !r.Failed() || len(r.Findings) != 1 || !errors.As(r.Findings[0].Err, &ae) || !errors.Is(r.Findings[0].Err, chain.ErrUntrusted) {
		t.Fatalf("findings = %+v, want one untrusted CheckpointAnchorError", r.Findings)
	}
}
