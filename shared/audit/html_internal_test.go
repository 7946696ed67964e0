package audit

import (
	"bufio"
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// allowedTags are the only elements the report makes.
var allowedTags = []string{"html", "head", "meta", "title", "style", "body", "header", "footer", "h1", "h2", "p", "section",
	"table", "thead", "tbody", "tr", "th", "td", "a", "span", "br", "ol", "ul", "li", "em"}

var tagRE = regexp.MustCompile(`<\s*/?\s*([a-zA-Z][a-zA-Z0-9-]*)`)

// checkMarkup fails if page has an element that the report does not make, or an event
// handler attribute: untrusted text became markup.
func checkMarkup(t testing.TB, page string) {
	t.Helper()
	for _, m := range tagRE.FindAllStringSubmatch(page, -1) {
		if !slices.Contains(allowedTags, strings.ToLower(m[1])) {
			t.Errorf("the report has a <%s> element: untrusted text became markup", m[1])
		}
	}
	// Quoted attribute values are text (a quote inside one is escaped): drop them, then look
	// for an attribute named on... in a tag.
	unquoted := regexp.MustCompile(`"[^"]*"`).ReplaceAllString(page, `""`)
	if regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`).MatchString(unquoted) {
		t.Errorf("the report has an event handler attribute")
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tt := range []struct {
		secs int64
		want string
	}{
		{0, "0 seconds"}, {1, "1 second"}, {59, "59 seconds"}, {60, "1 minute"}, {90, "1 minute 30 seconds"},
		{300, "5 minutes"}, {3600, "1 hour"}, {86400, "1 day"}, {7 * 86400, "7 days"}, {36 * 3600, "1 day 12 hours"},
		{86400 + 61, "1 day 1 minute 1 second"}, {-120, "minus 2 minutes"},
	} {
		if got := humanDuration(tt.secs); got != tt.want {
			t.Errorf("humanDuration(%d) = %q, want %q", tt.secs, got, tt.want)
		}
	}
}

// Every piece of text in the head of the report (findings, keys, policies, warnings) that
// could come from the medium or a checkpoint is escaped.
func TestHTMLHeadEscapes(t *testing.T) {
	const evil = `<script>alert('pwned')</script>`
	const evilAttr = `"><img src=x onerror=alert(1)>`
	sp, err := newSpool()
	if err != nil {
		t.Fatal(err)
	}
	rep := &Report{Verdict: Fail, Medium: "/media/" + evil, keys: sp, Tool: Tool{Version: evil, Error: evil},
		Evidence: Evidence{Heads: []HeadFile{{Chain: evil, ID: evilAttr, Fingerprint: evil, Path: evil, Error: evil}}},
		Anchor:   strings.Repeat("ab", 32), AnchorFingerprint: "ABCD-EFGH-JKMN-PQRS", Pinned: true,
		Since:    &Since{File: evilAttr},
		Findings: []Finding{{Verdict: evil, Chain: evil, Seq: 4, ID: evilAttr, Fingerprint: evil, Kind: evil, Message: evil, Earlier: true}, {Verdict: "fork", Chain: "online", Seq: 3, ID: evilAttr, Fingerprint: evilAttr, Message: evil, Stopped: true}},
		Policies: []Policy{{ID: strings.Repeat("cd", 32), Fingerprint: "X", Version: 1, Threshold: 1,
			Custodians: []Approver{{Name: evil, Fingerprint: "F"}}, Vaults: []Vault{{URL: evilAttr, Kind: evil, Region: evil}}, KeyTypes: []string{evil}}},
		Warnings: []string{"offline/" + evil + ": not part of the transfer format; ignored"}, WarningCount: 1,
	}
	defer rep.Close()
	if err := sp.add(Key{Package: "00", PackageFingerprint: "P", Name: evil, KeyType: evil, Vault: evilAttr, Region: evil,
		Approvals: []Approver{{Name: evil, Fingerprint: "F"}}, Status: StatusImported,
		Receipt: &Receipt{ID: "11", Fingerprint: "R", Outcome: evil, Vault: evilAttr, KID: evil, Error: evil}}); err != nil {
		t.Fatal(err)
	}
	if err := sp.add(Key{Package: "22", Name: "k", Status: StatusNotUploaded, Rejected: 1, Receipt: &Receipt{Error: evilAttr}}); err != nil {
		t.Fatal(err)
	}
	if err := sp.flush(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := writeHead(w, rep, 0); err != nil {
		t.Fatal(err)
	}
	h := &htmlWriter{w: w}
	for _, f := range rep.Findings {
		if err := h.failed(&auditor{}, f); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	page := buf.String()
	checkMarkup(t, page)
	if strings.Contains(strings.ToLower(page), "<script") || strings.Contains(page, "<img") {
		t.Errorf("hostile markup is in the page:\n%s", page)
	}
	if n := strings.Count(page, "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"); n < 10 {
		t.Errorf("the hostile text appears escaped %d times, want it shown (escaped) everywhere it was put", n)
	}
}

func TestOnMedium(t *testing.T) {
	m := t.TempDir()
	tests := []struct {
		p    string
		want bool
	}{
		{m + "/report.html", true},
		{m + "/offline/0000000000000/x", true},
		{m + "/..hidden/x", true},
		{m + "-copy/report.html", false},
		{m + "/../report.html", false},
		{"/tmp/report.html", false},
	}
	for _, tt := range tests {
		if got := onMedium(m, tt.p); got != tt.want {
			t.Errorf("onMedium(%q, %q) = %v, want %v", m, tt.p, got, tt.want)
		}
	}
}
