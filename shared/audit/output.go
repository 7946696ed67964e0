package audit

// Text and JSON output. Output rules (shared/jsonout): stdout carries only the result; the
// text form starts with the verdict, then the counts, the keys and where they landed, and the
// findings; the JSON form is one object whose fields are only ever added to. Text from the
// medium is untrusted: control characters are escaped so it cannot drive the terminal.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// WriteText writes the report for people.
func WriteText(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("%s\n  %s\n\n", r.Verdict, clean(summaryLine(r)))
	p("medium      %s\n", clean(r.Medium))
	switch {
	case r.AnchorFingerprint == "":
		p("anchor      none: no policy verified\n")
	case r.TrustedOnFirstUse:
		p("anchor      policy v1 %s, trusted on first use: compare it with the fingerprint the custodians signed off\n", r.AnchorFingerprint)
	case r.Pinned:
		p("anchor      policy v1 %s, pinned\n", r.AnchorFingerprint)
	default:
		p("anchor      policy v1 %s\n", r.AnchorFingerprint)
	}
	if s := r.Since; s != nil {
		how := ""
		if !s.Resumed {
			how = " (no policy was in force then: replayed from genesis)"
		}
		p("since       %s at offline seq %d, online seq %d%s\n", clean(s.File), s.Heads.Offline.Seq, s.Heads.Online.Seq, how)
	}
	c := r.Counts
	stopped := ""
	if !r.Complete {
		stopped = " (the replay stopped before the end)"
	}
	p("bundles     offline %d, online %d; verified by this audit %d%s\n", c.Offline, c.Online, c.Replayed, stopped)
	p("keys        %d packages, %d imported, %d not uploaded; %d approvals, %d KEK offers, %d receipts\n",
		c.Packages, c.Imported, c.Outstanding, c.Approvals, c.Offers, c.Receipts)
	p("files       %d bundle files verified, set SHA-256 %s\n", r.Evidence.Files, r.Evidence.FilesSHA256)
	if r.Tool.SHA256 != "" {
		p("audited by  %s, SHA-256 %s\n", clean(r.Tool.Version), r.Tool.SHA256)
	}
	for _, pol := range r.Policies {
		names := make([]string, len(pol.Custodians))
		for i, cu := range pol.Custodians {
			names[i] = cu.Name
		}
		state := fmt.Sprintf("in force from offline seq %d", pol.Effective)
		if pol.Effective == 0 {
			state = "awaiting approval"
		}
		by := make([]string, len(pol.ApprovedBy))
		for i, ap := range pol.ApprovedBy {
			by[i] = ap.Name
		}
		p("policy      v%d %s %s: %d of %d custodians (%s), approved by %s\n", pol.Version, pol.Fingerprint, state, pol.Threshold, len(pol.Custodians),
			clean(strings.Join(names, ", ")), clean(strings.Join(by, ", ")))
	}
	if hasOwnRegions(r.Regions) {
		for _, rg := range r.Regions {
			p("region      %s\n", clean(regionText(rg)))
		}
	}
	for i, t := range r.Toolsets {
		label := "toolsets   "
		if i > 0 {
			label = "           "
		}
		p("%s %s\n", label, clean(toolsetLine(t)))
	}
	if r.HTML != "" {
		p("html        %s\n", clean(r.HTML))
	}
	if r.Checkpoint != "" {
		p("checkpoint  %s\n", clean(r.Checkpoint))
	}

	p("\nkeys (%d):\n", c.Keys)
	for k, err := range r.Keys() {
		if err != nil {
			return err
		}
		p("  %s\n", clean(keyLine(k)))
	}
	if c.Keys == 0 {
		p("  none\n")
	}
	if len(r.Residency) > 0 {
		p("\nresidency (%d keys bound to regions):\n", len(r.Residency))
		for _, kr := range r.Residency {
			p("  %s\n", clean(residencyText(kr)))
			for _, pl := range kr.Placements {
				p("    %s\n", clean(placementText(pl)))
			}
			for _, v := range kr.Violations {
				p("    VIOLATION: %s\n", clean(v))
			}
		}
	}
	if len(r.Findings) > 0 {
		p("\nfindings (%d):\n", len(r.Findings))
		for i, f := range r.Findings {
			p("  %d. [%s] %s\n", i+1, f.Verdict, clean(findingLine(f)))
		}
	}
	if r.WarningCount > 0 {
		p("\nfiles ignored (%d):\n", r.WarningCount)
		for _, w := range r.Warnings {
			p("  %s\n", clean(w))
		}
		if n := r.WarningCount - len(r.Warnings); n > 0 {
			p("  ... and %d more\n", n)
		}
	}
	return bw.Flush()
}

func summaryLine(r *Report) string {
	c := r.Counts
	if r.Failed() {
		classes := []string{}
		for _, f := range r.Findings {
			if !slices.Contains(classes, f.Verdict) {
				classes = append(classes, f.Verdict)
			}
		}
		return fmt.Sprintf("%d finding(s): %s", len(r.Findings), strings.Join(classes, ", "))
	}
	s := fmt.Sprintf("both chains verify: %d offline and %d online bundles signed, ordered and approved; %d key package(s), %d imported with the packaged public key",
		c.Offline, c.Online, c.Packages, c.Imported)
	if r.TrustedOnFirstUse {
		s += "; the policy was trusted on first use"
	}
	return s
}

func keyLine(k Key) string {
	var sb strings.Builder
	if k.Name != "" {
		fmt.Fprintf(&sb, "%s %s (package %s)", k.Name, k.KeyType, k.PackageFingerprint)
	} else {
		fmt.Fprintf(&sb, "receipt for %s, which is no key package awaiting upload", k.PackageFingerprint)
	}
	r := k.Receipt
	switch {
	case k.Status == StatusReceiptMissing:
		sb.WriteString(": imported (the online station's ledger says so), receipt missing from this medium")
	case k.Status == StatusNotUploaded:
		sb.WriteString(": not uploaded")
		if k.Rejected > 0 {
			fmt.Fprintf(&sb, ", Key Vault refused it %d time(s)", k.Rejected)
		}
	case r != nil:
		fmt.Fprintf(&sb, " -> %s", r.KID)
		if k.Region != "" {
			fmt.Fprintf(&sb, " (%s)", k.Region)
		}
		fmt.Fprintf(&sb, ": %s", r.Outcome)
		switch {
		case r.PublicKeyMatch == nil:
		case *r.PublicKeyMatch:
			sb.WriteString(", public key matches")
		default:
			sb.WriteString(", PUBLIC KEY DIFFERS")
		}
		if len(r.Versions) > 1 {
			fmt.Fprintf(&sb, ", DUPLICATE: Key Vault holds %d versions (%s)", len(r.Versions), strings.Join(r.Versions, ", "))
		}
	}
	if len(k.Approvals) > 0 {
		names := make([]string, len(k.Approvals))
		for i, a := range k.Approvals {
			names[i] = a.Name
			if names[i] == "" {
				names[i] = a.Fingerprint
			}
		}
		fmt.Fprintf(&sb, "; approved by %s", strings.Join(names, ", "))
	} else if k.Name != "" {
		sb.WriteString("; no approvals")
	}
	return sb.String()
}

func findingLine(f Finding) string {
	var sb strings.Builder
	sb.WriteString(f.Chain)
	sb.WriteString(" chain")
	if f.Seq > 0 {
		fmt.Fprintf(&sb, " seq %d", f.Seq)
	}
	if f.Kind != "" {
		fmt.Fprintf(&sb, " (%s)", f.Kind)
	}
	if f.Fingerprint != "" {
		fmt.Fprintf(&sb, " %s", f.Fingerprint)
	}
	fmt.Fprintf(&sb, ": %s", f.Message)
	if f.Stopped {
		sb.WriteString(" [the replay stopped here]")
	}
	if f.Earlier {
		sb.WriteString(" [from the checkpoint]")
	}
	return sb.String()
}

// clean escapes what a terminal would interpret: control characters and invalid UTF-8.
func clean(s string) string {
	ok := func(r rune) bool { return r != utf8.RuneError && (unicode.IsPrint(r) || r == ' ') }
	if !strings.ContainsFunc(s, func(r rune) bool { return !ok(r) }) {
		return s
	}
	var sb strings.Builder
	for i, r := range s {
		if ok(r) {
			sb.WriteRune(r)
			continue
		}
		if r == utf8.RuneError {
			fmt.Fprintf(&sb, `\x%02x`, s[i])
			continue
		}
		fmt.Fprintf(&sb, `\u%04x`, r)
	}
	return sb.String()
}

// WriteJSON writes the report as one JSON object, indented, with the key inventory as the
// member "keys", streamed from the inventory's file.
func WriteJSON(w io.Writer, r *Report) error {
	head, err := encodeIndent(r, "")
	if err != nil {
		return err
	}
	// head is "{\n ... \n}\n": reopen it to append the keys.
	head = bytes.TrimSuffix(head, []byte("\n}\n"))
	bw := bufio.NewWriter(w)
	bw.Write(head)
	bw.WriteString(",\n  \"keys\": [")
	n := 0
	for k, err := range r.Keys() {
		if err != nil {
			return err
		}
		b, err := encodeIndent(k, "    ")
		if err != nil {
			return err
		}
		if n > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n    ")
		bw.Write(bytes.TrimSuffix(b, []byte("\n")))
		n++
	}
	if n > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteString("]\n}\n")
	return bw.Flush()
}

func encodeIndent(v any, prefix string) ([]byte, error) {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	e.SetIndent(prefix, "  ")
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
