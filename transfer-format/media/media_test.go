package media_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

var testID = func() bundle.ID {
	id, err := bundle.ParseID("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	if err != nil {
		panic(err)
	}
	return id
}()

func TestNameAndPath(t *testing.T) {
	tests := []struct {
		chain bundle.Chain
		seq   uint64
		path  string
	}{
		{bundle.ChainOffline, 1, "offline/0000000000000/0000000000000001-" + testID.String() + ".bundle"},
		{bundle.ChainOffline, 999, "offline/0000000000000/0000000000000999-" + testID.String() + ".bundle"},
		{bundle.ChainOnline, 1000, "online/0000000000001/0000000000001000-" + testID.String() + ".bundle"},
		{bundle.ChainOnline, 123_456_789, "online/0000000123456/0000000123456789-" + testID.String() + ".bundle"},
		{bundle.ChainOffline, bundle.MaxSeq, "offline/9999999999999/9999999999999999-" + testID.String() + ".bundle"},
	}
	for _, tt := range tests {
		if got := media.Path(tt.chain, tt.seq, testID); got != tt.path {
			t.Errorf("Path(%s, %d) = %s, want %s", tt.chain, tt.seq, got, tt.path)
		}
		name := media.Name(tt.seq, testID)
		if name != path.Base(tt.path) {
			t.Errorf("Name(%d) = %s, want %s", tt.seq, name, path.Base(tt.path))
		}
		seq, id, err := media.ParseName(name)
		if err != nil || seq != tt.seq || id != testID {
			t.Errorf("ParseName(%s) = %d, %s, %v", name, seq, id.Short(), err)
		}
	}
}

func TestParseNameRefuses(t *testing.T) {
	good := media.Name(4, testID)
	tests := []struct{ name, in string }{
		{"seq 0", "0000000000000000-" + testID.String() + ".bundle"},
		{"15 digits", good[1:]},
		{"17 digits", "0" + good},
		{"letter in seq", "000000000000000a-" + testID.String() + ".bundle"},
		{"sign in seq", "+000000000000004-" + testID.String() + ".bundle"},
		{"space in seq", " 000000000000004-" + testID.String() + ".bundle"},
		{"uppercase hex", good[:17] + strings.ToUpper(good[17:81]) + ".bundle"},
		{"63 hex digits", good[:80] + ".bundle"},
		{"underscore separator", strings.Replace(good, "-", "_", 1)},
		{"other extension", strings.TrimSuffix(good, ".bundle") + ".bundlx"},
		{"no extension", strings.TrimSuffix(good, ".bundle")},
		{"temporary file", ".tmp-0123456789ab-" + good},
		{"dot-dot prefix", ".." + good[2:]},
		{"dot-dot suffix", good[:len(good)-2] + ".."},
		{"slash", good[:20] + "/" + good[21:]},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := media.ParseName(tt.in)
			var pe *bundle.ParseError
			if !errors.As(err, &pe) {
				t.Errorf("ParseName(%q) = %v, want a *ParseError", tt.in, err)
			}
		})
	}
}

func TestOpenAndInit(t *testing.T) {
	t.Run("init creates the marker", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "stick")
		if _, err := media.Init(dir); !errors.Is(err, media.ErrNotMedia) {
			t.Fatalf("Init(missing folder) = %v, want ErrNotMedia", err)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Init(missing folder) created it: %v", err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		m, err := media.Init(dir)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		b, err := os.ReadFile(filepath.Join(dir, media.MarkerName))
		if err != nil || string(b) != media.MarkerContent {
			t.Fatalf("marker = %q, %v; want %q", b, err, media.MarkerContent)
		}
		// Init on an existing medium opens it.
		m, err = media.Init(dir)
		if err != nil {
			t.Fatalf("Init(existing) = %v", err)
		}
		m.Close()
	})
	tests := []struct {
		name    string
		prepare func(dir string) error
		wantErr error // nil: opens
	}{
		{"empty folder", func(string) error { return nil }, media.ErrNotMedia},
		{"medium", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, media.MarkerName), []byte(media.MarkerContent), 0o444)
		}, nil},
		{"folder with other files", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "photo.jpg"), []byte("x"), 0o644)
		}, media.ErrNotMedia},
		{"marker of another version", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, media.MarkerName), []byte("airgap-byok media v2\n"), 0o444)
		}, media.ErrNotMedia},
		{"marker without newline", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, media.MarkerName), []byte(strings.TrimSpace(media.MarkerContent)), 0o444)
		}, media.ErrNotMedia},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tt.prepare(dir); err != nil {
				t.Fatal(err)
			}
			m, err := media.Open(dir)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Open() = %v", err)
				}
				if m.Dir() != dir {
					t.Errorf("Dir() = %s, want %s", m.Dir(), dir)
				}
				m.Close()
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Open() = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if _, err := media.Open(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, media.ErrNotMedia) {
		t.Errorf("Open(missing) = %v, want ErrNotMedia", err)
	}
}

// ceremony returns a ceremony (written through the media package unless fast) with policy
// v1 in force.
func ceremony(t *testing.T, fast bool) *chaintest.Ceremony {
	t.Helper()
	c, err := chaintest.New(chaintest.Config{Dir: filepath.Join(t.TempDir(), "m"), FastWrite: fast})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Setup(); err != nil {
		t.Fatal(err)
	}
	return c
}

// next seals the next offline bundle without writing it.
func next(t *testing.T, c *chaintest.Ceremony) *bundle.Bundle {
	t.Helper()
	b, err := c.Append(bundle.ChainOffline, c.Approval(c.PolicyID, bundle.KindPolicy, 2), chaintest.NoWrite())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// names lists a folder.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWrite(t *testing.T) {
	c := ceremony(t, false)
	b := next(t, c)
	e, err := c.M.Write(b)
	if err != nil {
		t.Fatalf("Write() = %v", err)
	}
	want := media.Entry{Chain: bundle.ChainOffline, Seq: b.Header.Seq, ID: b.ID(), Path: media.Path(bundle.ChainOffline, b.Header.Seq, b.ID())}
	if e != want {
		t.Errorf("Write() = %+v, want %+v", e, want)
	}
	p := filepath.Join(c.M.Dir(), filepath.FromSlash(e.Path))
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, b.Marshal()) {
		t.Fatalf("file holds %d bytes (%v), want the bundle", len(got), err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("bundle file mode %v (%v), want read-only", fi.Mode(), err)
	}
	if r, err := c.M.Read(e); err != nil || !bytes.Equal(r, got) {
		t.Errorf("Read() = %d bytes, %v", len(r), err)
	}
	// A bundle is written once.
	if _, err := c.M.Write(b); !errors.Is(err, media.ErrExists) {
		t.Errorf("Write(again) = %v, want ErrExists", err)
	}
	if n := names(t, filepath.Dir(p)); slices.ContainsFunc(n, func(s string) bool { return strings.HasPrefix(s, ".tmp-") }) {
		t.Errorf("temporary files left: %v", n)
	}
}

func TestWriteAll(t *testing.T) {
	c := ceremony(t, false)
	off := next(t, c)
	on, err := c.Append(bundle.ChainOnline, c.OfferPayload("v2"), chaintest.NoWrite())
	if err != nil {
		t.Fatal(err)
	}
	var points []string
	media.Hook = func(p string) { points = append(points, p) }
	defer func() { media.Hook = nil }()
	es, err := c.M.WriteAll([]*bundle.Bundle{off, on})
	media.Hook = nil
	if err != nil {
		t.Fatalf("WriteAll() = %v", err)
	}
	want := []string{"tmp-written", "renamed", "tmp-written", "renamed", "synced", "synced"}
	if !slices.Equal(points, want) {
		t.Errorf("WriteAll() passed %v, want %v", points, want)
	}
	for i, b := range []*bundle.Bundle{off, on} {
		if es[i].ID != b.ID() || es[i].Path != media.Path(b.Header.Chain, b.Header.Seq, b.ID()) {
			t.Errorf("WriteAll()[%d] = %+v", i, es[i])
		}
		if got, err := c.M.Read(es[i]); err != nil || !bytes.Equal(got, b.Marshal()) {
			t.Errorf("Read(%s) = %d bytes, %v; want the bundle", es[i].Path, len(got), err)
		}
		if n := names(t, filepath.Dir(filepath.Join(c.M.Dir(), filepath.FromSlash(es[i].Path)))); slices.ContainsFunc(n, func(s string) bool { return strings.HasPrefix(s, ".tmp-") }) {
			t.Errorf("temporary files left: %v", n)
		}
	}
	if _, err := c.M.WriteAll([]*bundle.Bundle{on}); !errors.Is(err, media.ErrExists) {
		t.Errorf("WriteAll(again) = %v, want ErrExists", err)
	}
}

func TestWriteByoks(t *testing.T) {
	c := ceremony(t, true)
	files := []media.ByokFile{{Name: "a-1.byok", Data: []byte("one")}, {Name: "b-2.byok", Data: []byte("two")}}
	var points []string
	media.Hook = func(p string) { points = append(points, p) }
	defer func() { media.Hook = nil }()
	ps, err := c.M.WriteByoks(files)
	media.Hook = nil
	if err != nil || len(ps) != 2 || ps[0] != "byok/a-1.byok" || ps[1] != "byok/b-2.byok" {
		t.Fatalf("WriteByoks() = %q, %v", ps, err)
	}
	if want := []string{"tmp-written", "renamed", "tmp-written", "renamed", "synced", "synced"}; !slices.Equal(points, want) {
		t.Errorf("WriteByoks() passed %v, want %v", points, want)
	}
	for _, f := range files {
		if got, err := os.ReadFile(filepath.Join(c.M.Dir(), "byok", f.Name)); err != nil || !bytes.Equal(got, f.Data) {
			t.Errorf("%s = %q, %v", f.Name, got, err)
		}
	}
	// One file there already: nothing is written.
	if _, err := c.M.WriteByoks([]media.ByokFile{{Name: "c-3.byok", Data: []byte("three")}, files[1]}); !errors.Is(err, media.ErrExists) {
		t.Errorf("WriteByoks(one existing) = %v, want ErrExists", err)
	}
	if _, err := os.Stat(filepath.Join(c.M.Dir(), "byok", "c-3.byok")); err == nil {
		t.Error("WriteByoks wrote c-3.byok beside an existing file")
	}
	if _, err := c.M.WriteByoks([]media.ByokFile{{Name: "../x.byok", Data: []byte("x")}}); err == nil {
		t.Error("WriteByoks(../x.byok) succeeded")
	}
	if ws, err := c.M.Scan(); err != nil || len(ws) != 0 {
		t.Errorf("Scan() = %v, %v; want no warnings", ws, err)
	}
}

// makeReadOnly makes dir refuse new files, for root too (chattr +i), or skips the test.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	} else {
		chattr, err := exec.LookPath("chattr")
		if err != nil {
			t.Skip("running as root without chattr: cannot make a folder read-only")
		}
		if out, err := exec.Command(chattr, "+i", dir).CombinedOutput(); err != nil {
			t.Skipf("running as root and chattr +i fails (%v: %s): cannot make a folder read-only", err, out)
		}
		t.Cleanup(func() { exec.Command(chattr, "-i", dir).Run() })
	}
	probe := filepath.Join(dir, "probe")
	if f, err := os.Create(probe); err == nil {
		f.Close()
		os.Remove(probe)
		t.Skip("the folder still accepts new files")
	}
}

func TestWriteFailureLeavesNoFile(t *testing.T) {
	t.Run("read-only folder", func(t *testing.T) {
		c := ceremony(t, false)
		b := next(t, c)
		shard := filepath.Dir(filepath.Join(c.M.Dir(), filepath.FromSlash(media.Path(bundle.ChainOffline, b.Header.Seq, b.ID()))))
		before := names(t, shard)
		makeReadOnly(t, shard)
		if _, err := c.M.Write(b); err == nil {
			t.Fatal("Write() into a read-only folder succeeded")
		}
		if after := names(t, shard); !slices.Equal(after, before) {
			t.Errorf("folder holds %v after a failed write, want %v", after, before)
		}
	})
	t.Run("final name appears during the write", func(t *testing.T) {
		c := ceremony(t, false)
		b := next(t, c)
		final := filepath.Join(c.M.Dir(), filepath.FromSlash(media.Path(bundle.ChainOffline, b.Header.Seq, b.ID())))
		media.Hook = func(point string) {
			if point == "tmp-written" {
				os.WriteFile(final, []byte("another writer"), 0o444)
			}
		}
		defer func() { media.Hook = nil }()
		if _, err := c.M.Write(b); !errors.Is(err, media.ErrExists) {
			t.Fatalf("Write() = %v, want ErrExists", err)
		}
		if got, _ := os.ReadFile(final); string(got) != "another writer" {
			t.Errorf("the existing file was replaced: %q", got)
		}
		for _, n := range names(t, filepath.Dir(final)) {
			if strings.HasPrefix(n, ".tmp-") {
				t.Errorf("temporary file %s left behind", n)
			}
		}
	})
	t.Run("medium changes what was written", func(t *testing.T) {
		c := ceremony(t, false)
		b := next(t, c)
		final := filepath.Join(c.M.Dir(), filepath.FromSlash(media.Path(bundle.ChainOffline, b.Header.Seq, b.ID())))
		media.Hook = func(point string) {
			if point == "synced" {
				d, _ := os.ReadFile(final)
				d[len(d)-1] ^= 1
				os.WriteFile(final, d, 0o444)
			}
		}
		defer func() { media.Hook = nil }()
		var rb *media.ReadBackError
		if _, err := c.M.Write(b); !errors.As(err, &rb) {
			t.Fatalf("Write() = %v, want a ReadBackError", err)
		}
	})
	t.Run("crash before the rename", func(t *testing.T) {
		c := ceremony(t, false)
		b := next(t, c)
		final := filepath.Join(c.M.Dir(), filepath.FromSlash(media.Path(bundle.ChainOffline, b.Header.Seq, b.ID())))
		var tmps []string
		media.Hook = func(point string) {
			if point == "tmp-written" {
				tmps, _ = filepath.Glob(filepath.Join(filepath.Dir(final), ".tmp-*"))
				panic("crash")
			}
		}
		func() {
			defer func() { recover() }()
			c.M.Write(b)
		}()
		media.Hook = nil
		if len(tmps) != 1 || !strings.HasSuffix(tmps[0], "-"+filepath.Base(final)) {
			t.Fatalf("at the hook, temporary files %v, want one named after the bundle", tmps)
		}
		if _, err := os.Stat(final); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the bundle exists after a crash before the rename: %v", err)
		}
	})
}

func TestWarningsAndLeftovers(t *testing.T) {
	c := ceremony(t, true)
	dir := c.M.Dir()
	shard := filepath.Join(dir, "offline", "0000000000000")
	leftover := ".tmp-0123456789ab-" + media.Name(9, testID)
	files := map[string]string{
		filepath.Join(shard, leftover):                      "partial",
		filepath.Join(shard, "notes.txt"):                   "x",
		filepath.Join(shard, media.Name(1500, testID)):      "wrong shard", // belongs in 0000000000001
		filepath.Join(dir, "offline", "README"):             "x",
		filepath.Join(dir, "online", "0000000000000", "x"):  "x",
		filepath.Join(dir, "stray.txt"):                     "x",
		filepath.Join(dir, media.ByokDir, "key-1.byok"):     "{}",
		filepath.Join(dir, media.ByokDir, "key-1.byok.bak"): "{}",
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A folder named like a bundle, and a shard-like folder that is not 13 digits.
	if err := os.Mkdir(filepath.Join(shard, media.Name(7, testID)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "offline", "000000000001"), 0o755); err != nil {
		t.Fatal(err)
	}
	ws, err := c.M.Scan()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, w := range ws {
		got[w.Path] = w.Leftover
		if w.Reason == "" || !strings.Contains(w.String(), w.Path) {
			t.Errorf("warning %+v has no reason", w)
		}
	}
	want := map[string]bool{
		"offline/0000000000000/" + leftover:                 true,
		"offline/0000000000000/notes.txt":                   false,
		"offline/0000000000000/" + media.Name(1500, testID): false,
		"offline/0000000000000/" + media.Name(7, testID):    false,
		"offline/README":                           false,
		"offline/000000000001":                     false,
		"online/0000000000000/x":                   false,
		"stray.txt":                                false,
		path.Join(media.ByokDir, "key-1.byok.bak"): false,
	}
	for p, leftover := range want {
		l, ok := got[p]
		if !ok {
			t.Errorf("Scan() does not report %s", p)
		} else if l != leftover {
			t.Errorf("Scan() reports %s with Leftover = %v, want %v", p, l, leftover)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("Scan() reports %s, which is part of the medium", p)
		}
	}
	// Entries yields the real bundles only and reports the rest.
	var seqs []uint64
	var warned []string
	for e, err := range c.M.Entries(bundle.ChainOffline, 1, func(w media.Warning) { warned = append(warned, w.Path) }) {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, e.Seq)
	}
	if !slices.Equal(seqs, []uint64{1, 2, 3}) {
		t.Errorf("Entries() = %v, want [1 2 3]", seqs)
	}
	if len(warned) != 6 {
		t.Errorf("Entries() warned about %v, want the 6 offline files that are not bundles", warned)
	}
}

func TestSymlinksRefused(t *testing.T) {
	c := ceremony(t, true)
	dir := c.M.Dir()
	shard := filepath.Join(dir, "offline", "0000000000000")
	// A link named like the next bundle, to a real bundle file.
	target := names(t, shard)[0]
	link := media.Name(4, testID)
	if err := os.Symlink(target, filepath.Join(shard, link)); err != nil {
		t.Fatal(err)
	}
	// A shard folder that is a link to a folder outside the medium.
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, media.Name(1000, testID)), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "offline", "0000000000001")); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	var warned []string
	for e, err := range c.M.Entries(bundle.ChainOffline, 1, func(w media.Warning) { warned = append(warned, w.Path) }) {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, e.Seq)
	}
	if !slices.Equal(seqs, []uint64{1, 2, 3}) {
		t.Errorf("Entries() = %v, want [1 2 3]", seqs)
	}
	if !slices.Contains(warned, "offline/0000000000000/"+link) || !slices.Contains(warned, "offline/0000000000001") {
		t.Errorf("Entries() warned about %v, want both links", warned)
	}
	// Reading a link by name is refused too.
	e := media.Entry{Chain: bundle.ChainOffline, Seq: 4, ID: testID, Path: "offline/0000000000000/" + link}
	if b, err := c.M.Read(e); err == nil {
		t.Errorf("Read(link) = %d bytes, want an error", len(b))
	}
	if b, err := c.M.ReadFile("offline/0000000000001/"+media.Name(1000, testID), 10); err == nil {
		t.Errorf("ReadFile(through a linked folder) = %q, want an error", b)
	}
	if _, ok, err := c.M.Head(bundle.ChainOffline); err != nil || !ok {
		t.Fatalf("Head() = %v, %v", ok, err)
	}
	if h, _, _ := c.M.Head(bundle.ChainOffline); h.Seq != 3 {
		t.Errorf("Head() = seq %d, want 3 (links are not bundles)", h.Seq)
	}
}

func TestReadFileLimits(t *testing.T) {
	c := ceremony(t, true)
	dir := c.M.Dir()
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 101), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.M.ReadFile("big", 100); !errors.Is(err, bundle.ErrTooLarge) {
		t.Errorf("ReadFile(101 bytes, limit 100) = %v, want ErrTooLarge", err)
	}
	if b, err := c.M.ReadFile("big", 101); err != nil || len(b) != 101 {
		t.Errorf("ReadFile(101 bytes, limit 101) = %d bytes, %v", len(b), err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := c.M.ReadFile("empty", 100); err != nil || len(b) != 0 {
		t.Errorf("ReadFile(empty) = %d bytes, %v", len(b), err)
	}
	if _, err := c.M.ReadFile("offline", 100); err == nil {
		t.Error("ReadFile(folder) succeeded")
	}
	if _, err := c.M.ReadFile("../outside", 100); err == nil {
		t.Error("ReadFile(../outside) succeeded")
	}
	big := media.Entry{Chain: bundle.ChainOffline, Seq: 9, ID: testID, Path: "offline/0000000000000/" + media.Name(9, testID)}
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(big.Path)), make([]byte, bundle.MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	var pe *bundle.ParseError
	if _, err := c.M.Read(big); !errors.Is(err, bundle.ErrTooLarge) || !errors.As(err, &pe) {
		t.Errorf("Read(MaxFileSize + 1) = %v, want a ParseError wrapping ErrTooLarge", err)
	}
}

// TestEntriesAcrossShards writes a chain of 2001 bundles, which fills shard 0 (seq 1-999)
// and shard 1 (1000-1999) and starts shard 2.
func TestEntriesAcrossShards(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2001 bundles")
	}
	c := ceremony(t, true) // offline seq 1-3
	const last = 2001
	for c.Heads.Offline.Seq < last {
		if _, err := c.Append(bundle.ChainOffline, c.Approval(c.PolicyID, bundle.KindPolicy, 2)); err != nil {
			t.Fatal(err)
		}
	}
	dir := c.M.Dir()
	if got := names(t, filepath.Join(dir, "offline")); !slices.Equal(got, []string{"0000000000000", "0000000000001", "0000000000002"}) {
		t.Fatalf("shards %v", got)
	}
	if n := len(names(t, filepath.Join(dir, "offline", "0000000000001"))); n != 1000 {
		t.Errorf("shard 1 holds %d bundles, want 1000", n)
	}
	m, err := media.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, from := range []uint64{1, 998, 999, 1000, 1001, 1999, 2000, 2001, 2002, 5000} {
		want := uint64(max(from, 1))
		n := 0
		for e, err := range m.Entries(bundle.ChainOffline, from, nil) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Seq != want {
				t.Fatalf("Entries(from %d) yields seq %d, want %d", from, e.Seq, want)
			}
			if e.Path != media.Path(e.Chain, e.Seq, e.ID) {
				t.Fatalf("entry path %s", e.Path)
			}
			want++
			n++
		}
		if wantN := max(0, last-int(from)+1); n != wantN {
			t.Errorf("Entries(from %d) yields %d bundles, want %d", from, n, wantN)
		}
	}
	// Stopping early stops the listing.
	n := 0
	for range m.Entries(bundle.ChainOffline, 1, nil) {
		n++
		if n == 1500 {
			break
		}
	}
	if n != 1500 {
		t.Errorf("early break after %d entries", n)
	}
	h, ok, err := m.Head(bundle.ChainOffline)
	if err != nil || !ok || h.Seq != last || h.ID != c.Heads.Offline.ID {
		t.Errorf("Head() = %d %s, %v, %v; want %d %s", h.Seq, h.ID.Short(), ok, err, last, c.Heads.Offline.ID.Short())
	}
	for _, seq := range []uint64{1, 999, 1000, 2001} {
		e, err := m.Find(bundle.ChainOffline, seq)
		if err != nil || e.Seq != seq {
			t.Errorf("Find(%d) = %d, %v", seq, e.Seq, err)
		}
	}
	for _, seq := range []uint64{2002, 1_000_000} {
		if _, err := m.Find(bundle.ChainOffline, seq); !errors.Is(err, media.ErrNotFound) {
			t.Errorf("Find(%d) = %v, want ErrNotFound", seq, err)
		}
	}
}

func TestEmptyChains(t *testing.T) {
	m, err := media.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, ok, err := m.Head(bundle.ChainOnline); ok || err != nil {
		t.Errorf("Head(empty) = %v, %v; want false, nil", ok, err)
	}
	for e, err := range m.Entries(bundle.ChainOnline, 1, nil) {
		t.Errorf("Entries(empty) yields %+v, %v", e, err)
	}
	if _, err := m.Find(bundle.ChainOnline, 1); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("Find(empty) = %v, want ErrNotFound", err)
	}
	if ws, err := m.Scan(); err != nil || len(ws) != 0 {
		t.Errorf("Scan(empty) = %v, %v", ws, err)
	}
}

func TestDuplicate(t *testing.T) {
	c := ceremony(t, true)
	// A second, different bundle at offline seq 3.
	alt, err := c.Append(bundle.ChainOffline, c.Approval(c.PolicyID, bundle.KindPolicy, 0, 2), chaintest.NoWrite(),
		chaintest.Mutate(func(d *bundle.Draft) { d.Seq, d.Prev = 3, c.Written[2].ID() }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.M.Write(alt); err != nil {
		t.Fatal(err)
	}
	orig := c.Heads.Offline.ID
	e, err := c.M.Find(bundle.ChainOffline, 3)
	var de *media.DuplicateError
	if !errors.As(err, &de) {
		t.Fatalf("Find(3) = %v, want a DuplicateError", err)
	}
	ids := []bundle.ID{orig, alt.ID()}
	slices.SortFunc(ids, func(a, b bundle.ID) int { return bytes.Compare(a[:], b[:]) })
	if de.Chain != bundle.ChainOffline || de.Seq != 3 || !slices.Equal(de.IDs, ids) || e.ID != ids[0] {
		t.Errorf("DuplicateError = %+v, entry %s; want seq 3 and both IDs in name order", de, e.ID.Short())
	}
	if !strings.Contains(de.Error(), ids[0].Short()) || !strings.Contains(de.Error(), ids[1].Short()) {
		t.Errorf("DuplicateError.Error() = %q does not name both bundles", de.Error())
	}
	var got []bundle.ID
	for e, err := range c.M.Entries(bundle.ChainOffline, 3, nil) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.ID)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("Entries(from 3) = %v, want both bundles at seq 3", got)
	}
}

func TestWriteByok(t *testing.T) {
	c := ceremony(t, true)
	off, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.PackagePayload(off.ID(), payload.ECP256, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.M.WriteByok("key-1-7KQ2M9XD.byok", k.BYOK)
	if err != nil || p != "byok/key-1-7KQ2M9XD.byok" {
		t.Fatalf("WriteByok() = %q, %v", p, err)
	}
	if got, err := os.ReadFile(filepath.Join(c.M.Dir(), "byok", "key-1-7KQ2M9XD.byok")); err != nil || !bytes.Equal(got, k.BYOK) {
		t.Errorf("byok file = %d bytes, %v", len(got), err)
	}
	if _, err := c.M.WriteByok("key-1-7KQ2M9XD.byok", k.BYOK); !errors.Is(err, media.ErrExists) {
		t.Errorf("WriteByok(again) = %v, want ErrExists", err)
	}
	for _, bad := range []string{"", "key.json", ".hidden.byok", "../key.byok", "a/b.byok", `a\b.byok`} {
		if _, err := c.M.WriteByok(bad, k.BYOK); err == nil {
			t.Errorf("WriteByok(%q) succeeded", bad)
		}
	}
	if ws, err := c.M.Scan(); err != nil || len(ws) != 0 {
		t.Errorf("Scan() = %v, %v; want no warnings", ws, err)
	}
}

// ByokCopies lists the plain copies in byok/: regular .byok files only, not leftovers, links,
// folders or other names.
func TestByokCopies(t *testing.T) {
	c := ceremony(t, true)
	if names, err := c.M.ByokCopies(); err != nil || names != nil {
		t.Fatalf("ByokCopies() without byok/ = %v, %v; want none", names, err)
	}
	dir := filepath.Join(c.M.Dir(), media.ByokDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"b.byok", "a.byok", "notes.txt", ".tmp-0123456789ab-x.byok"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "folder.byok"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "a.byok"), filepath.Join(dir, "link.byok")); err != nil {
		t.Fatal(err)
	}
	names, err := c.M.ByokCopies()
	if err != nil || !slices.Equal(names, []string{"a.byok", "b.byok"}) {
		t.Errorf("ByokCopies() = %q, %v; want [a.byok b.byok]", names, err)
	}
}

// TestReadFileConcurrent reads files of more folders than the medium keeps open, from many
// goroutines at once: every read must succeed while folders are opened and closed.
func TestReadFileConcurrent(t *testing.T) {
	m, err := media.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var paths []string
	for i := range 20 {
		p := fmt.Sprintf("offline/%013d/f", i)
		if err := os.MkdirAll(filepath.Join(m.Dir(), filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(m.Dir(), p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				p := paths[(g*7+i)%len(paths)]
				b, err := m.ReadFile(p, 100)
				if err != nil || string(b) != p {
					t.Errorf("ReadFile(%s) = %q, %v", p, b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestInitOnFolderHoldingOnlyTheLock(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, media.LockName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := media.Init(dir)
	if err != nil {
		t.Fatalf("Init() on a folder with only the lock file = %v", err)
	}
	m.Close()
	if b, err := os.ReadFile(filepath.Join(dir, media.MarkerName)); err != nil || string(b) != media.MarkerContent {
		t.Fatalf("marker = %q, %v", b, err)
	}
}

// BenchmarkRead reads every bundle of a chain of 1000 bundles, as a replay does.
func BenchmarkRead(b *testing.B) {
	c, err := chaintest.New(chaintest.Config{Dir: filepath.Join(b.TempDir(), "m"), FastWrite: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Setup(); err != nil {
		b.Fatal(err)
	}
	for c.Heads.Offline.Seq < 1000 {
		if _, err := c.Append(bundle.ChainOffline, c.Approval(c.PolicyID, bundle.KindPolicy, 2)); err != nil {
			b.Fatal(err)
		}
	}
	n := 0
	for b.Loop() {
		for e, err := range c.M.Entries(bundle.ChainOffline, 1, nil) {
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.M.Read(e); err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/bundle")
}
