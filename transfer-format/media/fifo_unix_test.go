//go:build unix

package media_test

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// A FIFO named like a bundle is neither listed nor opened: opening it would block.
func TestFIFORefused(t *testing.T) {
	c := ceremony(t, true)
	shard := filepath.Join(c.M.Dir(), "offline", "0000000000000")
	if err := syscall.Mkfifo(filepath.Join(shard, media.Name(4, testID)), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	var warned []string
	for e, err := range c.M.Entries(bundle.ChainOffline, 1, func(w media.Warning) { warned = append(warned, w.Path) }) {
		if err != nil || e.Seq > 3 {
			t.Errorf("Entries() = %v, %v; want seq 1 to 3", e, err)
		}
	}
	if len(warned) != 1 {
		t.Errorf("Entries() warned about %v, want the FIFO", warned)
	}
	e := media.Entry{Chain: bundle.ChainOffline, Seq: 4, ID: testID, Path: "offline/0000000000000/" + media.Name(4, testID)}
	if b, err := c.M.Read(e); err == nil {
		t.Errorf("Read(FIFO) = %d bytes, want an error", len(b))
	}
}
