package audit

// The HTML report. Output rules enforced here:
//
//   - One self-contained file: inline CSS, no scripts, no external resources, readable in any
//     browser and printable.
//   - Everything that comes from the medium (names, tags, URLs, error texts, file names) is
//     untrusted and goes through hb.text, which escapes it; hb.raw takes only constants and
//     values this package formats itself (numbers, hex IDs, fingerprints, times).
//   - The verdict comes first. The timeline is streamed to a temporary file in the report's
//     folder as the replay goes; at the end the verdict, findings, key inventory and policies
//     are written to another temporary file, the timeline is copied after them, and that file
//     is synced and renamed into place.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

const css = `body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em 2em;color:#111;background:#fff}
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
.tl{table-layout:fixed}.tl th:nth-child(1){width:3.5em}.tl th:nth-child(2){width:11em}
.tl td.n,.tl td.t{color:#555}.tl td.c{overflow-wrap:anywhere}.tl .k{font-weight:bold}
.tl tr.failed td.c{background:#fde7ea}
.tl ul.f{margin:.2em 0;padding-left:1.2em;color:#b00020}
tr:target{background:#fff3c4}
@media print{tr{break-inside:avoid}}
`

// htmlWriter streams the timeline and assembles the report.
type htmlWriter struct {
	path string
	body *os.File
	w    *bufio.Writer
	b    hb
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
}

// step writes one verified bundle of the timeline.
func (h *htmlWriter) step(a *auditor, v *chain.Verified, si stepInfo) error {
	hd := &v.Bundle.Header
	id := v.Bundle.ID()
	b := &h.b
	b.reset()
	b.raw(`<tr id="b-`)
	b.raw(id.String())
	b.raw(`"><td class="n">`)
	b.u(a.order)
	b.raw(`</td><td class="t">`)
	b.time(hd.Created)
	b.raw(`</td>`)
	if hd.Chain == bundle.ChainOnline {
		b.raw(`<td></td>`)
	}
	b.raw(`<td class="c"><span class="k">`)
	b.raw(hd.Kind.String())
	b.raw(`</span> · `)
	b.raw(hd.Chain.String())
	b.raw(` seq `)
	b.u(hd.Seq)
	b.raw(` · bundle <span class="fp" title="`)
	b.raw(id.String())
	b.raw(`">`)
	b.raw(id.Short())
	b.raw(`</span><br>signed by `)
	b.text(a.stations[hd.Chain])
	b.raw(` <span class="fp">`)
	b.raw(hd.Signer.Short())
	b.raw(`</span>; expires `)
	b.time(hd.Expires)
	if !hd.Policy.IsZero() {
		b.raw(`; under policy <a class="fp" href="#b-`)
		b.raw(hd.Policy.String())
		b.raw(`">`)
		b.raw(hd.Policy.Short())
		b.raw(`</a>`)
	}
	b.raw(`<br>`)
	h.details(a, v, si)
	if len(v.Findings) > 0 {
		b.raw(`<ul class="f">`)
		for _, f := range v.Findings {
			b.raw(`<li><span class="v">`)
			b.text(chain.Verdict(f))
			b.raw(`</span> `)
			b.text(f.Error())
			b.raw(`</li>`)
		}
		b.raw(`</ul>`)
	}
	b.raw(`</td>`)
	if hd.Chain == bundle.ChainOffline {
		b.raw(`<td></td>`)
	}
	b.raw("</tr>\n")
	h.rows++
	_, err := h.w.Write(b.b)
	return err
}

// details writes what a bundle says, by kind.
func (h *htmlWriter) details(a *auditor, v *chain.Verified, si stepInfo) {
	b := &h.b
	switch p := v.Payload.(type) {
	case *payload.Enrollment:
		b.raw(`station `)
		b.text(p.Name)
		b.raw(` enrolls key <span class="fp">`)
		b.raw(p.Key.ID().Short())
		b.raw(`</span> (`)
		b.text(p.Key.Alg)
		b.raw(`), software `)
		b.text(p.Software)
		if p.HSM != nil {
			b.raw(`, HSM token `)
			b.text(p.HSM.Label)
			b.raw(` (`)
			b.text(p.HSM.Manufacturer)
			b.raw(` `)
			b.text(p.HSM.Model)
			b.raw(`)`)
		}
	case *payload.Policy:
		b.raw(`policy version `)
		b.u(p.Version)
		if !p.Previous.IsZero() {
			b.raw(` after <a class="fp" href="#b-`)
			b.raw(p.Previous.String())
			b.raw(`">`)
			b.raw(p.Previous.Short())
			b.raw(`</a>`)
		}
		b.raw(`: `)
		b.u(uint64(p.Threshold))
		b.raw(` of `)
		b.u(uint64(len(p.Custodians)))
		b.raw(` custodians (`)
		for i, c := range p.Custodians {
			if i > 0 {
				b.raw(`, `)
			}
			b.text(c.Name)
			b.raw(` <span class="fp">`)
			b.raw(c.Key.ID().Short())
			b.raw(`</span>`)
		}
		b.raw(`); vaults `)
		for i, vl := range p.Vaults {
			if i > 0 {
				b.raw(`, `)
			}
			b.text(vl.URL)
			b.raw(` (`)
			b.text(vl.Kind)
			b.raw(`, `)
			b.text(vl.Region)
			b.raw(`)`)
		}
		b.raw(`; KEK ≥ `)
		b.u(uint64(p.MinKEKBits))
		b.raw(` bits`)
		if p.AllowWeakerKEK {
			b.raw(`, weaker KEK allowed`)
		}
	case *payload.KEKOffer:
		b.raw(`KEK `)
		b.text(p.KID)
		b.raw(` RSA-`)
		b.u(uint64(p.KeySize))
		b.raw(`, expires `)
		b.time(p.Expires)
		if p.Attestation != nil {
			b.raw(`, attestation `)
			b.text(p.Attestation.Format)
		}
	case *payload.KeyPackage:
		kt, _ := p.Target.KeyType()
		b.raw(`key `)
		b.text(p.KeyName)
		b.raw(` `)
		b.text(string(kt))
		b.raw(` for `)
		b.text(p.Vault)
		b.raw(`, wrapped with KEK offer <a class="fp" href="#b-`)
		b.raw(p.KEK.Offer.String())
		b.raw(`">`)
		b.raw(p.KEK.Offer.Short())
		b.raw(`</a>`)
		if len(p.PublicKey) > 0 {
			b.raw(`; public key SHA-256 <span class="hex">`)
			b.raw(sha256Hex(p.PublicKey))
			b.raw(`</span>`)
		}
	case *payload.Approval:
		b.raw(`approves `)
		b.text(p.TargetKind)
		b.raw(` <a class="fp" href="#b-`)
		b.raw(p.Target.String())
		b.raw(`">`)
		b.raw(p.Target.Short())
		b.raw(`</a> by `)
		for i, s := range p.Signatures {
			if i > 0 {
				b.raw(`, `)
			}
			name := a.custodians[s.Custodian]
			if name == "" {
				name = "unknown key"
			}
			b.text(name)
			b.raw(` <span class="fp">`)
			b.raw(s.Custodian.Short())
			b.raw(`</span>`)
			if i < len(si.counted) && !si.counted[i] {
				b.raw(` <span class="bad">(not counted)</span>`)
			}
		}
	case *payload.Receipt:
		b.raw(`upload of key package <a class="fp" href="#b-`)
		b.raw(p.Package.String())
		b.raw(`">`)
		b.raw(p.Package.Short())
		b.raw(`</a>: `)
		b.text(p.Outcome)
		if p.KID != "" {
			b.raw(` as `)
			b.text(p.KID)
		}
		if p.Error != "" {
			b.raw(`; Key Vault said: `)
			b.text(p.Error)
		}
		if r := si.receipt; r != nil && r.PublicKeyMatch != nil {
			if *r.PublicKeyMatch {
				b.raw(`; <span class="ok">public key matches the package</span>`)
			} else {
				b.raw(`; <span class="bad">public key differs from the package</span>`)
			}
		}
	}
}

// failed writes a timeline row for a bundle the replay could not verify, so that its finding
// has a target.
func (h *htmlWriter) failed(a *auditor, f Finding) error {
	a.order++
	b := &h.b
	b.reset()
	b.raw(`<tr class="failed" id="b-`)
	b.text(f.ID)
	b.raw(`"><td class="n">`)
	b.u(a.order)
	b.raw(`</td><td class="t"></td>`)
	if f.Chain == "online" {
		b.raw(`<td></td>`)
	}
	b.raw(`<td class="c"><span class="k">not verified</span> · `)
	b.text(f.Chain)
	b.raw(` seq `)
	b.u(f.Seq)
	b.raw(` · bundle <span class="fp" title="`)
	b.text(f.ID)
	b.raw(`">`)
	b.text(f.Fingerprint)
	b.raw(`</span>`)
	if f.Path != "" {
		b.raw(`<br>file `)
		b.text(f.Path)
	}
	b.raw(`<ul class="f"><li><span class="v">`)
	b.text(f.Verdict)
	b.raw(`</span> `)
	b.text(f.Message)
	b.raw(`</li></ul></td>`)
	if f.Chain != "online" {
		b.raw(`<td></td>`)
	}
	b.raw("</tr>\n")
	h.rows++
	_, err := h.w.Write(b.b)
	return err
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
		if _, err := bw.WriteString("</tbody></table></section>\n<footer><p>End of report.</p></footer>\n</body>\n</html>\n"); err != nil {
			return err
		}
		return bw.Flush()
	})
	h.abort()
	return err
}

// writeHead writes everything before the timeline's rows.
func writeHead(w *bufio.Writer, rep *Report, rows uint64) error {
	var b hb
	flush := func() error {
		_, err := w.Write(b.b)
		b.reset()
		return err
	}
	cls := "pass"
	if rep.Failed() {
		cls = "fail"
	}
	b.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	b.raw("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n")
	b.raw("<title>airgap-byok audit: ")
	b.raw(rep.Verdict)
	b.raw("</title>\n<style>\n")
	b.raw(css)
	b.raw("</style>\n</head>\n<body>\n")
	b.raw(`<header class="verdict `)
	b.raw(cls)
	b.raw(`"><h1 id="verdict">`)
	b.raw(rep.Verdict)
	b.raw("</h1>\n<p>")
	b.text(summaryLine(rep))
	b.raw("</p></header>\n")

	// Summary.
	b.raw("<section id=\"summary\"><table>\n")
	row := func(k string, v func()) {
		b.raw("<tr><th>")
		b.raw(k)
		b.raw("</th><td>")
		v()
		b.raw("</td></tr>\n")
	}
	row("medium", func() { b.text(rep.Medium) })
	row("generated", func() { b.raw(rep.Generated.Format(time.RFC3339)) })
	row("trust anchor", func() {
		if rep.AnchorFingerprint == "" {
			b.raw("none: no policy verified")
			return
		}
		b.raw(`policy v1 <a class="fp" href="#b-`)
		b.raw(rep.Anchor)
		b.raw(`">`)
		b.raw(rep.AnchorFingerprint)
		b.raw(`</a> `)
		switch {
		case rep.TrustedOnFirstUse:
			b.raw(`<span class="warn">trusted on first use: compare this fingerprint with the one the custodians signed off</span>`)
		case rep.Pinned:
			b.raw(`<span class="ok">pinned by the auditor</span>`)
		}
	})
	if rep.Since != nil {
		row("since", func() {
			b.raw("checkpoint ")
			b.text(rep.Since.File)
			b.raw(" at offline seq ")
			b.u(rep.Since.Heads.Offline.Seq)
			b.raw(", online seq ")
			b.u(rep.Since.Heads.Online.Seq)
			if !rep.Since.Resumed {
				b.raw(" (no policy was in force then: replayed from genesis)")
			}
		})
	}
	c := rep.Counts
	row("bundles", func() {
		b.raw("offline ")
		b.u(c.Offline)
		b.raw(", online ")
		b.u(c.Online)
		b.raw("; verified by this audit ")
		b.u(c.Replayed)
		if !rep.Complete {
			b.raw(` <span class="bad">(replay stopped before the end)</span>`)
		}
	})
	row("keys", func() {
		b.u(c.Packages)
		b.raw(" packages, ")
		b.u(c.Imported)
		b.raw(" imported, ")
		b.u(uint64(c.Outstanding))
		b.raw(" not uploaded; ")
		b.u(c.Approvals)
		b.raw(" approvals, ")
		b.u(c.Offers)
		b.raw(" KEK offers, ")
		b.u(c.Receipts)
		b.raw(" receipts")
	})
	b.raw("</table></section>\n")
	if err := flush(); err != nil {
		return err
	}

	// Findings.
	b.raw("<section id=\"findings\"><h2>Findings (")
	b.u(uint64(len(rep.Findings)))
	b.raw(")</h2>\n")
	if len(rep.Findings) == 0 {
		b.raw("<p class=\"ok\">None: every step is signed, ordered and approved, and every uploaded key is the key that was packaged.</p>\n")
	} else {
		b.raw("<ol>\n")
		for _, f := range rep.Findings {
			b.raw(`<li><span class="v">`)
			b.text(f.Verdict)
			b.raw(`</span> `)
			if f.ID != "" && !f.Earlier {
				b.raw(`<a href="#b-`)
				b.text(f.ID)
				b.raw(`">`)
			}
			b.text(f.Chain)
			b.raw(" chain")
			if f.Seq > 0 {
				b.raw(" seq ")
				b.u(f.Seq)
			}
			if f.Kind != "" {
				b.raw(" (")
				b.text(f.Kind)
				b.raw(")")
			}
			if f.Fingerprint != "" {
				b.raw(` <span class="fp">`)
				b.text(f.Fingerprint)
				b.raw(`</span>`)
			}
			if f.ID != "" && !f.Earlier {
				b.raw(`</a>`)
			}
			b.raw(": ")
			b.text(f.Message)
			if f.Stopped {
				b.raw(` <em>(the replay stopped here)</em>`)
			}
			if f.Earlier {
				b.raw(` <em>(found by the audit that wrote the checkpoint)</em>`)
			}
			b.raw("</li>\n")
		}
		b.raw("</ol>\n")
	}
	b.raw("</section>\n")
	if err := flush(); err != nil {
		return err
	}

	// Key inventory.
	b.raw("<section id=\"keys\"><h2>Key inventory (")
	b.u(uint64(c.Keys))
	b.raw(")</h2>\n<table><thead><tr><th>key package</th><th>key</th><th>approved by</th><th>landed in</th><th>public key</th></tr></thead><tbody>\n")
	for k, err := range rep.Keys() {
		if err != nil {
			return err
		}
		keyRow(&b, k)
		if err := flush(); err != nil {
			return err
		}
	}
	b.raw("</tbody></table></section>\n")

	// Policies.
	b.raw("<section id=\"policies\"><h2>Policies</h2>\n<table><thead><tr><th>version</th><th>custodians</th><th>vaults</th><th>rules</th></tr></thead><tbody>\n")
	for _, p := range rep.Policies {
		b.raw(`<tr><td><a class="fp" href="#b-`)
		b.raw(p.ID)
		b.raw(`">`)
		b.raw(p.Fingerprint)
		b.raw(`</a> v`)
		b.u(p.Version)
		if p.Effective == 0 {
			b.raw(` <span class="warn">awaiting approval</span>`)
		} else {
			b.raw(` in force from offline seq `)
			b.u(p.Effective)
		}
		b.raw(`</td><td>`)
		b.u(uint64(p.Threshold))
		b.raw(` of `)
		b.u(uint64(len(p.Custodians)))
		b.raw(`: `)
		for i, cu := range p.Custodians {
			if i > 0 {
				b.raw(`, `)
			}
			b.text(cu.Name)
			b.raw(` <span class="fp">`)
			b.raw(cu.Fingerprint)
			b.raw(`</span>`)
		}
		if len(p.ApprovedBy) > 0 {
			b.raw(`; approved by `)
			for i, ap := range p.ApprovedBy {
				if i > 0 {
					b.raw(`, `)
				}
				b.text(ap.Name)
				b.raw(` <span class="fp">`)
				b.raw(ap.Fingerprint)
				b.raw(`</span>`)
			}
		}
		b.raw(`</td><td>`)
		for i, vl := range p.Vaults {
			if i > 0 {
				b.raw(`<br>`)
			}
			b.text(vl.URL)
			b.raw(` (`)
			b.text(vl.Kind)
			b.raw(`, `)
			b.text(vl.Region)
			b.raw(`)`)
		}
		b.raw(`</td><td>stations offline <span class="fp">`)
		b.raw(p.OfflineStation)
		b.raw(`</span>, online <span class="fp">`)
		b.raw(p.OnlineStation)
		b.raw(`</span>; KEK ≥ `)
		b.u(uint64(p.MinKEKBits))
		b.raw(` bits`)
		if p.AllowWeakerKEK {
			b.raw(` (weaker KEK allowed)`)
		}
		b.raw(`; key types `)
		for i, t := range p.KeyTypes {
			if i > 0 {
				b.raw(`, `)
			}
			b.text(t)
		}
		b.raw(`; lifetime `)
		b.raw(strconv.FormatInt(p.Lifetime, 10))
		b.raw(` s, clock skew ≤ `)
		b.raw(strconv.FormatInt(p.MaxClockSkew, 10))
		b.raw(" s</td></tr>\n")
	}
	b.raw("</tbody></table></section>\n")

	// Warnings.
	if rep.WarningCount > 0 {
		b.raw("<section id=\"warnings\"><h2>Files ignored (")
		b.u(uint64(rep.WarningCount))
		b.raw(")</h2><ul>\n")
		for _, w := range rep.Warnings {
			b.raw("<li>")
			b.text(w)
			b.raw("</li>\n")
		}
		b.raw("</ul></section>\n")
	}

	// Timeline header; the rows follow from the body file.
	b.raw("<section id=\"timeline\"><h2>Timeline (")
	b.u(rows)
	b.raw(" bundles, in replay order)</h2>\n<table class=\"tl\"><thead><tr><th>#</th><th>created (UTC)</th><th>offline chain</th><th>online chain</th></tr></thead><tbody>\n")
	return flush()
}

func keyRow(b *hb, k Key) {
	b.raw(`<tr><td><a class="fp" href="#b-`)
	b.raw(k.Package)
	b.raw(`">`)
	b.raw(k.PackageFingerprint)
	b.raw(`</a>`)
	if k.PackageSeq > 0 {
		b.raw(` offline seq `)
		b.u(k.PackageSeq)
	}
	b.raw(`</td><td class="nw">`)
	if k.Name != "" {
		b.text(k.Name)
		b.raw(` `)
		b.text(k.KeyType)
	} else {
		b.raw(`<span class="bad">no key package awaiting upload</span>`)
	}
	b.raw(`</td><td>`)
	for i, ap := range k.Approvals {
		if i > 0 {
			b.raw(`, `)
		}
		b.text(ap.Name)
		b.raw(` <span class="fp">`)
		b.raw(ap.Fingerprint)
		b.raw(`</span>`)
	}
	b.raw(`</td><td>`)
	r := k.Receipt
	switch {
	case k.Status == StatusReceiptMissing:
		b.raw(`<span class="warn">imported (the online station's ledger says so), receipt missing from this medium</span>`)
	case k.Status == StatusNotUploaded:
		b.raw(`<span class="warn">not uploaded</span>`)
		if k.Rejected > 0 {
			b.raw(`; Key Vault refused it `)
			b.u(uint64(k.Rejected))
			b.raw(` time(s)`)
			if r != nil && r.Error != "" {
				b.raw(`: `)
				b.text(r.Error)
			}
		}
	case r != nil:
		b.text(r.Vault)
		if k.Region != "" {
			b.raw(` (`)
			b.text(k.Region)
			b.raw(`)`)
		}
		b.raw(`<br>kid `)
		b.text(r.KID)
		b.raw(`<br>receipt <a class="fp" href="#b-`)
		b.raw(r.ID)
		b.raw(`">`)
		b.raw(r.Fingerprint)
		b.raw(`</a> online seq `)
		b.u(r.Seq)
		b.raw(`: `)
		b.text(r.Outcome)
	}
	b.raw(`</td><td>`)
	switch {
	case k.PublicKeySHA256 != "":
		b.raw(`packaged <span class="hex">`)
		b.raw(k.PublicKeySHA256)
		b.raw(`</span>`)
		if r != nil && r.PublicKeySHA256 != "" {
			b.raw(`<br>Key Vault <span class="hex">`)
			b.raw(r.PublicKeySHA256)
			b.raw(`</span>`)
		}
		if r != nil && r.PublicKeyMatch != nil {
			if *r.PublicKeyMatch {
				b.raw(`<br><span class="ok">match</span>`)
			} else {
				b.raw(`<br><span class="bad">MISMATCH</span>`)
			}
		}
	case k.KCV != "":
		b.raw(`AES, check value <span class="hex">`)
		b.raw(k.KCV)
		b.raw(`</span> (Key Vault returns no key material)`)
	}
	b.raw("</td></tr>\n")
}

// hb builds HTML in a reusable buffer.
type hb struct{ b []byte }

func (h *hb) reset()        { h.b = h.b[:0] }
func (h *hb) raw(s string)  { h.b = append(h.b, s...) }
func (h *hb) u(n uint64)    { h.b = strconv.AppendUint(h.b, n, 10) }
func (h *hb) time(s int64)  { h.b = time.Unix(s, 0).UTC().AppendFormat(h.b, "2006-01-02 15:04:05") }
func (h *hb) text(s string) { h.b = appendEscaped(h.b, s) }

// appendEscaped appends s with the five characters that are special in HTML text and quoted
// attribute values replaced by character references.
func appendEscaped(b []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var rep string
		switch s[i] {
		case '<':
			rep = "&lt;"
		case '>':
			rep = "&gt;"
		case '&':
			rep = "&amp;"
		case '"':
			rep = "&#34;"
		case '\'':
			rep = "&#39;"
		default:
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, rep...)
		last = i + 1
	}
	return append(b, s[last:]...)
}
