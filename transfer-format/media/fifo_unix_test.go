//go:build unix

package media_test

import (
	"errors"
	"os"
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

// Read opens a listed entry without a stat first; what it opened must still be a regular
// file within the limit, whatever replaced the file since the listing.
func TestReadChecksWhatReplacedAListedFile(t *testing.T) {
	c := ceremony(t, true)
	var es []media.Entry
	for e, err := range c.M.Entries(bundle.ChainOffline, 1, nil) {
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3", len(es))
	}
	file := func(e media.Entry) string { return filepath.Join(c.M.Dir(), filepath.FromSlash(e.Path)) }
	replace := func(e media.Entry, mk func(p string) error) {
		t.Helper()
		if err := os.Remove(file(e)); err != nil {
			t.Fatal(err)
		}
		if err := mk(file(e)); err != nil {
			t.Skipf("replace %s: %v", e.Path, err)
		}
	}
	replace(es[0], func(p string) error { return syscall.Mkfifo(p, 0o644) })
	replace(es[1], func(p string) error { return os.Symlink(file(es[2]), p) })
	replace(es[2], func(p string) error { return os.WriteFile(p, make([]byte, bundle.MaxFileSize+1), 0o644) })
	for i, e := range es {
		b, err := c.M.Read(e)
		if err == nil {
			t.Errorf("Read(%s, replaced) = %d bytes, want an error", e.Path, len(b))
		}
		if i == 2 && !errors.Is(err, bundle.ErrTooLarge) {
			t.Errorf("Read(%s, too large) = %v, want ErrTooLarge", e.Path, err)
		}
	}
}
