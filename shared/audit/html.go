package audit

// The HTML report. Output rules enforced here:
//
//   - One self-contained file: inline CSS, no scripts, no external resources, readable in any
//     browser and printable.
//   - It is rendered with html/template: everything that comes from the medium (names, tags,
//     URLs, error texts, file names) is data, escaped for where it goes; the templates are
//     the only markup.
//   - The verdict comes first, then the evidence that binds the report to the files it
//     verified (the medium's absolute path, the auditing program's version and SHA-256, the
//     heads' files and the set digest of the files, see [Evidence]).
//   - Reproducible: no time of its own, every table in a fixed order, durations in words; two
//     audits of the same medium by the same program write the same bytes.
//   - The timeline is streamed to a temporary file in the report's folder as the replay goes;
//     at the end the verdict, evidence, findings, key inventory and policies are written to
//     another temporary file, the timeline is copied after them, and that file is synced and
//     renamed into place.

import (
	"bufio"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// pageTemplates are the report's markup: "top" (up to the key inventory's rows), "key" (one
// inventory row), "middle" (after the inventory, up to the timeline's rows), "row" (one
// verified bundle), "failed" (a bundle the replay could not verify) and "end".
const pageTemplates = `
{{- define "top" -}}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>airgap-byok audit: {{.Verdict}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em 2em;color:#111;background:#fff}
h1{font-size:2.4em;margin:0}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
.verdict{border-left:.6em solid;padding:.3em 1em;margin-bottom:1em}
.verdict.pass{border-color:#0a6b2d}.verdict.pass h1{color:#0a6b2d}
.verdict.fail{border-color:#b00020}.verdict.fail h1{color:#b00020}
table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.25em .45em;vertical-align:top;text-align:left;overflow-wrap:anywhere}
th{background:#f3f3f3}
.fp,.hex{font-family:ui-monospace,Menlo,Consolas,monospace}.hex{font-size:.8em;word-break:break-all}
.v{display:inline-block;padding:0 .35em;border-radius:.3em;background:#b00020;color:#fff;font-size:.85em}
.nw{white-space:nowrap}.ok{color:#0a6b2d}.bad{color:#b00020;font-weight:bold}.warn{color:#8a5a00}
.note{color:#555;font-size:.9em}
.tl{table-layout:fixed}.tl th:nth-child(1){width:3.5em}.tl th:nth-child(2){width:11em}
.tl td.n,.tl td.t{color:#555}.tl td.c{overflow-wrap:anywhere}.tl .k{font-weight:bold}
.tl tr.failed td.c{background:#fde7ea}
.tl ul.f{margin:.2em 0;padding-left:1.2em;color:#b00020}
tr:target{background:#fff3c4}
@media print{tr{break-inside:avoid}}
</style>
</head>
<body>
<header class="verdict {{if .Failed}}fail{{else}}pass{{end}}"><h1 id="verdict">{{.Verdict}}</h1>
<p>{{.Summary}}</p></header>
<section id="summary"><table>
<tr><th>trust anchor</th><td>
{{- if .AnchorFingerprint}}policy v1 <a class="fp" href="#b-{{.Anchor}}">{{.AnchorFingerprint}}</a>
{{- if .TrustedOnFirstUse}} <span class="warn">trusted on first use: compare this fingerprint with the one the custodians signed off</span>
{{- else if .Pinned}} <span class="ok">pinned by the auditor</span>{{end}}
{{- else}}none: no policy verified{{end}}</td></tr>
{{- with .Since}}
<tr><th>since</th><td>checkpoint {{.File}} at offline seq {{.Heads.Offline.Seq}}, online seq {{.Heads.Online.Seq}}
{{- if not .Resumed}} (no policy was in force then: replayed from genesis){{end}}</td></tr>
{{- end}}
<tr><th>bundles</th><td>offline {{.Counts.Offline}}, online {{.Counts.Online}}; verified by this audit {{.Counts.Replayed}}
{{- if not .Complete}} <span class="bad">(replay stopped before the end)</span>{{end}}</td></tr>
<tr><th>keys</th><td>{{.Counts.Packages}} packages, {{.Counts.Imported}} imported, {{.Counts.Outstanding}} not uploaded; {{.Counts.Approvals}} approvals, {{.Counts.Offers}} KEK offers, {{.Counts.Receipts}} receipts</td></tr>
</table></section>
<section id="evidence"><h2>Evidence</h2>
<table>
<tr><th>medium</th><td>{{.Medium}}</td></tr>
<tr><th>audited by</th><td>{{.Tool.Version}}
{{- if .Tool.SHA256}}, SHA-256 <span class="hex">{{.Tool.SHA256}}</span>{{else}} <span class="warn">(its file could not be hashed: {{.Tool.Error}})</span>{{end}}</td></tr>
{{- range .Evidence.Heads}}
<tr><th>{{.Chain}} chain head</th><td>seq {{.Seq}}, bundle <a class="fp" href="#b-{{.ID}}">{{.Fingerprint}}</a> <span class="hex">{{.ID}}</span><br>file {{.Path}}<br>
{{- if .SHA256}}SHA-256 <span class="hex">{{.SHA256}}</span>{{else}}<span class="bad">not read again: {{.Error}}</span>{{end}}</td></tr>
{{- else}}
<tr><th>chain heads</th><td>none: no bundle verified</td></tr>
{{- end}}
<tr><th>bundle files verified</th><td>{{.Evidence.Files}}; set SHA-256 <span class="hex">{{.Evidence.FilesSHA256}}</span></td></tr>
</table>
<p class="note">The set SHA-256 is the SHA-256 of one line per bundle file this audit verified,
"&lt;SHA-256 of the file&gt;&nbsp;&nbsp;&lt;path&gt;" (sha256sum's format) ending in a newline, the paths relative to
the medium folder with "/" and the lines sorted by path in byte order. For an audit from genesis of a medium with no ignored
files, <span class="fp">cd MEDIUM &amp;&amp; find offline online -type f -name '*.bundle' | LC_ALL=C sort | xargs sha256sum | sha256sum</span>
prints the same digest. The report holds no time of its own: the same medium audited by the same program gives the same file.</p>
</section>
<section id="findings"><h2>Findings ({{len .Findings}})</h2>
{{if .Findings}}<ol>
{{- range .Findings}}
<li><span class="v">{{.Verdict}}</span> {{if and .ID (not .Earlier)}}<a href="#b-{{.ID}}">{{template "findingWhere" .}}</a>{{else}}{{template "findingWhere" .}}{{end}}: {{.Message}}
{{- if .Stopped}} <em>(the replay stopped here)</em>{{end}}
{{- if .Earlier}} <em>(found by the audit that wrote the checkpoint)</em>{{end}}</li>
{{- end}}
</ol>
{{else}}<p class="ok">None: every step is signed, ordered and approved, and every uploaded key is the key that was packaged.</p>
{{end -}}
</section>
<section id="keys"><h2>Key inventory ({{.Counts.Keys}})</h2>
<table><thead><tr><th>key package</th><th>key</th><th>approved by</th><th>landed in</th><th>public key</th></tr></thead><tbody>
{{end}}

{{- define "findingWhere" -}}
{{.Chain}} chain{{if .Seq}} seq {{.Seq}}{{end}}{{if .Kind}} ({{.Kind}}){{end}}{{if .Fingerprint}} <span class="fp">{{.Fingerprint}}</span>{{end}}
{{- end}}

{{- define "approvers" -}}
{{range $i, $a := .}}{{if $i}}, {{end}}{{$a.Name}} <span class="fp">{{$a.Fingerprint}}</span>{{end}}
{{- end}}

{{- define "key" -}}
<tr><td><a class="fp" href="#b-{{.Package}}">{{.PackageFingerprint}}</a>{{if .PackageSeq}} offline seq {{.PackageSeq}}{{end}}</td>
<td class="nw">{{if .Key}}{{.Key}}{{else}}<span class="bad">no key package awaiting upload</span>{{end}}</td>
<td>{{template "approvers" .Approvals}}</td>
<td>
{{- if .ReceiptMissing}}<span class="warn">imported (the online station's ledger says so), receipt missing from this medium</span>
{{- else if .NotUploaded}}<span class="warn">not uploaded</span>
{{- if .Rejected}}; Key Vault refused it {{.Rejected}} time(s){{with .Receipt}}{{if .Error}}: {{.Error}}{{end}}{{end}}{{end}}
{{- else}}{{with .Receipt}}{{$.Landed}}<br>kid {{.KID}}<br>receipt <a class="fp" href="#b-{{.ID}}">{{.Fingerprint}}</a> online seq {{$.ReceiptSeq}}: {{.Outcome}}
{{- if $.Duplicate}}<br><span class="bad">duplicate: Key Vault holds {{$.Duplicate}} versions</span>{{range .Versions}}<br>{{.}}{{end}}{{end}}{{end}}
{{- end}}</td>
<td>
{{- if .PublicKeySHA256}}packaged <span class="hex">{{.PublicKeySHA256}}</span>
{{- with .Receipt}}{{if .PublicKeySHA256}}<br>Key Vault <span class="hex">{{.PublicKeySHA256}}</span>{{end}}{{end}}
{{- if .Matches}}<br><span class="ok">match</span>{{else if .Differs}}<br><span class="bad">MISMATCH</span>{{end}}
{{- else if .KCV}}AES, check value <span class="hex">{{.KCV}}</span> (Key Vault returns no key material){{end -}}
</td></tr>
{{end}}

{{- define "middle" -}}
</tbody></table></section>
<section id="policies"><h2>Policies</h2>
<table><thead><tr><th>version</th><th>custodians</th><th>vaults</th><th>rules</th></tr></thead><tbody>
{{- range .Policies}}
<tr><td><a class="fp" href="#b-{{.ID}}">{{.Fingerprint}}</a> v{{.Version}}
{{- if .Effective}} in force from offline seq {{.Effective}}{{else}} <span class="warn">awaiting approval</span>{{end}}</td>
<td>{{.Threshold}} of {{len .Custodians}}: {{template "approvers" .Custodians}}{{if .ApprovedBy}}; approved by {{template "approvers" .ApprovedBy}}{{end}}</td>
<td>{{range $i, $v := .Vaults}}{{if $i}}<br>{{end}}{{$v.URL}} ({{$v.Kind}}, {{$v.Region}}){{end}}</td>
<td>stations offline <span class="fp">{{.OfflineStation}}</span>, online <span class="fp">{{.OnlineStation}}</span>; KEK ≥ {{.MinKEKBits}} bits
{{- if .AllowWeakerKEK}} (weaker KEK allowed){{end}}; key types {{range $i, $t := .KeyTypes}}{{if $i}}, {{end}}{{$t}}{{end}}; bundles valid {{duration .Lifetime}}, clock skew ≤ {{duration .MaxClockSkew}}</td></tr>
{{- end}}
</tbody></table></section>
<section id="toolsets"><h2>Toolsets</h2>
<table><thead><tr><th>chain</th><th>toolset</th><th>bundles</th></tr></thead><tbody>
{{- range .Toolsets}}
<tr><td>{{.Chain}}{{if .Station}} ({{.Station}}){{end}}</td>
<td>{{if .SHA256}}{{.Version}} <span class="fp">sha256 {{.SHA256}}</span>{{else}}format version {{.Format}}, no toolset recorded{{end}}
{{- if .NotAllowed}} <span class="warn">not allowed by the policy for {{.NotAllowed}}</span>{{end}}</td>
<td>{{.Bundles}}: seq {{seqs .}}</td></tr>
{{- end}}
</tbody></table></section>
{{- if .Regions}}
<section id="regions"><h2>Regions</h2>
<table><thead><tr><th>region</th><th>approve its keys</th><th>vaults</th><th>keys</th></tr></thead><tbody>
{{- range .Regions}}
<tr><td>{{.Name}}</td><td>{{.Threshold}} of {{range $i, $c := .Custodians}}{{if $i}}, {{end}}{{$c}}{{end}}{{if not .Own}} (the policy's custodians){{end}}{{if .Global}}, and {{.GlobalThreshold}} of all custodians{{end}}</td>
<td>{{range $i, $v := .Vaults}}{{if $i}}<br>{{end}}{{$v}}{{end}}</td><td>{{.Packages}} package(s), {{.Imported}} imported</td></tr>
{{- end}}
</tbody></table></section>
{{- end}}
{{- if .Residency}}
<section id="residency"><h2>Residency</h2>
<table><thead><tr><th>key</th><th>bound to</th><th>packaged for, landed</th></tr></thead><tbody>
{{- range .Residency}}
<tr><td>{{range $i, $n := .Names}}{{if $i}}, {{end}}{{$n}}{{end}} <span class="fp">{{.Key}}</span></td><td>{{range $i, $r := .Regions}}{{if $i}}, {{end}}{{$r}}{{end}}</td>
<td>{{range $i, $p := .Placements}}{{if $i}}<br>{{end}}{{placement $p}}{{end}}{{range .Violations}}<br><span class="bad">{{.}}</span>{{end}}</td></tr>
{{- end}}
</tbody></table></section>
{{- end}}
{{- if .WarningCount}}
<section id="warnings"><h2>Files ignored ({{.WarningCount}})</h2><ul>
{{- range .Warnings}}
<li>{{.}}</li>
{{- end}}
</ul></section>
{{- end}}
<section id="timeline"><h2>Timeline ({{.Rows}} bundles, in replay order)</h2>
<table class="tl"><thead><tr><th>#</th><th>created (UTC)</th><th>offline chain</th><th>online chain</th></tr></thead><tbody>
{{end}}

{{- define "row" -}}
<tr id="b-{{.ID}}"><td class="n">{{.Order}}</td><td class="t">{{.Created}}</td>{{if .Online}}<td></td>{{end}}<td class="c"><span class="k">{{.Kind}}</span> · {{.Place}} · bundle <span class="fp" title="{{.ID}}">{{.Short}}</span><br>signed by {{.Station}} <span class="fp">{{.Signer}}</span>; expires {{.Expires}}
{{- if .PolicyID}}; under policy <a class="fp" href="#b-{{.PolicyID}}">{{.PolicyShort}}</a>{{end}}<br>
{{- with .Enrollment}}station {{.Name}} enrolls key <span class="fp">{{.Key}}</span> ({{.Alg}}), software {{.Software}}{{with .HSM}}, HSM token {{.Label}} ({{.Manufacturer}} {{.Model}}){{end}}
{{- else with .Policy}}policy version {{.Version}}{{if .PreviousID}} after <a class="fp" href="#b-{{.PreviousID}}">{{.Previous}}</a>{{end}}: {{.Threshold}} of {{len .Custodians}} custodians ({{template "approvers" .Custodians}}); vaults {{range $i, $v := .Vaults}}{{if $i}}, {{end}}{{$v.URL}} ({{$v.Kind}}, {{$v.Region}}){{end}}; KEK ≥ {{.MinKEKBits}} bits{{if .AllowWeakerKEK}}, weaker KEK allowed{{end}}
{{- else with .Offer}}KEK {{.KID}} RSA-{{.KeySize}}, expires {{.Expires}}{{if .Attestation}}, attestation {{.Attestation}}{{end}}
{{- else with .Package}}key {{.Key}} for {{.Vault}}, wrapped with KEK offer <a class="fp" href="#b-{{.OfferID}}">{{.Offer}}</a>{{if .PublicKeySHA256}}; public key SHA-256 <span class="hex">{{.PublicKeySHA256}}</span>{{end}}
{{- else with .Approval}}approves {{.TargetKind}} <a class="fp" href="#b-{{.TargetID}}">{{.Target}}</a> by {{range $i, $s := .Signatures}}{{if $i}}, {{end}}{{$s.Name}} <span class="fp">{{$s.Fingerprint}}</span>{{if $s.NotCounted}} <span class="bad">(not counted)</span>{{end}}{{end}}
{{- else with .Receipt}}upload of key package <a class="fp" href="#b-{{.PackageID}}">{{.Package}}</a>: {{.Result}}{{if .Error}}; Key Vault said: {{.Error}}{{end}}
{{- if .Matches}}; <span class="ok">public key matches the package</span>{{else if .Differs}}; <span class="bad">public key differs from the package</span>{{end}}{{end}}
{{- if .Findings}}<ul class="f">{{range .Findings}}<li><span class="v">{{.Verdict}}</span> {{.Message}}</li>{{end}}</ul>{{end -}}
</td>{{if .Online}}{{else}}<td></td>{{end}}</tr>
{{end}}

{{- define "failed" -}}
<tr class="failed" id="b-{{.ID}}"><td class="n">{{.Order}}</td><td class="t"></td>{{if .Online}}<td></td>{{end}}<td class="c"><span class="k">not verified</span> · {{.Chain}} seq {{.Seq}} · bundle <span class="fp" title="{{.ID}}">{{.Fingerprint}}</span>
{{- if .Path}}<br>file {{.Path}}{{end}}<ul class="f"><li><span class="v">{{.Verdict}}</span> {{.Message}}</li></ul></td>{{if not .Online}}<td></td>{{end}}</tr>
{{end}}

{{- define "end" -}}
</tbody></table></section>
<footer><p>End of report.</p></footer>
</body>
</html>
{{end}}
`

var pageTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"duration":  humanDuration,
	"placement": placementText,
	"seqs":      seqList,
}).Parse(pageTemplates))

// rowTmpl and keyTmpl are the templates of the rows of the timeline and the key inventory.
var rowTmpl, keyTmpl = pageTmpl.Lookup("row"), pageTmpl.Lookup("key")

// formatTime shows a Unix time in UTC to the second.
func formatTime(s int64) string { return time.Unix(s, 0).UTC().Format("2006-01-02 15:04:05") }

// humanDuration says a number of seconds in words: "7 days", "1 day 12 hours",
// "5 minutes", "1 minute 30 seconds", "0 seconds".
func humanDuration(secs int64) string {
	if secs == 0 {
		return "0 seconds"
	}
	var parts []string
	if secs < 0 {
		parts = append(parts, "minus")
		secs = -secs
	}
	for _, u := range []struct {
		n    int64
		name string
	}{{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}} {
		if q := secs / u.n; q > 0 {
			s := fmt.Sprintf("%d %s", q, u.name)
			if q != 1 {
				s += "s"
			}
			parts = append(parts, s)
			secs -= q * u.n
		}
	}
	return strings.Join(parts, " ")
}

// htmlWriter streams the timeline and assembles the report.
type htmlWriter struct {
	path string
	body *os.File
	w    *bufio.Writer
	rows uint64
}

func newHTMLWriter(p string) (*htmlWriter, error) {
	dir, base := filepath.Split(p)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return nil, fmt.Errorf("%s names a folder, not a file", p)
	}
	f, err := os.CreateTemp(dir, "."+base+".body-*")
	if err != nil {
		return nil, err
	}
	return &htmlWriter{path: p, body: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

// abort removes the temporary timeline; it is safe to call after finish.
func (h *htmlWriter) abort() {
	if h.body == nil {
		return
	}
	h.body.Close()
	os.Remove(h.body.Name())
	h.body = nil
}

// stepInfo is what the auditor worked out about a bundle that the page shows.
type stepInfo struct {
	counted []bool   // approvals: which signatures counted
	receipt *Receipt // receipts: the inventory's view
	pubSHA  string   // key packages: the SHA-256 of the public key, in hex, if it has one
}

// rowView is a verified bundle as the timeline shows it: the header, and the payload of its
// kind (exactly one of Enrollment ... Receipt is set).
//
// The timeline has a row per bundle, so its template is the report's hot path: every action
// costs a call of the escaper html/template puts after it (through reflection), and more for
// a number or a function. Values are therefore formatted here, as text: numbers and times are
// strings, and text that the row shows next to each other without markup between is one
// field (Place, packageView.Key, receiptView.Result). The template still escapes all of it.
type rowView struct {
	ID, Short, Kind       string
	Place                 string // "offline seq 5"
	Order                 string
	Created, Expires      string // formatTime
	Online                bool
	Station, Signer       string
	PolicyID, PolicyShort string
	Findings              []Finding

	Enrollment *enrollmentView
	Policy     *policyView
	Offer      *offerView
	Package    *packageView
	Approval   *approvalView
	Receipt    *receiptView
}

type enrollmentView struct {
	Name, Key, Alg, Software string
	HSM                      *payload.TokenInfo
}

type policyView struct {
	Version              uint64
	PreviousID, Previous string
	Threshold            int
	Custodians           []Approver
	Vaults               []payload.Vault
	MinKEKBits           int
	AllowWeakerKEK       bool
}

type offerView struct {
	KID         string
	KeySize     int
	Expires     string // formatTime
	Attestation string
}

type packageView struct {
	Key             string // "payments-signing RSA-3072": the key's name and type
	Vault           string
	OfferID, Offer  string
	PublicKeySHA256 string
}

type approvalView struct {
	TargetKind, TargetID, Target string
	Signatures                   []signatureView
}

type signatureView struct {
	Name, Fingerprint string
	NotCounted        bool
}

type receiptView struct {
	PackageID, Package string
	Result             string // the outcome, and " as " the key's ID if it has one
	Error              string
	Matches, Differs   bool // Key Vault returned the packaged public key, or another one
}

// step writes one verified bundle of the timeline.
func (h *htmlWriter) step(a *auditor, v *chain.Verified, si stepInfo) error {
	hd := &v.Bundle.Header
	id := v.Bundle.ID()
	r := rowView{ID: id.String(), Short: id.Short(), Kind: hd.Kind.String(),
		Place: hd.Chain.String() + " seq " + strconv.FormatUint(hd.Seq, 10), Order: strconv.FormatUint(a.order, 10),
		Created: formatTime(hd.Created), Expires: formatTime(hd.Expires), Online: hd.Chain == bundle.ChainOnline,
		Station: a.stations[hd.Chain], Signer: hd.Signer.Short()}
	if !hd.Policy.IsZero() {
		r.PolicyID, r.PolicyShort = hd.Policy.String(), hd.Policy.Short()
	}
	for _, f := range v.Findings {
		r.Findings = append(r.Findings, Finding{Verdict: chain.Verdict(f), Message: f.Error()})
	}
	switch p := v.Payload.(type) {
	case *payload.Enrollment:
		r.Enrollment = &enrollmentView{Name: p.Name, Key: p.Key.ID().Short(), Alg: p.Key.Alg, Software: p.Software, HSM: p.HSM}
	case *payload.Policy:
		pv := &policyView{Version: p.Version, Threshold: p.Threshold, Vaults: p.Vaults, MinKEKBits: p.MinKEKBits, AllowWeakerKEK: p.AllowWeakerKEK}
		if !p.Previous.IsZero() {
			pv.PreviousID, pv.Previous = p.Previous.String(), p.Previous.Short()
		}
		for _, c := range p.Custodians {
			pv.Custodians = append(pv.Custodians, Approver{Name: c.Name, Fingerprint: c.Key.ID().Short()})
		}
		r.Policy = pv
	case *payload.KEKOffer:
		o := &offerView{KID: p.KID, KeySize: p.KeySize, Expires: formatTime(p.Expires)}
		if p.Attestation != nil {
			o.Attestation = p.Attestation.Format
		}
		r.Offer = o
	case *payload.KeyPackage:
		kt, _ := p.Target.KeyType()
		r.Package = &packageView{Key: p.KeyName + " " + string(kt), Vault: p.Vault, OfferID: p.KEK.Offer.String(), Offer: p.KEK.Offer.Short(),
			PublicKeySHA256: si.pubSHA}
	case *payload.Approval:
		av := &approvalView{TargetKind: p.TargetKind, TargetID: p.Target.String(), Target: p.Target.Short()}
		for i, s := range p.Signatures {
			name := a.custodians[s.Custodian]
			if name == "" {
				name = "unknown key"
			}
			av.Signatures = append(av.Signatures, signatureView{Name: name, Fingerprint: s.Custodian.Short(),
				NotCounted: i < len(si.counted) && !si.counted[i]})
		}
		r.Approval = av
	case *payload.Receipt:
		rv := &receiptView{PackageID: p.Package.String(), Package: p.Package.Short(), Result: p.Outcome, Error: p.Error}
		if p.KID != "" {
			rv.Result += " as " + p.KID
		}
		if si.receipt != nil {
			rv.Matches, rv.Differs = publicKeyMatch(si.receipt)
		}
		r.Receipt = rv
	}
	h.rows++
	return rowTmpl.Execute(h.w, r)
}

// failedView is a timeline row for a bundle the replay could not verify.
type failedView struct {
	Finding
	Order  uint64
	Online bool
}

// failed writes a timeline row for a bundle the replay could not verify, so that its finding
// has a target.
func (h *htmlWriter) failed(a *auditor, f Finding) error {
	a.order++
	h.rows++
	return pageTmpl.ExecuteTemplate(h.w, "failed", failedView{Finding: f, Order: a.order, Online: f.Chain == "online"})
}

// finish assembles the report and renames it into place.
func (h *htmlWriter) finish(rep *Report) error {
	if err := h.w.Flush(); err != nil {
		return err
	}
	if _, err := h.body.Seek(0, io.SeekStart); err != nil {
		return err
	}
	err := writeAtomic(h.path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		if err := writeHead(bw, rep, h.rows); err != nil {
			return err
		}
		if _, err := io.Copy(bw, h.body); err != nil {
			return err
		}
		if err := pageTmpl.ExecuteTemplate(bw, "end", nil); err != nil {
			return err
		}
		return bw.Flush()
	})
	h.abort()
	return err
}

// headView is what the report shows before the timeline's rows.
type headView struct {
	*Report
	Summary string
	Rows    uint64
}

// writeHead writes everything before the timeline's rows.
func writeHead(w *bufio.Writer, rep *Report, rows uint64) error {
	v := headView{Report: rep, Summary: summaryLine(rep), Rows: rows}
	if err := pageTmpl.ExecuteTemplate(w, "top", v); err != nil {
		return err
	}
	for k, err := range rep.Keys() {
		if err != nil {
			return err
		}
		if err := keyTmpl.Execute(w, newKeyView(&k)); err != nil {
			return err
		}
	}
	return pageTmpl.ExecuteTemplate(w, "middle", v)
}

// keyView is a row of the key inventory. Like rowView its values are formatted as text
// beforehand: the inventory has a row per key package.
type keyView struct {
	Package, PackageFingerprint string
	PackageSeq                  string // "" for none
	Key                         string // "payments-signing RSA-3072"; "" without a key package
	Approvals                   []Approver
	ReceiptMissing, NotUploaded bool
	Rejected                    int
	Receipt                     *Receipt
	Landed                      string // the receipt's vault, and the key's region in parentheses
	ReceiptSeq                  string
	Duplicate                   string // how many versions Key Vault holds, if more than one
	PublicKeySHA256, KCV        string
	Matches, Differs            bool // Key Vault returned the packaged public key, or another one
}

func newKeyView(k *Key) keyView {
	v := keyView{Package: k.Package, PackageFingerprint: k.PackageFingerprint, Approvals: k.Approvals,
		ReceiptMissing: k.Status == StatusReceiptMissing, NotUploaded: k.Status == StatusNotUploaded,
		Rejected: k.Rejected, Receipt: k.Receipt, PublicKeySHA256: k.PublicKeySHA256, KCV: k.KCV}
	if k.PackageSeq != 0 {
		v.PackageSeq = strconv.FormatUint(k.PackageSeq, 10)
	}
	if k.Name != "" {
		v.Key = k.Name + " " + k.KeyType
	}
	if r := k.Receipt; r != nil {
		v.Landed, v.ReceiptSeq = r.Vault, strconv.FormatUint(r.Seq, 10)
		if k.Region != "" {
			v.Landed += " (" + k.Region + ")"
		}
		if len(r.Versions) > 1 {
			v.Duplicate = strconv.Itoa(len(r.Versions))
		}
		v.Matches, v.Differs = publicKeyMatch(r)
	}
	return v
}

// publicKeyMatch says whether the receipt's public key matches the packaged one, and whether
// it differs; neither when there was nothing to compare (a template's {{if}} on the *bool
// itself would be true for false).
func publicKeyMatch(r *Receipt) (matches, differs bool) {
	if r.PublicKeyMatch == nil {
		return false, false
	}
	return *r.PublicKeyMatch, !*r.PublicKeyMatch
}
