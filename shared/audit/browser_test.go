package audit_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// tool returns the path of a program the browser tests need: they skip without it, except
// under CI (scripts/deps.sh installs chromium and poppler-utils), where they fail.
func tool(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := "the HTML report tests need " + strings.Join(names, " or ") + " (Debian: apt-get install chromium poppler-utils)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// chromium runs headless Chromium on a local file with extra arguments and returns stdout.
func chromium(t *testing.T, page string, args ...string) string {
	t.Helper()
	bin := tool(t, "chromium", "chromium-browser")
	profile, err := os.MkdirTemp("", "audit-chromium-")
	check(t, err)
	t.Cleanup(func() { os.RemoveAll(profile) })
	// The deadline only stops a hung browser; no assertion depends on time.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + profile}, args...)
	all = append(all, "file://"+page)
	cmd := exec.CommandContext(ctx, bin, all...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

var spaces = regexp.MustCompile(`\s+`)

// A person opening the report of a failing medium sees the verdict first, the finding's text,
// and a link that leads to the bundle it concerns.
func TestHTMLInBrowser(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	check(t, c.Setup())
	off := must[*bundle.Bundle](t)(c.Offer())
	pkg := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.RSA3072, "payments-signing"))
	must[*bundle.Bundle](t)(c.Approve(pkg.ID(), bundle.KindKeyPackage, 2))
	receipt := must[*bundle.Bundle](t)(c.Receipt(pkg))

	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	rep := run(t, audit.Options{Media: c.M.Dir(), Policy: c.PolicyID.Short(), HTML: page})
	if len(rep.Findings) != 1 || rep.Findings[0].Verdict != "missing approval" {
		t.Fatalf("findings = %+v, want one missing approval", rep.Findings)
	}
	f := rep.Findings[0]

	pdf := filepath.Join(dir, "report.pdf")
	chromium(t, page, "--no-pdf-header-footer", "--print-to-pdf="+pdf)
	out, err := exec.Command(tool(t, "pdftotext"), "-layout", pdf, "-").Output()
	check(t, err)
	text := string(out)
	if first := strings.Fields(text); len(first) == 0 || first[0] != "FAIL" {
		t.Errorf("the printed report does not start with the verdict: %.200q", text)
	}
	flat := spaces.ReplaceAllString(text, " ")
	for _, want := range []string{
		"has 1 of 2 required approvals at upload", // the finding
		"online chain seq 3 (receipt) " + receipt.ID().Short(),
		"payments-signing RSA-3072", // the key inventory
		"custodian-3",               // who approved
		"Timeline (8 bundles, in replay order)",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("the printed report lacks %q:\n%s", want, text)
		}
	}
	if strings.Index(flat, "FAIL") > strings.Index(flat, "Findings") {
		t.Errorf("the verdict comes after the findings")
	}

	// The finding links to its bundle, and the DOM the browser built has that target.
	dom := chromium(t, page, "--dump-dom")
	if !strings.Contains(dom, `href="#b-`+f.ID+`"`) {
		t.Errorf("the finding has no link to #b-%s", f.ID)
	}
	if !regexp.MustCompile(`<tr id="b-` + f.ID + `"[^>]*>`).MatchString(dom) {
		t.Errorf("no timeline row with id b-%s in the DOM", f.ID)
	}
	if strings.Contains(dom, "<script") || strings.Contains(dom, "<link") || strings.Contains(dom, "src=") {
		t.Errorf("the report is not self-contained or has scripts")
	}
}

// Text from the medium is shown as text: names, software strings, Key Vault errors and file
// names with markup in them do not become markup, in the page or in the browser's DOM.
func TestHTMLEscapesMediumText(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	const software = `<script>alert("software")</script>`
	const label = `<img src=x onerror=alert(1)>`
	const kvError = `</td></tr></table><script>alert(2)</script>`
	on := must[payload.PublicKey](t)(payload.NewPublicKey(c.OnlineKey.Public()))
	offk := must[payload.PublicKey](t)(payload.NewPublicKey(c.OfflineKey.Public()))
	must[*bundle.Bundle](t)(c.Append(bundle.ChainOnline, &payload.Enrollment{Station: "online", Name: "online-station", Key: on, Software: software}))
	must[*bundle.Bundle](t)(c.Append(bundle.ChainOffline, &payload.Enrollment{Station: "offline", Name: "offline-station", Key: offk, Software: "x",
		HSM: &payload.TokenInfo{Label: label, Manufacturer: "<b>bold</b>", Model: "m"}}))
	p := c.NewPolicy()
	pb := must[*bundle.Bundle](t)(c.Append(bundle.ChainOffline, p))
	c.Policy, c.PolicyID = p, pb.ID()
	must[*bundle.Bundle](t)(c.Approve(pb.ID(), bundle.KindPolicy, 0, 1))
	off := must[*bundle.Bundle](t)(c.Offer())
	pkg := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.ECP256, "key-1"))
	must[*bundle.Bundle](t)(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
	r := must[*payload.Receipt](t)(c.ReceiptPayload(pkg))
	r.Outcome, r.KID, r.PublicKey, r.Created, r.Error = payload.OutcomeRejected, "", nil, 0, kvError
	must[*bundle.Bundle](t)(c.Append(bundle.ChainOnline, r))
	// A stray file whose name is markup, and one that would drive a terminal.
	shard := filepath.Dir(c.File(pkg))
	check(t, os.WriteFile(filepath.Join(shard, `<script>alert(3)<\script>.txt`), nil, 0o644))
	check(t, os.WriteFile(filepath.Join(shard, "\x1b[31mred"), nil, 0o644))

	page := filepath.Join(t.TempDir(), "report.html")
	code, out, _ := cliRun(t, "audit", "--media", c.M.Dir(), "--html", page)
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("the text output passes an escape sequence from the medium to the terminal")
	}
	html := string(must[[]byte](t)(os.ReadFile(page)))
	audit.CheckMarkup(t, html)
	for _, s := range []string{software, label, kvError, "<b>bold</b>"} {
		esc := strings.NewReplacer("<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(s)
		if !strings.Contains(html, esc) {
			t.Errorf("the page does not show %q as text", s)
		}
	}
	dom := chromium(t, page, "--dump-dom")
	audit.CheckMarkup(t, dom)
	if strings.Contains(dom, "<script") || strings.Contains(dom, "<img") || strings.Contains(dom, "<b>") {
		t.Errorf("the browser built elements from the medium's text")
	}
}
