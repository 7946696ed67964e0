package media_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// A hostile medium puts something other than a regular file or a folder at a name the
// layout fixes. Every read of such a medium must end (a FIFO opened for reading blocks until
// a writer comes, and no signal ends a process blocked in open(2)), must not follow a link
// out of the medium, and must refuse what it finds: the marker's place makes the folder
// not a medium; elsewhere a listing error or a warning.

// hostileKinds are what an attacker can put at a name: each makes it at p, or skips.
var hostileKinds = []struct {
	name string
	make func(t *testing.T, p string)
}{
	{"fifo", func(t *testing.T, p string) {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}},
	{"device", func(t *testing.T, p string) {
		// A node like /dev/zero: reading it never ends.
		if err := syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
			t.Skipf("mknod (needs CAP_MKNOD): %v", err)
		}
	}},
	{"symlink to a device", func(t *testing.T, p string) {
		if err := os.Symlink("/dev/zero", p); err != nil {
			t.Fatal(err)
		}
	}},
	{"symlink out of the medium", func(t *testing.T, p string) {
		out := t.TempDir()
		if err := os.WriteFile(filepath.Join(out, "f"), []byte(media.MarkerContent), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(out, p); err != nil {
			t.Fatal(err)
		}
	}},
}

// readAll does everything a reader does with a medium: open it, list and scan it, read every
// bundle of both chains and their heads. It returns the first error and the warnings.
func readAll(dir string) (warnings []media.Warning, err error) {
	m, err := media.Open(dir)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	warn := func(w media.Warning) { warnings = append(warnings, w) }
	if err := m.Unknown(warn); err != nil {
		return warnings, err
	}
	if _, err := m.ByokCopies(); err != nil {
		return warnings, err
	}
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		if _, _, err := m.Head(c); err != nil {
			return warnings, err
		}
		for e, err := range m.Entries(c, 1, warn) {
			if err != nil {
				return warnings, err
			}
			if _, err := m.Read(e); err != nil {
				return warnings, err
			}
		}
	}
	return warnings, nil
}

func TestHostileFixedNames(t *testing.T) {
	places := []struct {
		name string
		rel  string // "" is the medium folder itself
		// notMedia: the medium is refused as a whole; otherwise reading it fails with
		// ErrBadType or warns about the place.
		notMedia bool
	}{
		{"medium folder", "", true},
		{"marker", media.MarkerName, true},
		{"offline", "offline", false},
		{"online", "online", false},
		{"byok", media.ByokDir, false},
		{"shard", "offline/0000000000000", false},
		{"bundle", "online/0000000000000/" + media.Name(1, testID), false},
		{"byok copy", "byok/web-1.byok", false},
	}
	for _, pl := range places {
		for _, k := range hostileKinds {
			t.Run(pl.name+"/"+k.name, func(t *testing.T) {
				c := ceremony(t, true)
				dir := c.M.Dir()
				c.Close()
				p := filepath.Join(dir, filepath.FromSlash(pl.rel))
				if pl.rel == "" {
					dir = filepath.Join(t.TempDir(), "stick")
					p = dir
				} else {
					if err := os.RemoveAll(p); err != nil {
						t.Fatal(err)
					}
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				k.make(t, p)
				ws, err := readAll(dir)
				switch {
				case pl.notMedia:
					if !errors.Is(err, media.ErrNotMedia) {
						t.Fatalf("reading a medium with %s as %s = %v, want ErrNotMedia", k.name, pl.name, err)
					}
				case err != nil:
					if !errors.Is(err, media.ErrBadType) {
						t.Fatalf("reading a medium with %s as %s = %v, want ErrBadType", k.name, pl.name, err)
					}
				default:
					found := false
					for _, w := range ws {
						found = found || w.Path == pl.rel
					}
					if !found {
						t.Fatalf("reading a medium with %s as %s: no error, warnings %v; want one about %s", k.name, pl.name, ws, pl.rel)
					}
				}
			})
		}
	}
}

// An oversized marker (sparse: it costs the attacker nothing) is refused after reading at
// most its 21 bytes and one more.
func TestOversizedMarker(t *testing.T) {
	for _, size := range []int64{int64(len(media.MarkerContent)) + 1, 256 << 20} {
		dir := t.TempDir()
		f, err := os.Create(filepath.Join(dir, media.MarkerName))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(media.MarkerContent); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = media.Open(dir)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, media.ErrNotMedia) {
			t.Errorf("Open() with a marker of %d bytes = %v, want ErrNotMedia", size, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
			t.Errorf("Open() with a marker of %d bytes allocated %d bytes, want at most 1 MiB", size, got)
		}
	}
}

// The marker and the folder itself are read from what was opened, not through a name that
// may be a link: a medium whose marker is a link to a good marker elsewhere is refused.
func TestMarkerLinkRefused(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "marker")
	if err := os.WriteFile(out, []byte(media.MarkerContent), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out, filepath.Join(dir, media.MarkerName)); err != nil {
		t.Fatal(err)
	}
	if _, err := media.Open(dir); !errors.Is(err, media.ErrNotMedia) {
		t.Errorf("Open() with a linked marker = %v, want ErrNotMedia", err)
	}
}
