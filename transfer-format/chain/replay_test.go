package chain_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// packaged returns a ceremony set up with a KEK offer and an RSA-3072 key package named
// name, not yet approved.
func packaged(t *testing.T, name string) (*chaintest.Ceremony, *bundle.Bundle) {
	t.Helper()
	c := newCeremony(t, chaintest.Config{})
	if err := c.Setup(); err != nil {
		t.Fatal(err)
	}
	off, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Package(off.ID(), payload.RSA3072, name)
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

func newCeremony(t *testing.T, cfg chaintest.Config) *chaintest.Ceremony {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	c, err := chaintest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func replay(t *testing.T, c *chaintest.Ceremony, opts chain.Options) (*chain.Result, error) {
	t.Helper()
	m, err := media.Open(c.M.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	return chain.Replay(context.Background(), m, opts)
}

func TestReplayFullCeremony(t *testing.T) {
	c := newCeremony(t, chaintest.Config{AllowWeakerKEK: true})
	pkgs, err := c.Full(payload.RSA3072, payload.ECP256, payload.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []bundle.Kind
	res, err := replay(t, c, chain.Options{Anchor: c.PolicyID, OnBundle: func(v *chain.Verified) error {
		kinds = append(kinds, v.Bundle.Header.Kind)
		if v.Payload == nil {
			t.Errorf("seq %d delivered without payload", v.Entry.Seq)
		}
		return nil
	}})
	if err != nil {
		t.Fatalf("Replay() = %v", err)
	}
	if err := res.Err(); err != nil {
		t.Fatalf("Replay findings: %v", err)
	}
	if !res.Complete || res.TrustedOnFirstUse {
		t.Errorf("Complete = %v, TrustedOnFirstUse = %v, want true, false", res.Complete, res.TrustedOnFirstUse)
	}
	if got, want := len(kinds), len(c.Written); got != want {
		t.Errorf("delivered %d bundles, want %d", got, want)
	}
	st := res.State
	if st.Counts.Imported != uint64(len(pkgs)) || len(st.Packages) != 0 {
		t.Errorf("imported %d, outstanding %d; want %d, 0", st.Counts.Imported, len(st.Packages), len(pkgs))
	}
	if st.Current() == nil || st.Current().ID != c.PolicyID {
		t.Errorf("policy in force is not the ceremony's")
	}
}

func TestReplayTrustOnFirstUse(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	if err := c.Setup(); err != nil {
		t.Fatal(err)
	}
	res, err := replay(t, c, chain.Options{})
	if err != nil || !res.TrustedOnFirstUse || res.State.Anchor != c.PolicyID {
		t.Fatalf("Replay() = %v, TOFU %v, anchor %s; want nil, true, %s", err, res.TrustedOnFirstUse, res.State.Anchor.Short(), c.PolicyID.Short())
	}
}

func TestReplayWrongAnchor(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	if err := c.Setup(); err != nil {
		t.Fatal(err)
	}
	_, err := replay(t, c, chain.Options{Anchor: bundle.ID{1}})
	if !errors.Is(err, chain.ErrUntrusted) {
		t.Fatalf("Replay() = %v, want ErrUntrusted", err)
	}
}

func TestReplayMissingApproval(t *testing.T) {
	c, p := packaged(t, "one-approval")
	if _, err := c.Approve(p.ID(), bundle.KindKeyPackage, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Receipt(p); err != nil {
		t.Fatal(err)
	}
	res, err := replay(t, c, chain.Options{Anchor: c.PolicyID})
	if err != nil {
		t.Fatalf("Replay() stopped: %v", err)
	}
	if !errors.Is(res.Err(), chain.ErrMissingApproval) {
		t.Fatalf("Replay findings = %v, want ErrMissingApproval", res.Err())
	}
}

func TestReplayRollbackAgainstRemembered(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	if err := c.Setup(); err != nil {
		t.Fatal(err)
	}
	rem := c.Heads
	rem.Offline.Seq++ // the station saw one more bundle than the medium has
	_, err := replay(t, c, chain.Options{Anchor: c.PolicyID, Remembered: rem})
	if !errors.Is(err, chain.ErrRollback) {
		t.Fatalf("Replay() = %v, want ErrRollback", err)
	}
}

func TestReplayBitFlipInPayload(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	if err := c.Setup(); err != nil {
		t.Fatal(err)
	}
	last := c.Written[len(c.Written)-1]
	p := filepath.Join(c.M.Dir(), media.Path(last.Header.Chain, last.Header.Seq, last.ID()))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x10
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = replay(t, c, chain.Options{Anchor: c.PolicyID})
	var hm *bundle.HashMismatchError
	if !errors.As(err, &hm) {
		t.Fatalf("Replay() = %v, want a HashMismatchError", err)
	}
}

// A receipt counts only the approvals its online station had seen (at or before its peer
// seq), even though the replay may apply later approvals first.
func TestReplayReceiptCountsOnlySeenApprovals(t *testing.T) {
	c, p := packaged(t, "late-approval")
	if _, err := c.Approve(p.ID(), bundle.KindKeyPackage, 0); err != nil {
		t.Fatal(err)
	}
	// The online station syncs now: it has seen one approval.
	seen := c.Heads.Offline
	// The second approval arrives on the offline chain after that.
	if _, err := c.Approve(p.ID(), bundle.KindKeyPackage, 1); err != nil {
		t.Fatal(err)
	}
	c.Seen.Online = seen
	if _, err := c.Receipt(p, chaintest.NoSync()); err != nil {
		t.Fatal(err)
	}
	res, err := replay(t, c, chain.Options{Anchor: c.PolicyID})
	if err != nil {
		t.Fatalf("Replay() stopped: %v", err)
	}
	if !errors.Is(res.Err(), chain.ErrMissingApproval) {
		t.Fatalf("Replay findings = %v, want ErrMissingApproval (the second approval came after the upload)", res.Err())
	}
}
