package audit_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// The audit lists, per station, which toolsets wrote which bundles, and flags a bundle that a
// toolset the policy does not list wrote, in text, JSON and HTML.
func TestToolsets(t *testing.T) {
	other := payload.Toolset{Version: "v9.9.9", SHA256: strings.Repeat("ab", 32)}
	c := newCeremony(t, chaintest.Config{})
	check(t, c.Enroll()) // version 1: no toolset
	c.Version = bundle.Version2
	p := c.NewPolicy()
	p.AllowedToolsets = []string{chaintest.TestToolset.SHA256}
	pb := must[*bundle.Bundle](t)(c.Append(bundle.ChainOffline, p))
	c.Policy, c.PolicyID = p, pb.ID()
	must[*bundle.Bundle](t)(c.Approve(pb.ID(), bundle.KindPolicy, 0, 1))
	off := must[*bundle.Bundle](t)(c.Offer())
	c.Toolset = other // another binary writes the key package
	pkg := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.ECP256, "key-1"))
	c.Toolset = chaintest.TestToolset
	must[*bundle.Bundle](t)(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
	must[*bundle.Bundle](t)(c.Receipt(pkg))

	html := filepath.Join(t.TempDir(), "report.html")
	rep := run(t, audit.Options{Media: c.M.Dir(), HTML: html})
	want := []audit.Toolset{
		{Chain: "offline", Station: "offline-station", Format: 1, Bundles: 1, Seqs: []audit.SeqRange{{First: 1, Last: 1}}},
		{Chain: "offline", Station: "offline-station", Version: "chaintest", SHA256: chaintest.TestToolset.SHA256, Format: 2, Bundles: 3,
			Seqs: []audit.SeqRange{{First: 2, Last: 3}, {First: 5, Last: 5}}},
		{Chain: "offline", Station: "offline-station", Version: "v9.9.9", SHA256: other.SHA256, Format: 2, Bundles: 1,
			Seqs: []audit.SeqRange{{First: 4, Last: 4}}, NotAllowed: 1},
		{Chain: "online", Station: "online-station", Format: 1, Bundles: 1, Seqs: []audit.SeqRange{{First: 1, Last: 1}}},
		{Chain: "online", Station: "online-station", Version: "chaintest", SHA256: chaintest.TestToolset.SHA256, Format: 2, Bundles: 2,
			Seqs: []audit.SeqRange{{First: 2, Last: 3}}},
	}
	if !reflect.DeepEqual(rep.Toolsets, want) {
		t.Errorf("toolsets:\n%+v\nwant\n%+v", rep.Toolsets, want)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Verdict != "policy violation" || rep.Findings[0].Seq != 4 || !strings.Contains(rep.Findings[0].Message, other.SHA256) {
		t.Errorf("findings %+v, want one policy violation at offline 4 naming the toolset", rep.Findings)
	}

	code, out, _ := cliRun(t, "audit", "--media", c.M.Dir())
	if code != exitcode.Verify {
		t.Errorf("exit code %d, want %d", code, exitcode.Verify)
	}
	for _, line := range []string{
		"toolsets    offline (offline-station): format version 1, no toolset recorded wrote 1 bundle(s): seq 1",
		"            offline (offline-station): chaintest sha256 " + chaintest.TestToolset.SHA256 + " wrote 3 bundle(s): seq 2-3, 5",
		"            offline (offline-station): v9.9.9 sha256 " + other.SHA256 + " wrote 1 bundle(s): seq 4; NOT ALLOWED by the policy for 1 of them",
		"            online (online-station): chaintest sha256 " + chaintest.TestToolset.SHA256 + " wrote 2 bundle(s): seq 2-3",
		"[policy violation] offline chain seq 4 (key_package)",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("text output lacks %q:\n%s", line, out)
		}
	}

	_, out, _ = cliRun(t, "audit", "--media", c.M.Dir(), "--json")
	var got struct {
		Toolsets []audit.Toolset `json:"toolsets"`
	}
	check(t, json.Unmarshal([]byte(out), &got))
	if !reflect.DeepEqual(got.Toolsets, want) {
		t.Errorf("JSON toolsets:\n%+v\nwant\n%+v", got.Toolsets, want)
	}

	page := string(must[[]byte](t)(os.ReadFile(html)))
	i := strings.Index(page, `<section id="toolsets">`)
	if i < 0 {
		t.Fatalf("the HTML report has no toolsets section")
	}
	sec := page[i : i+strings.Index(page[i:], "</section>")]
	for _, s := range []string{"sha256 " + chaintest.TestToolset.SHA256, "sha256 " + other.SHA256, "not allowed by the policy for 1", "no toolset recorded", "seq 2-3, 5"} {
		if !strings.Contains(sec, s) {
			t.Errorf("the HTML toolsets section lacks %q:\n%s", s, sec)
		}
	}
}

// A version 2 receipt that lists the versions of a duplicate import: the audit fails with a
// replay finding at the receipt and shows the versions in the key inventory, in text, JSON
// and HTML.
func TestDuplicateImport(t *testing.T) {
	c := newCeremony(t, chaintest.Config{Version: bundle.Version2})
	pkg := approved(t, c)
	r := must[*payload.Receipt](t)(c.ReceiptPayload(pkg))
	other := r.KID[:strings.LastIndex(r.KID, "/")+1] + "00000000000000000000000000000002"
	r.Versions = []string{other, r.KID}
	slices.Sort(r.Versions)
	must[*bundle.Bundle](t)(c.Append(bundle.ChainOnline, r))

	html := filepath.Join(t.TempDir(), "report.html")
	rep := run(t, audit.Options{Media: c.M.Dir(), HTML: html})
	if len(rep.Findings) != 1 || rep.Findings[0].Verdict != "replay" || rep.Findings[0].Chain != "online" || rep.Findings[0].Seq != 3 ||
		!strings.Contains(rep.Findings[0].Message, "imported more than once") {
		t.Errorf("findings %+v, want one replay at the receipt", rep.Findings)
	}
	var keys []audit.Key
	for k, err := range rep.Keys() {
		check(t, err)
		keys = append(keys, k)
	}
	if len(keys) != 1 || keys[0].Receipt == nil || !slices.Equal(keys[0].Receipt.Versions, r.Versions) || keys[0].Status != audit.StatusImported {
		t.Errorf("keys %+v, want the imported key with both versions", keys)
	}
	_, out, _ := cliRun(t, "audit", "--media", c.M.Dir())
	if want := "DUPLICATE: Key Vault holds 2 versions (" + strings.Join(r.Versions, ", ") + ")"; !strings.Contains(out, want) {
		t.Errorf("text output lacks %q:\n%s", want, out)
	}
	page := string(must[[]byte](t)(os.ReadFile(html)))
	if !strings.Contains(page, "duplicate: Key Vault holds 2 versions") || !strings.Contains(page, other) {
		t.Errorf("the HTML report does not show the duplicate")
	}
}
