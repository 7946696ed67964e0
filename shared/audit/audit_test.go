package audit_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/fstest"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

const day = 24 * time.Hour

// jsonReport is the --json output.
type jsonReport struct {
	audit.Report
	Keys []audit.Key `json:"keys"`
}

func parseJSON(t testing.TB, out string) jsonReport {
	t.Helper()
	var r jsonReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	return r
}

// approved writes setup, a KEK offer, an RSA-3072 key package and its approval by the
// threshold, and returns the package.
func approved(t testing.TB, c *chaintest.Ceremony) *bundle.Bundle {
	t.Helper()
	check(t, c.Setup())
	off := must[*bundle.Bundle](t)(c.Offer())
	pkg := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.RSA3072, "key-1"))
	must[*bundle.Bundle](t)(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1))
	return pkg
}

// otherPolicy returns policy v1 of another deployment (another seed).
func otherPolicy(t testing.TB) bundle.ID {
	c := newCeremony(t, chaintest.Config{Seed: 2})
	check(t, c.Setup())
	return c.PolicyID
}

// The audit's verdict, exit code and the bundle each class of failure is found at.
func TestAuditVerdicts(t *testing.T) {
	tests := []struct {
		name string
		// build writes the medium and returns extra flags; by default the policy is pinned.
		build     func(t *testing.T, c *chaintest.Ceremony) []string
		verdict   string // first finding's class; "" for PASS
		chain     string
		seq       uint64
		code      int
		wantPkgs  int // key inventory rows
		wantStops bool
	}{
		{
			name: "clean ceremony passes",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				must[[]*bundle.Bundle](t)(c.Full(payload.RSA3072, payload.ECP256, payload.RSA2048))
				return nil
			},
			code: exitcode.OK, wantPkgs: 3,
		},
		{
			name: "swapped plain byok copy",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				pkgs := must[[]*bundle.Bundle](t)(c.Full(payload.RSA3072))
				dir := filepath.Join(c.M.Dir(), "byok")
				check(t, os.MkdirAll(dir, 0o755))
				check(t, os.WriteFile(filepath.Join(dir, "key-1-"+pkgs[0].ID().Short()+".byok"), []byte(`{"schema_version":"1.0.0"}`), 0o444))
				return nil
			},
			verdict: "byok copy mismatch", chain: "offline", seq: 4, code: exitcode.Verify, wantPkgs: 1,
		},
		{
			name: "bad signature",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				pkgs := must[[]*bundle.Bundle](t)(c.Full(payload.RSA3072))
				rewrite(t, c, pkgs[0], func(b []byte) []byte { b[bundle.HeaderSize+10] ^= 0x01; return b })
				return nil
			},
			verdict: "bad signature", chain: "offline", seq: 4, code: exitcode.Verify, wantStops: true,
		},
		{
			name: "chain break",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				pkgs := must[[]*bundle.Bundle](t)(c.Full(payload.RSA3072))
				check(t, os.Remove(c.File(pkgs[0])))
				return nil
			},
			verdict: "chain break", chain: "offline", seq: 5, code: exitcode.Verify, wantStops: true,
		},
		{
			name: "missing approval",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				check(t, c.Setup())
				off := must[*bundle.Bundle](t)(c.Offer())
				pkg := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.RSA3072, "key-1"))
				must[*bundle.Bundle](t)(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0))
				must[*bundle.Bundle](t)(c.Receipt(pkg))
				return nil
			},
			verdict: "missing approval", chain: "online", seq: 3, code: exitcode.Verify, wantPkgs: 1,
		},
		{
			name: "expired",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				pkg := approved(t, c)
				c.Clock = c.Clock.Add(8 * day)
				must[*bundle.Bundle](t)(c.Receipt(pkg))
				return nil
			},
			verdict: "expired", chain: "online", seq: 3, code: exitcode.Verify, wantPkgs: 1,
		},
		{
			name: "key mismatch",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				pkg := approved(t, c)
				r := must[*payload.Receipt](t)(c.ReceiptPayload(pkg))
				r.PublicKey = must[[]byte](t)(x509.MarshalPKIXPublicKey(&c.KEK.PublicKey))
				must[*bundle.Bundle](t)(c.Append(bundle.ChainOnline, r))
				return nil
			},
			verdict: "key mismatch", chain: "online", seq: 3, code: exitcode.Verify, wantPkgs: 1,
		},
		{
			name: "policy violation: vault not allowed",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				check(t, c.Setup())
				o := c.OfferPayload("00000000000000000000000000000001")
				o.Vault = "https://fabrikam-byok.vault.azure.net"
				o.KID = o.Vault + "/keys/kek/00000000000000000000000000000001"
				off := must[*bundle.Bundle](t)(c.Append(bundle.ChainOnline, o))
				c.RegisterOffer(off.ID(), o)
				must[*bundle.Bundle](t)(c.Package(off.ID(), payload.RSA3072, "key-1"))
				return nil
			},
			verdict: "policy violation", chain: "online", seq: 2, code: exitcode.Verify, wantPkgs: 1,
		},
		{
			name: "untrusted policy fingerprint",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				must[[]*bundle.Bundle](t)(c.Full(payload.RSA3072))
				return []string{"--policy", strings.ToLower(otherPolicy(t).Short())}
			},
			verdict: "untrusted", chain: "offline", seq: 2, code: exitcode.Verify, wantStops: true,
		},
		{
			name: "untrusted policy ID",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				must[[]*bundle.Bundle](t)(c.Full(payload.RSA3072))
				return []string{"--policy", otherPolicy(t).String()}
			},
			verdict: "untrusted", chain: "offline", seq: 2, code: exitcode.Verify, wantStops: true,
		},
		{
			name: "malformed: truncated bundle",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				pkgs := must[[]*bundle.Bundle](t)(c.Full(payload.RSA3072))
				rewrite(t, c, pkgs[0], func(b []byte) []byte { return b[:len(b)-7] })
				return nil
			},
			verdict: "malformed", chain: "offline", seq: 4, code: exitcode.Bundle, wantStops: true,
		},
		{
			name: "unsupported version",
			build: func(t *testing.T, c *chaintest.Ceremony) []string {
				pkgs := must[[]*bundle.Bundle](t)(c.Full(payload.RSA3072))
				rewrite(t, c, pkgs[0], func(b []byte) []byte { b[9] = 3; return b })
				return nil
			},
			verdict: "unsupported version", chain: "offline", seq: 4, code: exitcode.Bundle, wantStops: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCeremony(t, chaintest.Config{})
			extra := tt.build(t, c)
			if !slices.Contains(extra, "--policy") {
				extra = append(extra, "--policy", c.PolicyID.Short())
			}
			html := filepath.Join(t.TempDir(), "report.html")
			args := append([]string{"audit", "--json", "--media", c.M.Dir(), "--html", html}, extra...)
			code, out, errs := cliRun(t, args...)
			if code != tt.code {
				t.Fatalf("exit code = %d, want %d\nstderr: %s", code, tt.code, errs)
			}
			r := parseJSON(t, out)
			page := string(must[[]byte](t)(os.ReadFile(html)))
			if tt.verdict == "" {
				if r.Verdict != audit.Pass || len(r.Findings) != 0 || !r.Complete || !r.Pinned || r.TrustedOnFirstUse {
					t.Fatalf("report = verdict %s, findings %+v, complete %v, pinned %v, tofu %v; want a pinned, complete PASS",
						r.Verdict, r.Findings, r.Complete, r.Pinned, r.TrustedOnFirstUse)
				}
				if errs != "" && strings.Contains(errs, "error:") {
					t.Errorf("stderr on PASS: %s", errs)
				}
			} else {
				if r.Verdict != audit.Fail || len(r.Findings) == 0 {
					t.Fatalf("verdict %s with %d findings, want FAIL", r.Verdict, len(r.Findings))
				}
				f := r.Findings[0]
				if f.Verdict != tt.verdict || f.Chain != tt.chain || f.Seq != tt.seq {
					t.Fatalf("first finding = [%s] %s seq %d (%s), want [%s] %s seq %d", f.Verdict, f.Chain, f.Seq, f.Message, tt.verdict, tt.chain, tt.seq)
				}
				if f.ID == "" || f.Fingerprint == "" || f.Message == "" {
					t.Errorf("finding does not name its bundle: %+v", f)
				}
				if f.Stopped != tt.wantStops {
					t.Errorf("finding stopped = %v, want %v", f.Stopped, tt.wantStops)
				}
				// The HTML report links the finding to its bundle, and the bundle is there.
				if !strings.Contains(page, `href="#b-`+f.ID+`"`) || !strings.Contains(page, `id="b-`+f.ID+`"`) {
					t.Errorf("HTML report has no link to or no target for bundle %s", f.Fingerprint)
				}
				if !strings.Contains(stderrJSON(t, errs), "verification") && tt.code == exitcode.Verify {
					t.Errorf("stderr = %s, want a verification failure", errs)
				}
			}
			if got := len(r.Keys); got != tt.wantPkgs {
				t.Errorf("key inventory has %d rows, want %d", got, tt.wantPkgs)
			}
			if r.Counts.Keys != len(r.Keys) {
				t.Errorf("counts.keys = %d, inventory has %d", r.Counts.Keys, len(r.Keys))
			}
			if verdict := r.Verdict; !strings.Contains(page, `<h1 id="verdict">`+verdict+`</h1>`) {
				t.Errorf("HTML report does not state the verdict %s", verdict)
			}
		})
	}
}

// stderrJSON returns the "code" member of the JSON error on stderr, or "" if there is none.
func stderrJSON(t testing.TB, s string) string {
	t.Helper()
	for line := range strings.SplitSeq(s, "\n") {
		var e struct {
			Code string `json:"code"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Code != "" {
			return e.Code
		}
	}
	i := strings.Index(s, "{")
	if i < 0 {
		return ""
	}
	var e struct {
		Code string `json:"code"`
	}
	json.Unmarshal([]byte(s[i:]), &e)
	return e.Code
}

// Run's report and the typed errors its findings carry.
func TestRunFindingErrors(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	check(t, c.Setup())
	off := must[*bundle.Bundle](t)(c.Offer())
	pkg := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.RSA3072, "key-1"))
	must[*bundle.Bundle](t)(c.Approve(pkg.ID(), bundle.KindKeyPackage, 0))
	must[*bundle.Bundle](t)(c.Receipt(pkg))
	must[*bundle.Bundle](t)(c.Receipt(pkg)) // a second upload: replay

	rep := run(t, audit.Options{Media: c.M.Dir(), Policy: c.PolicyID.String()})
	var classes []error
	for _, f := range rep.Findings {
		switch {
		case errors.Is(f.Err, chain.ErrMissingApproval):
			classes = append(classes, chain.ErrMissingApproval)
		case errors.Is(f.Err, chain.ErrReplay):
			classes = append(classes, chain.ErrReplay)
		default:
			t.Errorf("unexpected finding %v", f.Err)
		}
	}
	if len(classes) != 2 {
		t.Fatalf("findings = %v, want missing approval then replay", rep.Findings)
	}
	err := rep.Err()
	var me *audit.MalformedError
	if !errors.Is(err, audit.ErrFailed) || errors.As(err, &me) {
		t.Errorf("Err() = %v, want a verification failure, not a malformed bundle", err)
	}
	// The inventory: one imported key with a single approver, and the replayed receipt.
	var rows []audit.Key
	for k, err := range rep.Keys() {
		check(t, err)
		rows = append(rows, k)
	}
	if len(rows) != 2 || rows[0].Status != audit.StatusImported || rows[1].Status != audit.StatusUnmatched {
		t.Fatalf("inventory = %+v, want imported then unmatched_receipt", rows)
	}
	if len(rows[0].Approvals) != 1 || rows[0].Approvals[0].Name != "custodian-1" {
		t.Errorf("approvals = %+v, want custodian-1 only", rows[0].Approvals)
	}
	if rows[1].Package != pkg.ID().String() || rows[1].Receipt == nil || rows[1].Receipt.Seq != 4 {
		t.Errorf("unmatched row = %+v, want the second receipt (online seq 4) for %s", rows[1], pkg.ID().Short())
	}
}

// The key inventory says which key landed where, with whose approval, and whether Key
// Vault returned the packaged public key.
func TestKeyInventory(t *testing.T) {
	c := newCeremony(t, chaintest.Config{Vault: "https://contoso-byok.managedhsm.azure.net", VaultKind: payload.VaultManagedHSM})
	check(t, c.Setup())
	off := must[*bundle.Bundle](t)(c.Offer())
	rsa := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.RSA3072, "signing"))
	aes := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.AES128, "data-key"))
	left := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.ECP256, "left-behind"))
	for _, p := range []*bundle.Bundle{rsa, aes, left} {
		must[*bundle.Bundle](t)(c.Approve(p.ID(), bundle.KindKeyPackage, 1, 2))
	}
	rej := must[*payload.Receipt](t)(c.ReceiptPayload(rsa))
	rej.Outcome, rej.KID, rej.PublicKey, rej.Created, rej.Error = payload.OutcomeRejected, "", nil, 0, "Throttled: try later"
	must[*bundle.Bundle](t)(c.Append(bundle.ChainOnline, rej))
	must[*bundle.Bundle](t)(c.Receipt(rsa))
	must[*bundle.Bundle](t)(c.Receipt(aes))

	rep := run(t, audit.Options{Media: c.M.Dir(), Policy: c.PolicyID.Short()})
	if rep.Failed() {
		t.Fatalf("verdict FAIL: %+v", rep.Findings)
	}
	byName := map[string]audit.Key{}
	for k, err := range rep.Keys() {
		check(t, err)
		byName[k.Name] = k
	}
	tests := []struct {
		name, status, keyType string
		rejected              int
		match                 *bool
		version               string
	}{
		{"signing", audit.StatusImported, "RSA-3072", 1, ptr(true), "00000000000000000000000000000004"},
		{"data-key", audit.StatusImported, "AES-128", 0, nil, "00000000000000000000000000000005"},
		{"left-behind", audit.StatusNotUploaded, "EC-P256", 0, nil, ""},
	}
	for _, tt := range tests {
		k, ok := byName[tt.name]
		if !ok {
			t.Errorf("no inventory row for %s", tt.name)
			continue
		}
		if k.Status != tt.status || k.KeyType != tt.keyType || k.Rejected != tt.rejected || k.Region != "westeurope" {
			t.Errorf("%s: status %s, type %s, rejected %d, region %q; want %s, %s, %d, westeurope", tt.name, k.Status, k.KeyType, k.Rejected, k.Region, tt.status, tt.keyType, tt.rejected)
		}
		names := []string{}
		for _, a := range k.Approvals {
			names = append(names, a.Name)
		}
		if !slices.Equal(names, []string{"custodian-2", "custodian-3"}) && !slices.Equal(names, []string{"custodian-3", "custodian-2"}) {
			t.Errorf("%s: approvals %v, want custodian-2 and custodian-3", tt.name, names)
		}
		if tt.status == audit.StatusNotUploaded {
			if k.Receipt != nil {
				t.Errorf("%s: receipt %+v for a key never uploaded", tt.name, k.Receipt)
			}
			continue
		}
		r := k.Receipt
		if r == nil || r.Version != tt.version || r.Vault != "https://contoso-byok.managedhsm.azure.net" {
			t.Fatalf("%s: receipt %+v, want version %s in the managed HSM", tt.name, r, tt.version)
		}
		if (r.PublicKeyMatch == nil) != (tt.match == nil) || (r.PublicKeyMatch != nil && *r.PublicKeyMatch != *tt.match) {
			t.Errorf("%s: public key match %v, want %v", tt.name, r.PublicKeyMatch, tt.match)
		}
	}
	if rep.Counts.Imported != 2 || rep.Counts.Outstanding != 1 || rep.Counts.Packages != 3 {
		t.Errorf("counts = %+v, want 3 packages, 2 imported, 1 outstanding", rep.Counts)
	}
}

func ptr[T any](v T) *T { return &v }

// The HTML report says a key's public key matches only where Key Vault returned the packaged
// one: in the key inventory ("match", "MISMATCH") and in the receipt's timeline row.
func TestHTMLPublicKeyMismatch(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	check(t, c.Setup())
	off := must[*bundle.Bundle](t)(c.Offer())
	good := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.RSA3072, "good"))
	bad := must[*bundle.Bundle](t)(c.Package(off.ID(), payload.RSA3072, "bad"))
	for _, p := range []*bundle.Bundle{good, bad} {
		must[*bundle.Bundle](t)(c.Approve(p.ID(), bundle.KindKeyPackage, 0, 1))
	}
	goodR := must[*bundle.Bundle](t)(c.Receipt(good))
	r := must[*payload.Receipt](t)(c.ReceiptPayload(bad))
	r.Outcome, r.PublicKey = payload.OutcomePublicKeyMismatch, must[*payload.Receipt](t)(c.ReceiptPayload(good)).PublicKey
	badR := must[*bundle.Bundle](t)(c.Append(bundle.ChainOnline, r))

	page := filepath.Join(t.TempDir(), "report.html")
	rep := run(t, audit.Options{Media: c.M.Dir(), Policy: c.PolicyID.Short(), HTML: page})
	byName := map[string]audit.Key{}
	for k, err := range rep.Keys() {
		check(t, err)
		byName[k.Name] = k
	}
	if m := byName["bad"].Receipt.PublicKeyMatch; m == nil || *m {
		t.Fatalf("bad: public key match %v, want false", m)
	}
	html := string(must[[]byte](t)(os.ReadFile(page)))
	row := func(start string) string {
		i := strings.Index(html, start)
		if i < 0 {
			t.Fatalf("the report has no %q", start)
		}
		return html[i : i+strings.Index(html[i:], "</tr>")]
	}
	for _, tt := range []struct {
		row, want, not string
	}{
		{row(`<td class="nw">good RSA-3072</td>`), `<span class="ok">match</span>`, "MISMATCH"},
		{row(`<td class="nw">bad RSA-3072</td>`), `<span class="bad">MISMATCH</span>`, `>match<`},
		{row(`<tr id="b-` + goodR.ID().String() + `"`), "public key matches the package", "differs"},
		{row(`<tr id="b-` + badR.ID().String() + `"`), "public key differs from the package", "matches"},
	} {
		if !strings.Contains(tt.row, tt.want) || strings.Contains(tt.row, tt.not) {
			t.Errorf("row %q: want %q and no %q", tt.row, tt.want, tt.not)
		}
	}
}

// The text form: verdict first, then the counts, the keys and the findings.
func TestTextOutput(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	pkg := approved(t, c)
	r := must[*payload.Receipt](t)(c.ReceiptPayload(pkg))
	r.Outcome = payload.OutcomePublicKeyMismatch
	must[*bundle.Bundle](t)(c.Append(bundle.ChainOnline, r))

	code, out, errs := cliRun(t, "audit", "--media", c.M.Dir())
	if code != exitcode.Verify {
		t.Fatalf("exit code %d, want %d; stderr %s", code, exitcode.Verify, errs)
	}
	lines := strings.Split(out, "\n")
	if lines[0] != "FAIL" {
		t.Errorf("first line = %q, want FAIL", lines[0])
	}
	for _, want := range []string{
		"1 finding(s): key mismatch",
		"trusted on first use",
		"bundles     offline 5, online 3",
		"keys        1 packages, 1 imported, 0 not uploaded",
		"key-1 RSA-3072 (package " + pkg.ID().Short() + ") -> https://contoso-byok.vault.azure.net/keys/key-1/",
		"public_key_mismatch, PUBLIC KEY DIFFERS; approved by custodian-1, custodian-2",
		"1. [key mismatch] online chain seq 3 (receipt)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "keys (1):"), strings.Index(out, "findings (1):"); i < 0 || j < i {
		t.Errorf("keys must come before findings:\n%s", out)
	}
	if !strings.Contains(errs, "byok-test: error: verification failed: audit FAIL: 1 finding(s): key mismatch") {
		t.Errorf("stderr = %q", errs)
	}
}

// The JSON form is one object with a stable set of members (only ever added to).
func TestJSONMembers(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	must[[]*bundle.Bundle](t)(c.Full(payload.ECP256))
	code, out, _ := cliRun(t, "audit", "--media", c.M.Dir(), "--json")
	if code != exitcode.OK {
		t.Fatalf("exit code %d", code)
	}
	var top map[string]json.RawMessage
	check(t, json.Unmarshal([]byte(out), &top))
	for _, m := range []string{"verdict", "medium", "generated", "anchor", "anchor_fingerprint", "pinned", "trusted_on_first_use",
		"complete", "heads", "counts", "findings", "policies", "warnings", "warning_count", "keys"} {
		if _, ok := top[m]; !ok {
			t.Errorf("JSON output lacks member %q", m)
		}
	}
	r := parseJSON(t, out)
	if len(r.Policies) != 1 {
		t.Fatalf("policies = %+v, want one", r.Policies)
	}
	var by []string
	for _, a := range r.Policies[0].ApprovedBy {
		by = append(by, a.Name)
	}
	slices.Sort(by)
	if !slices.Equal(by, []string{"custodian-1", "custodian-2"}) {
		t.Errorf("policy v1 approved by %v, want custodian-1 and custodian-2", by)
	}
	if !r.TrustedOnFirstUse || r.Pinned || r.AnchorFingerprint != c.PolicyID.Short() {
		t.Errorf("tofu %v, pinned %v, anchor %s; want trusted on first use of %s", r.TrustedOnFirstUse, r.Pinned, r.AnchorFingerprint, c.PolicyID.Short())
	}
	if len(r.Keys) != 1 || r.Keys[0].Receipt == nil || r.Keys[0].Receipt.PublicKeyMatch == nil || !*r.Keys[0].Receipt.PublicKeyMatch {
		t.Errorf("keys = %+v, want one key whose public key matches", r.Keys)
	}
}

// Usage and input errors and their exit codes.
func TestCommandErrors(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	check(t, c.Setup())
	notMedium := t.TempDir()
	check(t, os.WriteFile(filepath.Join(notMedium, "x"), []byte("x"), 0o644))
	garbage := filepath.Join(t.TempDir(), "cp.json")
	check(t, os.WriteFile(garbage, []byte(`{"format":"something else"}`), 0o644))
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no media", []string{"audit"}, exitcode.Usage},
		{"argument", []string{"audit", "--media", c.M.Dir(), "extra"}, exitcode.Usage},
		{"media is no folder", []string{"audit", "--media", filepath.Join(notMedium, "x")}, exitcode.Bundle},
		{"media missing", []string{"audit", "--media", filepath.Join(notMedium, "missing")}, exitcode.Bundle},
		{"media without marker", []string{"audit", "--media", notMedium}, exitcode.Bundle},
		{"bad fingerprint", []string{"audit", "--media", c.M.Dir(), "--policy", "not-a-fingerprint!"}, exitcode.Usage},
		{"html in missing folder", []string{"audit", "--media", c.M.Dir(), "--html", filepath.Join(notMedium, "nope", "r.html")}, exitcode.Usage},
		{"html on the medium", []string{"audit", "--media", c.M.Dir(), "--html", filepath.Join(c.M.Dir(), "report.html")}, exitcode.Usage},
		{"checkpoint on the medium", []string{"audit", "--media", c.M.Dir(), "--checkpoint", filepath.Join(c.M.Dir(), "offline", "cp.json")}, exitcode.Usage},
		{"missing checkpoint", []string{"audit", "--media", c.M.Dir(), "--since", filepath.Join(notMedium, "none.json")}, exitcode.Bundle},
		{"malformed checkpoint", []string{"audit", "--media", c.M.Dir(), "--since", garbage}, exitcode.Bundle},
	}
	// Bad input writes nothing: not on the medium, not in the other folders named.
	medium, other := tree(t, c.M.Dir()), tree(t, notMedium)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := cliRun(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.code, errs)
			}
			if after := tree(t, c.M.Dir()); !maps.Equal(medium, after) {
				t.Errorf("the medium changed:\nbefore %v\nafter  %v", medium, after)
			}
			if after := tree(t, notMedium); !maps.Equal(other, after) {
				t.Errorf("%s changed:\nbefore %v\nafter  %v", notMedium, other, after)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			if !strings.Contains(errs, "byok-test: error: ") {
				t.Errorf("stderr = %q, want an error line", errs)
			}
		})
	}
}

// The audit reads a write-protected medium, and never changes a writable one.
func TestReadOnly(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	must[[]*bundle.Bundle](t)(c.Full(payload.RSA3072))
	dir := c.M.Dir()
	before := tree(t, dir)

	rep := run(t, audit.Options{Media: dir, Policy: c.PolicyID.Short(), HTML: filepath.Join(t.TempDir(), "r.html")})
	if rep.Failed() {
		t.Fatalf("verdict FAIL on a writable medium: %+v", rep.Findings)
	}
	after := tree(t, dir)
	delete(after, ".lock") // the shared lock's file, which the stations create too
	if !maps.Equal(before, after) {
		t.Errorf("the audit changed the medium:\nbefore %v\nafter  %v", before, after)
	}

	fstest.ReadOnly(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o644); err == nil {
		t.Fatal("the medium is still writable")
	}
	rep = run(t, audit.Options{Media: dir, Policy: c.PolicyID.Short(), Checkpoint: filepath.Join(t.TempDir(), "cp.json")})
	if rep.Failed() || rep.Counts.Imported != 1 {
		t.Fatalf("read-only medium: verdict %s, imported %d, findings %+v", rep.Verdict, rep.Counts.Imported, rep.Findings)
	}
}

// tree maps every path under dir to its size and modification time.
func tree(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	check(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			m[rel] = "dir" // a folder's time changes with the lock file the stations also create
			return nil
		}
		m[rel] = fi.Mode().String() + " " + strconv.FormatInt(fi.Size(), 10) + " " + fi.ModTime().String()
		return nil
	}))
	return m
}

// The HTML report and the checkpoint appear whole or not at all: an interrupted audit leaves
// nothing in their folder, a finished one exactly the two files.
func TestOutputsAtomic(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	must[[]*bundle.Bundle](t)(c.Full(payload.RSA3072))
	out := t.TempDir()
	opts := audit.Options{Media: c.M.Dir(), HTML: filepath.Join(out, "report.html"), Checkpoint: filepath.Join(out, "cp.json")}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := audit.Run(ctx, opts, nil)
	if !errors.Is(err, audit.ErrInterrupted) {
		t.Fatalf("Run(cancelled) = %v, want ErrInterrupted", err)
	}
	if ents := must[[]os.DirEntry](t)(os.ReadDir(out)); len(ents) != 0 {
		t.Fatalf("an interrupted audit left %v", ents)
	}

	rep := run(t, opts)
	var names []string
	for _, e := range must[[]os.DirEntry](t)(os.ReadDir(out)) {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"cp.json", "report.html"}) {
		t.Errorf("output folder holds %v, want cp.json and report.html", names)
	}
	if rep.HTML != opts.HTML || rep.Checkpoint != opts.Checkpoint {
		t.Errorf("report names html %q and checkpoint %q", rep.HTML, rep.Checkpoint)
	}
	page := string(must[[]byte](t)(os.ReadFile(opts.HTML)))
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.HasSuffix(page, "</html>\n") {
		t.Errorf("the report is not one whole page")
	}
}

// A plain .byok copy in byok/ that names no key package on the medium is a finding: nothing
// checked it, and it may be uploaded by hand. A copy named for its package, and equal to its
// .byok, is none.
func TestUnnamedByokCopy(t *testing.T) {
	c := newCeremony(t, chaintest.Config{})
	pkgs := must[[]*bundle.Bundle](t)(c.Full(payload.RSA3072))
	kp := must[any](t)(payload.Decode(bundle.KindKeyPackage, must[[]byte](t)(pkgs[0].Open()))).(*payload.KeyPackage)
	dir := filepath.Join(c.M.Dir(), "byok")
	check(t, os.MkdirAll(dir, 0o755))
	check(t, os.WriteFile(filepath.Join(dir, "key-1-"+pkgs[0].ID().Short()+".byok"), kp.BYOK, 0o444))
	args := []string{"audit", "--json", "--media", c.M.Dir(), "--policy", c.PolicyID.Short(), "--html", filepath.Join(t.TempDir(), "r.html")}
	if code, out, errs := cliRun(t, args...); code != exitcode.OK {
		t.Fatalf("audit with the package's own copy: exit %d, want 0\n%s\n%s", code, out, errs)
	}
	check(t, os.WriteFile(filepath.Join(dir, "key-1-AAAA-AAAA-AAAA-AAAA.byok"), kp.BYOK, 0o444))
	code, out, errs := cliRun(t, args...)
	if code != exitcode.Verify {
		t.Fatalf("audit with a copy of no package: exit %d, want %d\n%s", code, exitcode.Verify, errs)
	}
	r := parseJSON(t, out)
	if r.Verdict != audit.Fail || len(r.Findings) != 1 {
		t.Fatalf("verdict %s, findings %+v; want FAIL with one finding", r.Verdict, r.Findings)
	}
	if f := r.Findings[0]; f.Verdict != "byok copy unknown" || f.Path != "byok/key-1-AAAA-AAAA-AAAA-AAAA.byok" ||
		f.Message != "byok/key-1-AAAA-AAAA-AAAA-AAAA.byok names no key package on this medium: nothing checked it; do not upload it" {
		t.Errorf("finding = %+v, want the unnamed copy", f)
	}
}
