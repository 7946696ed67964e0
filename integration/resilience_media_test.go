package integration_test

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/fstest"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// fill writes zeros into a file in dir until the file system is full, then gives back free
// pages of 4 KiB.
func fill(t testing.TB, dir string, free int) {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	n := int64(0)
	for {
		if _, err := f.Write(page); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
		n += int64(len(page))
	}
	if err := f.Truncate(max(0, n-int64(free)*4096)); err != nil {
		t.Fatal(err)
	}
}

// leftovers lists the files of a medium that a reader ignores: interrupted writes' temporary
// files and anything not named as a bundle, a .byok copy, the marker or the lock.
func leftovers(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(d.Name(), ".tmp-") {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// intact checks that every file on a medium is whole: each bundle parses, each .byok copy is
// complete JSON; and that the medium's chains end where want says, or one bundle later if
// grown is set.
func intact(t testing.TB, dir string, want map[bundle.Chain]uint64, grown bool) {
	t.Helper()
	mv := readMedium(t, dir) // fails on a bundle that does not parse
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		if got := mv.heads[c]; got != want[c] && !(grown && got == want[c]+1) {
			t.Errorf("the medium's %s chain ends at %d, want %d", c, got, want[c])
		}
	}
	byok, _ := filepath.Glob(filepath.Join(dir, "byok", "*.byok"))
	for _, p := range byok {
		b, err := os.ReadFile(p)
		if err != nil || !json.Valid(b) {
			t.Errorf("%s is not a whole .byok file (%d bytes, %v)", p, len(b), err)
		}
	}
}

// testFullMedium fills the medium (a small tmpfs) so that package, then upload, cannot write:
// each exits 9 and leaves no half-written file, and once space is freed the rerun converges
// without importing any key twice. Package is tried with no space left and with room for the
// bundle but not its plain .byok copy.
func testFullMedium(t *testing.T, s *resSuite) {
	base := newResRig(t, s, "full")
	firstPackage, upload := stepIndex("package "+resKeys[0].ident), stepIndex("upload")
	base.steps(0, firstPackage)

	for _, tt := range []struct {
		name  string
		step  int
		free  int // pages left free
		extra []string
	}{
		{"package/no-space", firstPackage, 0, nil},
		{"package/room-for-the-bundle", firstPackage, 1, nil},
		{"upload/no-space", upload, 0, nil},
		{"upload/no-space/one-at-a-time", upload, 0, []string{"--concurrency", "1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := base.fork(t, "full-"+strings.ReplaceAll(tt.name, "/", "-"))
			r.steps(firstPackage, tt.step)
			r.moveMedium(filepath.Join(fstest.Full(t, 1<<20), "usb"))
			fill(t, filepath.Dir(r.medium()), tt.free)
			heads := readMedium(t, r.medium()).heads

			st := resCeremony[tt.step]
			args := append(st.args(r), tt.extra...)
			res := r.run(st.station, "", args...)
			switch {
			case res.code != exitcode.Media || !strings.Contains(res.stderr, "no space left on device"):
				t.Fatalf("%s on a full medium: exit %d, want %d (no space left)\n%s", st.name, res.code, exitcode.Media, res.stderr)
			}
			intact(t, r.medium(), heads, tt.free > 0)
			if tmp := leftovers(t, r.medium()); len(tmp) > 0 {
				t.Errorf("the failed write left %v", tmp)
			}
			// The auditor still reads the stick; the stations see what is pending.
			if rep := r.audit(0, offlineStation); rep.Verdict != "PASS" {
				t.Errorf("audit of the full medium: %+v", rep)
			}

			if err := os.Remove(filepath.Join(filepath.Dir(r.medium()), "filler")); err != nil {
				t.Fatal(err)
			}
			res = r.run(st.station, "", args...)
			if res.code != 0 {
				t.Fatalf("%s after freeing space: exit %d\n%s", st.name, res.code, res.stderr)
			}
			if st.learn != nil {
				st.learn(r)
			}
			r.steps(tt.step+1, len(resCeremony))
			r.converged()
		})
	}
}

// readOnly makes dir and everything under it read-only until the end of the test: a
// read-only bind mount as root, as a write-protected stick; permission bits otherwise.
func readOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() == 0 {
		fstest.ReadOnly(t, dir)
		return
	}
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if err := os.Chmod(d, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range dirs {
			os.Chmod(d, 0o755)
		}
	})
}

// writable undoes readOnly before the end of the test.
func writable(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() == 0 {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Fatalf("umount %s: %v: %s", dir, err, out)
		}
		return
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testReadOnlyMedium write-protects the medium of a ceremony ready for upload: every command
// that writes exits 9 and changes nothing, in Key Vault either; verify (which changes only its
// own ledger), audit and status still work; once the stick is writable again the ceremony
// finishes.
func testReadOnlyMedium(t *testing.T, s *resSuite) {
	r := newResRig(t, s, "readonly")
	upload := stepIndex("upload")
	r.steps(0, upload)
	r.must(0, offlineStation, "keygen", "--type", "EC-P256", "--ident", "third")
	readOnly(t, r.medium())

	// sync and kek accept write only their ledger: with no interrupted write to finish, a
	// read-only medium is enough for them, and the offline ledger is all they change.
	before := rigState(t, r.dir)
	for _, args := range [][]string{{"sync"}, {"kek", "accept"}} {
		if res := r.run(offlineStation, "", args...); res.code != 0 {
			t.Errorf("byok-offline %s on a read-only medium: exit %d, want 0\n%s", strings.Join(args, " "), res.code, res.stderr)
		}
	}
	for _, f := range changed(before, rigState(t, r.dir)) {
		if f != filepath.Join(offlineStation+"-state", "ledger.db") {
			t.Errorf("sync and kek accept on a read-only medium changed %s", f)
		}
	}

	// verify records in its ledger what it verified (so that an older copy is refused
	// later): the online ledger is all it changes.
	before = rigState(t, r.dir)
	if res := r.run(onlineStation, "", "verify"); res.code != 0 {
		t.Errorf("byok-online verify on a read-only medium: exit %d, want 0\n%s", res.code, res.stderr)
	}
	for _, f := range changed(before, rigState(t, r.dir)) {
		if f != filepath.Join(onlineStation+"-state", "ledger.db") {
			t.Errorf("verify on a read-only medium changed %s", f)
		}
	}

	before = rigState(t, r.dir)
	for _, c := range []struct {
		station string
		args    []string
		want    int
	}{
		{onlineStation, []string{"upload"}, exitcode.Media},
		{onlineStation, []string{"kek", "create", "--vault", s.vault.URL(), "--name", r.branch + "-kek2", "--size", "3072"}, exitcode.Media},
		{offlineStation, []string{"package", "--key", "third", "--vault", s.vault.URL(), "--name", r.branch + "-third"}, exitcode.Media},
		{offlineStation, []string{"approve", "--package", r.packages[resKeys[0].ident], "--custodian", "carol"}, exitcode.Media},
		{onlineStation, []string{"status"}, 0},
		{onlineStation, []string{"audit", "--media", r.medium(), "--policy", r.policyFP}, 0},
		{offlineStation, []string{"audit", "--media", r.medium(), "--policy", r.policyFP}, 0},
		{offlineStation, []string{"status"}, 0},
	} {
		res := r.run(c.station, "", c.args...)
		if res.code != c.want {
			t.Errorf("byok-%s %s on a read-only medium: exit %d, want %d\n%s", c.station, strings.Join(c.args, " "), res.code, c.want, res.stderr)
		}
		if c.want == exitcode.Media && !strings.Contains(res.stderr, "hint: the stick is write-protected or mounted read-only: slide its write-protect switch off, or remount it read-write") {
			t.Errorf("byok-%s %s on a read-only medium: no hint on making the stick writable\n%s", c.station, strings.Join(c.args, " "), res.stderr)
		}
	}
	if diff := changed(before, rigState(t, r.dir)); len(diff) > 0 {
		t.Errorf("commands on a read-only medium changed %v", diff)
	}
	for _, name := range []string{r.names[resKeys[0].ident], r.names[resKeys[1].ident], r.branch + "-kek2", r.branch + "-third"} {
		if vs := versions(t, s, name); len(vs) != 0 {
			t.Errorf("Key Vault holds %d versions of %s, written while the medium was read-only", len(vs), name)
		}
	}
	writable(t, r.medium())
	r.steps(upload, len(resCeremony))
	r.converged()
}

// testLeftovers puts what an interrupted write leaves (.tmp-* files) and files the format does
// not know on the medium of a ceremony ready for upload: every command warns about each and
// ignores it, leaves it where it is, and the ceremony finishes.
func testLeftovers(t *testing.T, s *resSuite) {
	r := newResRig(t, s, "leftovers")
	upload := stepIndex("upload")
	r.steps(0, upload)
	files, err := filepath.Glob(filepath.Join(r.medium(), "offline", "*", "*.bundle"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no offline bundles: %v", err)
	}
	last, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	shard := filepath.Dir(files[0])
	extra := map[string][]byte{
		// An interrupted write of the next bundle: half of it, under a temporary name.
		filepath.Join(shard, ".tmp-0123456789ab-"+strings.Replace(filepath.Base(files[len(files)-1]), fmt.Sprintf("%016d", len(files)), fmt.Sprintf("%016d", len(files)+1), 1)): last[:len(last)/2],
		filepath.Join(r.medium(), "byok", ".tmp-0123456789ab-key.byok"): []byte(`{"schema_version":"1.0.`),
		filepath.Join(r.medium(), "README.txt"):                         []byte("what is on this stick\n"),
		filepath.Join(r.medium(), "photos", "holiday.jpg"):              []byte("\xff\xd8\xff"),
		filepath.Join(r.medium(), "online", "notes.txt"):                []byte("note\n"),
		filepath.Join(shard, "copy of a bundle.bundle"):                 last,
	}
	for p, b := range extra {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Every command that replays the medium warns about each of these files, in the chains'
	// folders, at the top level and in byok/ (SPEC.md §8.3), and goes on.
	// A file is reported by its own name or by that of an unknown folder that holds it.
	warned := func(text, p string) bool {
		rel, _ := filepath.Rel(r.medium(), p)
		for d := rel; d != "."; d = filepath.Dir(d) {
			if d == rel || (d != "offline" && d != "online" && d != "byok" && filepath.Dir(d) == ".") {
				if strings.Contains(text, d) {
					return true
				}
			}
		}
		return false
	}
	check := func(what, text string) {
		for p := range extra {
			rel, _ := filepath.Rel(r.medium(), p)
			if !warned(text, p) {
				t.Errorf("%s does not report %s (SPEC.md §8.3):\n%s", what, rel, text)
			}
		}
	}
	for _, c := range []struct {
		station string
		args    []string
	}{
		{onlineStation, []string{"verify"}},
		{onlineStation, []string{"upload"}},
		{offlineStation, []string{"sync"}},
	} {
		res := r.must(0, c.station, c.args...)
		check("byok-"+c.station+" "+c.args[0], res.stderr)
	}
	check("the audit", strings.Join(r.audit(0, offlineStation).Warnings, "\n"))
	for p, b := range extra {
		if got, err := os.ReadFile(p); err != nil || string(got) != string(b) {
			t.Errorf("%s was changed or removed (%v)", p, err)
		}
	}
	r.converged()
}

// versions returns the versions of a key in the suite's vault, none if it does not exist.
func versions(t testing.TB, s *resSuite, name string) []string {
	t.Helper()
	vs, err := s.vault.KeyVersions(name)
	if errors.Is(err, kvemu.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range vs {
		out = append(out, v.Version)
	}
	return out
}

// mediumListing describes every entry of a medium and of the folder it sits in: its path,
// type, permissions, size, modification time and, for a file, a checksum of its content.
func mediumListing(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	add := func(p, rel string) error {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v %d %d", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out = append(out, line)
		return nil
	}
	// The folder above: its own entry, and the names in it.
	parent := filepath.Dir(dir)
	if err := add(parent, ".."); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		out = append(out, "../"+e.Name())
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		return add(p, rel)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testReadingIsReadOnly runs every command that only reads, of both stations, on the medium
// of a finished ceremony, writable and then write-protected: none creates, changes or
// deletes anything on it (no lock file either: the stick's .lock is removed first, as on a
// copy of the bundles), and each succeeds on the write-protected stick.
func testReadingIsReadOnly(t *testing.T, s *resSuite) {
	r := newResRig(t, s, "readers")
	r.steps(0, len(resCeremony))
	if err := os.Remove(filepath.Join(r.medium(), ".lock")); err != nil {
		t.Fatal(err)
	}
	var bundle string
	if ps, _ := filepath.Glob(filepath.Join(r.medium(), "offline", "*", "*.bundle")); len(ps) > 0 {
		bundle = ps[0]
	} else {
		t.Fatal("no offline bundle on the medium")
	}
	readers := []struct {
		station string
		args    []string
	}{
		{offlineStation, []string{"status"}},
		{offlineStation, []string{"log"}},
		{offlineStation, []string{"inspect", bundle}},
		{offlineStation, []string{"audit", "--media", r.medium(), "--policy", r.policyFP}},
		{onlineStation, []string{"verify"}},
		{onlineStation, []string{"status"}},
		{onlineStation, []string{"inspect", bundle}},
		{onlineStation, []string{"upload", "--dry-run"}},
		{onlineStation, []string{"audit", "--media", r.medium(), "--policy", r.policyFP}},
	}
	runAll := func(how string) {
		t.Helper()
		before := mediumListing(t, r.medium())
		for _, c := range readers {
			if res := r.run(c.station, "", c.args...); res.code != 0 {
				t.Errorf("byok-%s %s on a %s medium: exit %d, want 0\n%s", c.station, strings.Join(c.args, " "), how, res.code, res.stderr)
			}
		}
		if after := mediumListing(t, r.medium()); !slices.Equal(before, after) {
			t.Errorf("reading commands on a %s medium changed it:\nbefore %q\nafter  %q", how, before, after)
		}
	}
	runAll("writable")
	readOnly(t, r.medium())
	runAll("write-protected")
}
