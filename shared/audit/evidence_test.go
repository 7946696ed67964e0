package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/shared/buildinfo"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// fileSetDigest computes the set digest of the bundle files under a medium folder, as the
// report defines it, by walking the folder and hashing each file: independently of the
// replay.
func fileSetDigest(t *testing.T, medium string) (digest string, files map[string]string) {
	t.Helper()
	files = map[string]string{}
	var paths []string
	check(t, filepath.WalkDir(medium, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".bundle") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(must[string](t)(filepath.Rel(medium, p)))
		sum := sha256.Sum256(data)
		files[rel] = hex.EncodeToString(sum[:])
		paths = append(paths, rel)
		return nil
	}))
	slices.Sort(paths)
	h := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%s  %s\n", files[p], p)
	}
	return hex.EncodeToString(h.Sum(nil)), files
}

// The HTML report is evidence: it names the medium's absolute path, the auditing program's
// version and SHA-256, each chain head's file with its SHA-256, and the set digest of the
// bundle files it verified, all equal to what an independent computation (and the shell
// pipeline the report gives) finds; it keeps keys in the order of their packages whatever
// the order of the uploads; it says durations in words; and two runs write the same bytes.
func TestHTMLEvidence(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	check(t, c.Setup())
	off := must[*bundle.Bundle](t)(c.Offer())
	var pkgs []*bundle.Bundle
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		p := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.ECP256, name))
		must[*bundle.Bundle](t)(c.Approve(p.ID(), bundle.KindKeyPackage, 0, 1))
		pkgs = append(pkgs, p)
	}
	// Uploaded in another order than packaged, and bravo not at all.
	must[*bundle.Bundle](t)(c.Receipt(pkgs[2]))
	must[*bundle.Bundle](t)(c.Receipt(pkgs[0]))

	cwd := must[string](t)(os.Getwd())
	rel := must[string](t)(filepath.Rel(cwd, c.M.Dir()))
	abs := must[string](t)(filepath.Abs(c.M.Dir()))
	out := t.TempDir()
	pageA, pageB := filepath.Join(out, "a.html"), filepath.Join(out, "b.html")
	repA := run(t, audit.Options{Media: rel, Policy: c.PolicyID.Short(), HTML: pageA, Now: func() time.Time { return time.Unix(1e9, 0) }})
	repB := run(t, audit.Options{Media: c.M.Dir(), Policy: c.PolicyID.Short(), HTML: pageB, Now: func() time.Time { return time.Unix(2e9, 0) }, Workers: 1})
	if repA.Verdict != audit.Pass {
		t.Fatalf("verdict %s: %+v", repA.Verdict, repA.Findings)
	}
	a := must[[]byte](t)(os.ReadFile(pageA))
	b := must[[]byte](t)(os.ReadFile(pageB))
	if !bytes.Equal(a, b) {
		t.Errorf("two audits of the same medium wrote different reports (%d and %d bytes)", len(a), len(b))
	}
	if repB.Medium != repA.Medium || repB.Evidence.FilesSHA256 != repA.Evidence.FilesSHA256 || !slices.Equal(repB.Evidence.Heads, repA.Evidence.Heads) {
		t.Errorf("two audits of the same medium give different evidence: %+v and %+v", repA.Evidence, repB.Evidence)
	}
	page := string(a)
	audit.CheckMarkup(t, page)

	// The medium, as an absolute path, though the audit was given a relative one.
	if repA.Medium != abs || !strings.Contains(page, "<tr><th>medium</th><td>"+abs+"</td></tr>") {
		t.Errorf("report medium %q, want %q shown in the page", repA.Medium, abs)
	}
	// The program that audited.
	self := must[buildinfo.Toolset](t)(buildinfo.Self())
	if repA.Tool.SHA256 != self.SHA256 || !strings.Contains(page, self.SHA256) || !strings.Contains(page, "<td>"+self.Version) {
		t.Errorf("tool %+v, want %s %s in the report", repA.Tool, self.Version, self.SHA256)
	}

	// The files: every bundle file on the medium, computed apart from the replay.
	digest, files := fileSetDigest(t, c.M.Dir())
	ev := repA.Evidence
	if ev.FilesSHA256 != digest || ev.Files != uint64(len(files)) || ev.Files != repA.Counts.Offline+repA.Counts.Online {
		t.Errorf("evidence %d files, set %s; want %d files, set %s", ev.Files, ev.FilesSHA256, len(files), digest)
	}
	if !strings.Contains(page, digest) {
		t.Errorf("the page does not show the set digest %s", digest)
	}
	// The shell pipeline the report gives finds the same digest.
	sh := exec.Command("sh", "-c", `find offline online -type f -name '*.bundle' | LC_ALL=C sort | xargs sha256sum | sha256sum`)
	sh.Dir = c.M.Dir()
	if got := strings.Fields(string(must[[]byte](t)(sh.Output()))); len(got) == 0 || got[0] != digest {
		t.Errorf("the report's shell pipeline prints %v, want %s", got, digest)
	}
	if !strings.Contains(page, "find offline online -type f -name '*.bundle' | LC_ALL=C sort | xargs sha256sum | sha256sum") {
		t.Errorf("the page does not give the shell pipeline")
	}
	// The heads: the last bundle of each chain, with its file's SHA-256.
	if len(ev.Heads) != 2 {
		t.Fatalf("heads %+v, want offline and online", ev.Heads)
	}
	for i, h := range ev.Heads {
		want := repA.Heads.Offline
		if i == 1 {
			want = repA.Heads.Online
		}
		if h.Seq != want.Seq || h.ID != want.ID.String() || h.SHA256 != files[h.Path] || h.SHA256 == "" {
			t.Errorf("head %+v; want seq %d %s with the SHA-256 of its file %s", h, want.Seq, want.ID, files[h.Path])
		}
		if !strings.Contains(page, h.SHA256) || !strings.Contains(page, h.Path) {
			t.Errorf("the page does not show head %s %s", h.Path, h.SHA256)
		}
	}

	// Keys in the order of their packages, not of their uploads.
	var order []string
	for k, err := range repA.Keys() {
		check(t, err)
		order = append(order, k.Name)
	}
	if !slices.Equal(order, []string{"alpha", "bravo", "charlie"}) {
		t.Errorf("key inventory in the order %v, want alpha, bravo, charlie", order)
	}
	ia, ib, ic := strings.Index(page, "alpha EC-P256"), strings.Index(page, "bravo EC-P256"), strings.Index(page, "charlie EC-P256")
	if ia < 0 || ib < ia || ic < ib {
		t.Errorf("the page's key table is not in package order (%d, %d, %d)", ia, ib, ic)
	}

	// Durations in words.
	if !strings.Contains(page, "bundles valid 7 days, clock skew ≤ 5 minutes") {
		t.Errorf("the page does not say the policy's durations in words")
	}
	if strings.Contains(page, " s,") || strings.Contains(page, "604800") {
		t.Errorf("the page shows durations in seconds")
	}

	// An audit --since a checkpoint with nothing new verifies no file, and reads the heads
	// again to name their files.
	cp := filepath.Join(out, "cp.json")
	run(t, audit.Options{Media: c.M.Dir(), Policy: c.PolicyID.Short(), Checkpoint: cp})
	again := run(t, audit.Options{Media: c.M.Dir(), Since: cp})
	empty := sha256.Sum256(nil)
	if again.Evidence.Files != 0 || again.Evidence.FilesSHA256 != hex.EncodeToString(empty[:]) {
		t.Errorf("audit --since with nothing new: %d files, set %s; want none", again.Evidence.Files, again.Evidence.FilesSHA256)
	}
	if !slices.Equal(again.Evidence.Heads, ev.Heads) {
		t.Errorf("audit --since heads %+v, want %+v", again.Evidence.Heads, ev.Heads)
	}
}

// A key name with markup in it, on a properly signed key package, is shown as text in the
// report, wherever the report quotes it.
func TestHTMLEscapesKeyName(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	check(t, c.Setup())
	off := must[*bundle.Bundle](t)(c.Offer())
	const evil = `<script>alert(4)</script>`
	pp := must[*payload.KeyPackage](t)(c.PackagePayload(off.ID(), payload.ECP256, "placeholder-name"))
	must[*bundle.Bundle](t)(c.Append(bundle.ChainOffline, pp, chaintest.Mutate(func(d *bundle.Draft) {
		d.Payload = bytes.Replace(d.Payload, []byte(`"placeholder-name"`), []byte(`"`+evil+`"`), 1)
	})))
	page := filepath.Join(t.TempDir(), "report.html")
	rep := run(t, audit.Options{Media: c.M.Dir(), HTML: page})
	if rep.Verdict != audit.Fail || len(rep.Findings) == 0 || !strings.Contains(rep.Findings[0].Message, "alert(4)") {
		t.Fatalf("verdict %s, findings %+v: want a finding quoting the key name", rep.Verdict, rep.Findings)
	}
	html := string(must[[]byte](t)(os.ReadFile(page)))
	audit.CheckMarkup(t, html)
	if strings.Contains(html, evil) || !strings.Contains(html, "&lt;script&gt;alert(4)&lt;/script&gt;") {
		t.Errorf("the key name is not shown escaped:\n%s", html)
	}
}
