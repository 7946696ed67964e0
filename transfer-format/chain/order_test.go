package chain_test

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
)

// TestReplayUnauthenticatedPeerSeqDoesNotReorder checks that a bundle whose stage 1 checks
// failed is reported as such, even when its (unauthenticated) header claims a peer sequence
// number the other chain has not reached: that claim must not decide the replay order, or a
// bit flip would be reported as a chain break or a rollback instead of a hash mismatch.
func TestReplayUnauthenticatedPeerSeqDoesNotReorder(t *testing.T) {
	tests := []struct {
		name    string
		peerSeq uint64
	}{
		{"peer seq the other chain reaches later", 3},
		{"peer seq beyond the other chain", 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, pkg := packaged(t, "key-1")
			if _, err := c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Receipt(pkg); err != nil {
				t.Fatal(err)
			}
			// The package saw online seq 2; the receipt (online seq 3) saw offline seq 5.
			data := chaintest.Bytes(pkg)
			binary.BigEndian.PutUint64(data[56:64], tt.peerSeq)
			if err := os.Chmod(c.File(pkg), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(c.File(pkg), data, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := replay(t, c, chain.Options{Anchor: c.PolicyID})
			var hm *bundle.HashMismatchError
			if !errors.As(err, &hm) || hm.What != "file name" {
				t.Fatalf("Replay() = %v, want a file name HashMismatchError", err)
			}
			if f := res.Findings[0]; f.Chain != bundle.ChainOffline || f.Seq != 4 {
				t.Errorf("finding at %s seq %d, want offline seq 4", f.Chain, f.Seq)
			}
		})
	}
}
