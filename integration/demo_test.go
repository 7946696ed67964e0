package integration_test

// The README's first command, scripts/demo.sh, run as a user would run it: it must keep
// working, print the transcript it promises and leave behind what it says it leaves.

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
)

// TestDemo runs scripts/demo.sh into a new folder, checks the transcript step by step and
// what the demo left there (the medium, both ledgers, tokens, report, logs, the vault's
// state), runs it again into the same folder and checks that it refuses a folder it did not
// make.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries and runs the whole ceremony")
	}
	softhsmtest.Require(t)
	t.Parallel()
	out := filepath.Join(t.TempDir(), "demo-out")

	stdout := runDemo(t, out, 0)
	transcript, err := os.ReadFile(filepath.Join(out, "transcript.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(transcript) != stdout {
		t.Errorf("transcript.txt is not what the demo printed")
	}
	fps := checkDemoTranscript(t, stdout)
	checkDemoFolder(t, out, fps)

	// Again into the same folder: the previous demo is cleared, and the new one passes.
	stdout = runDemo(t, out, 0)
	if !strings.Contains(stdout, "removed the previous demo") {
		t.Errorf("the second run does not say that it cleared the first:\n%s", head(stdout, 5))
	}
	checkDemoFolder(t, out, checkDemoTranscript(t, stdout))

	// A folder the demo did not make is refused and left alone.
	other := t.TempDir()
	keep := filepath.Join(other, "notes.txt")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	runDemo(t, other, 1)
	if b, err := os.ReadFile(keep); err != nil || string(b) != "mine" {
		t.Errorf("the demo touched a folder it did not make: %q, %v", b, err)
	}
}

// runDemo runs scripts/demo.sh out and fails the test unless it exits with want; it returns
// stdout.
func runDemo(t *testing.T, out string, want int) string {
	t.Helper()
	cmd := exec.Command("../scripts/demo.sh", out)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BYOK_") && !strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run demo: %v", err)
	}
	if code != want {
		t.Fatalf("scripts/demo.sh %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", out, code, want, so.String(), se.String())
	}
	return so.String()
}

// demoFingerprints are the fingerprints the transcript showed.
type demoFingerprints struct {
	online, policy string
	packages       []string
	regionsPolicy  string
}

const fpRE = `([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})`

// checkDemoTranscript checks that the transcript shows every step in order, each with its
// station, command and essential output, and returns the fingerprints it showed.
func checkDemoTranscript(t *testing.T, s string) demoFingerprints {
	t.Helper()
	var fps demoFingerprints
	pos := 0
	// next finds re after the previous match and returns its first group.
	next := func(re string) string {
		t.Helper()
		loc := regexp.MustCompile(`(?m)` + re).FindStringSubmatchIndex(s[pos:])
		if loc == nil {
			t.Fatalf("the transcript lacks, after offset %d, %q:\n%s", pos, re, s)
		}
		m := ""
		if len(loc) >= 4 && loc[2] >= 0 {
			m = s[pos+loc[2] : pos+loc[3]]
		}
		pos += loc[1]
		return m
	}
	next(`^== setup: start the local Key Vault`)
	next(`no-echo prompt`)
	next(`^== step 1: online station: `)
	next(`^   \$ byok-online init$`)
	fps.online = next(`^   \| station key fingerprint: ` + fpRE + `$`)
	next(`^== step 2: offline station: `)
	next(`^   \$ byok-offline init .*--custodian alice=alice --custodian bob=bob --custodian carol=carol .*--threshold 2 .*--online-fingerprint ` + fps.online + `$`)
	fps.policy = next(`^   \| policy v1 +` + fpRE + ` +2 of 3 custodians`)
	next(`^== step 3: online station: `)
	next(`^   \$ byok-online trust --fingerprint ` + fps.policy + `$`)
	next(`^   \| pinned policy ` + fps.policy + `$`)
	next(`^== step 4: online station: `)
	next(`^   \$ byok-online kek create `)
	next(`^   \|   size: +RSA-4096, import only$`)
	next(`^== step 5: offline station: `)
	next(`^   \$ byok-offline kek accept$`)
	next(`^   \| accepted 1, refused 0$`)
	next(`^== step 6: offline station: `)
	next(`^   \$ byok-offline keygen .*--type RSA-3072`)
	next(`^   \| public key SHA-256 [0-9a-f]{64}$`)
	next(`^== step 7: offline station: `)
	next(`^   \$ byok-offline keygen .*--type EC-P256`)
	next(`^   \| public key SHA-256 [0-9a-f]{64}$`)
	for i, key := range []string{"contoso-rsa", "contoso-ec"} {
		next(`^== step ` + string(rune('8'+i)) + `: offline station: `)
		next(`^   \$ byok-offline package .*--key ` + key + ` `)
		fps.packages = append(fps.packages, next(`^   \| key package `+fpRE+` written$`))
	}
	for i, p := range fps.packages {
		next(`^== step 1` + string(rune('0'+i)) + `: offline station: custodians alice and bob `)
		next(`^   \$ byok-offline approve .*--package ` + p + ` --custodian alice --custodian bob`)
		next(`^   \|   approvals +2 of 2: alice, bob$`)
	}
	next(`^== step 12: online station: `)
	next(`^   \$ byok-online verify$`)
	next(`^   \| result: verified, no findings$`)
	next(`^== step 13: online station: `)
	next(`^   \$ byok-online upload$`)
	next(`^   \| 2 imported$`)
	next(`^== step 14: offline station: `)
	next(`^   \$ byok-offline sync$`)
	next(`^   \| 2 receipt\(s\) on the medium, 2 new$`)
	next(`^== step 15: offline station: `)
	next(`^   \$ byok-offline audit --media usb --policy ` + fps.policy + ` --html report.html$`)
	next(`^   \| PASS$`)
	next(`^== step 16: online station: `)
	next(`^   \$ byok-online audit --media usb --policy ` + fps.policy + `$`)
	next(`^   \| PASS$`)

	// Part 2: two regions.
	next(`^== part 2: two regions`)
	next(`^== step 18: offline station: `)
	next(`^   \$ byok-offline init .*--vault https://[^ ]+=premium:westeurope --vault https://[^ ]+=premium:eastus --region westeurope=2:alice,bob --region eastus=1:carol,dave `)
	fps.regionsPolicy = next(`^   \| policy v1 +` + fpRE + ` +2 of 4 custodians`)
	next(`^   \|   region eastus: 1 of carol, dave approve each key for https://`)
	next(`^   \|   region westeurope: 2 of alice, bob approve each key for https://`)
	next(`^== step 22: offline station: `)
	next(`^   \| accepted 2, refused 0$`)
	next(`^== step 24: offline station: `)
	next(`^   \$ byok-offline keygen .*--ident contoso-eu --regions westeurope$`)
	next(`^   \| bound to region\(s\) westeurope`)
	next(`^== step 25: offline station: `)
	next(`^   \$ byok-offline package .*--key contoso-global --vault https://[^ ]+ --vault https://`)
	next(`^   \| Next: 2 of region westeurope's 2 custodians approve it`)
	next(`^   \| Next: 1 of region eastus's 2 custodians approve it`)
	next(`^== step 26: offline station: `)
	next(`^   \$ byok-offline package .*--key contoso-eu --region westeurope$`)
	next(`^== step 27: offline station: `)
	next(`^   ! byok-offline: error: policy residency: key "contoso-eu" may live only in region\(s\) westeurope, and https://[^ ]+ is in eastus$`)
	next(`^   -> refused \(exit 7\), and nothing was written to the medium$`)
	next(`^== step 28: offline station: `)
	next(`^   \$ byok-offline approve .*--region westeurope --custodian alice --custodian bob `)
	next(`^   \|   approvals +2 of 2: alice, bob \(2 of region westeurope's 2 custodians\)$`)
	next(`^   \|   approvals +2 of 2: alice, bob \(2 of region westeurope's 2 custodians\)$`)
	next(`^== step 29: offline station: `)
	next(`^   ! byok-offline: error: alice does not approve keys for https://[^ ]+, a vault of region eastus$`)
	next(`^== step 30: offline station: `)
	next(`^   \|   approvals +1 of 1: carol \(1 of region eastus's 2 custodians\)$`)
	next(`^== step 31: online station: `)
	next(`^   \| 3 imported$`)
	next(`^== step 32: offline station: `)
	next(`^   \| 3 receipt\(s\) on the medium, 3 new$`)
	next(`^== step 33: offline station: `)
	next(`^   \$ byok-offline audit --media usb-regions --policy ` + fps.regionsPolicy + ` --html report-regions.html$`)
	next(`^   \| PASS$`)
	next(`^   \| region      eastus: 1 of carol, dave approve its keys; vaults https://[^ ]+; 1 key package\(s\), 1 imported$`)
	next(`^   \| region      westeurope: 2 of alice, bob approve its keys; vaults https://[^ ]+; 2 key package\(s\), 2 imported$`)
	next(`^   \|   sha256:[0-9a-f]{64} \(contoso-eu\) bound to westeurope$`)
	next(`^Where to look`)
	next(`report\.html`)
	return fps
}

// checkDemoFolder checks what the demo left in out against the fingerprints its transcript
// showed.
func checkDemoFolder(t *testing.T, out string, fps demoFingerprints) {
	t.Helper()
	path := func(p ...string) string { return filepath.Join(append([]string{out}, p...)...) }

	// The medium: both chains, and a plain .byok beside each package.
	for _, c := range []struct {
		glob string
		want int
	}{
		{"usb/offline/*/*.bundle", 7}, // enrollment, policy, its approval, 2 packages, 2 approvals
		{"usb/online/*/*.bundle", 4},  // enrollment, KEK offer, 2 receipts
		{"usb/byok/*.byok", 2},
		{"softhsm/tokens/*", 5}, // station, alice, bob, carol, dave
		{"pins/*.pin", 5},
		{"usb-regions/offline/*/*.bundle", 9}, // enrollment, policy, its approval, 3 packages, 3 approvals (two of them in one run)
		{"usb-regions/online/*/*.bundle", 6},  // enrollment, 2 KEK offers, 3 receipts
		{"usb-regions/byok/*.byok", 3},
	} {
		if got, _ := filepath.Glob(path(c.glob)); len(got) != c.want {
			t.Errorf("%s: %d files, want %d", c.glob, len(got), c.want)
		}
	}
	for _, p := range []string{"usb/AIRGAP-BYOK", "offline-state", "online-state/station.key", "report.html",
		"transcript.txt", "kv/ca.pem", "kv/vault.db", "logs/kvemu.log", "logs/13-online-upload.log", "bin/byok-offline", "bin/byok-online"} {
		if _, err := os.Stat(path(p)); err != nil {
			t.Errorf("the demo left no %s: %v", p, err)
		}
	}
	for _, ready := range []string{"kv/ready", "kv/westeurope/ready", "kv/eastus/ready"} {
		if _, err := os.Stat(path(ready)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v): the local Key Vault was not stopped", ready, err)
		}
	}
	regional, err := os.ReadFile(path("report-regions.html"))
	if err != nil || !bytes.Contains(regional, []byte("PASS")) || !bytes.Contains(regional, []byte(`id="regions"`)) || !bytes.Contains(regional, []byte(`id="residency"`)) {
		t.Errorf("report-regions.html does not show the passing regional audit with its per-region view (%v)", err)
	}
	html, err := os.ReadFile(path("report.html"))
	if err != nil || !bytes.Contains(html, []byte("PASS")) || !bytes.Contains(html, []byte(fps.policy)) {
		t.Errorf("report.html does not show the passing audit of policy %s (%v)", fps.policy, err)
	}

	// PIN files are the owner's alone, and no PIN or token appears in any output.
	var secrets []string
	pins, _ := filepath.Glob(path("pins/*"))
	tokenFile := path("kv/token")
	for _, p := range append(pins, tokenFile) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if p != tokenFile && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 0600", p, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.TrimSpace(string(b)); len(s) >= 8 {
			secrets = append(secrets, s)
		} else {
			t.Errorf("%s holds no secret of at least 8 characters", p)
		}
	}
	logs, _ := filepath.Glob(path("logs/*"))
	for _, p := range append(logs, path("transcript.txt"), path("report.html"), path("report-regions.html")) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains a PIN or the vault token", p)
			}
		}
	}

	// The stations' own views agree with the transcript.
	var on struct {
		StationKey struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"station_key"`
		Policy struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"policy"`
		Counts  map[string]int `json:"upload_counts"`
		Pending bool           `json:"pending_write"`
	}
	demoJSON(t, out, &on, "bin/byok-online", "status", "--json", "--state-dir", "online-state", "--media", "usb")
	if on.StationKey.Fingerprint != fps.online || on.Policy.Fingerprint != fps.policy || on.Counts["imported"] != 2 || on.Pending {
		t.Errorf("byok-online status = %+v; the transcript showed station %s, policy %s, and 2 uploads", on, fps.online, fps.policy)
	}
	var off struct {
		Online struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"online"`
		Policy struct {
			Fingerprint string `json:"fingerprint"`
			Threshold   int    `json:"threshold"`
			Custodians  int    `json:"custodians"`
		} `json:"policy"`
	}
	demoJSON(t, out, &off, "bin/byok-offline", "status", "--json")
	if off.Online.Fingerprint != fps.online || off.Policy.Fingerprint != fps.policy || off.Policy.Threshold != 2 || off.Policy.Custodians != 3 {
		t.Errorf("byok-offline status = %+v; the transcript showed online station %s and policy %s (2 of 3)", off, fps.online, fps.policy)
	}
	var rep struct {
		Verdict  string         `json:"verdict"`
		Pinned   bool           `json:"pinned"`
		Counts   map[string]int `json:"counts"`
		Toolsets []struct {
			Chain   string `json:"chain"`
			Version string `json:"version"`
			SHA256  string `json:"sha256"`
			Format  int    `json:"format_version"`
			Bundles int    `json:"bundles"`
		} `json:"toolsets"`
		Keys []struct {
			Name               string `json:"name"`
			PackageFingerprint string `json:"package_fingerprint"`
			Status             string `json:"status"`
			Receipt            struct {
				Version        string `json:"version"`
				PublicKeyMatch bool   `json:"public_key_match"`
			} `json:"receipt"`
		} `json:"keys"`
	}
	demoJSON(t, out, &rep, "bin/byok-online", "audit", "--media", "usb", "--policy", fps.policy, "--json")
	if rep.Verdict != "PASS" || !rep.Pinned || rep.Counts["packages"] != 2 || rep.Counts["imported"] != 2 || len(rep.Keys) != 2 {
		t.Fatalf("audit of the demo's medium: %+v", rep)
	}
	// Each station's binary, by the hash its version command prints, wrote every bundle of
	// its chain, in format version 2.
	if len(rep.Toolsets) != 2 {
		t.Errorf("audit toolsets %+v, want one per station", rep.Toolsets)
	}
	for _, st := range []struct {
		chain, bin string
		bundles    int
	}{{"offline", "bin/byok-offline", 7}, {"online", "bin/byok-online", 4}} {
		var self struct {
			Version string `json:"version"`
			SHA256  string `json:"sha256"`
		}
		demoJSON(t, out, &self, st.bin, "version", "--json")
		for _, ts := range rep.Toolsets {
			if ts.Chain == st.chain && (ts.SHA256 != self.SHA256 || ts.Version != self.Version || ts.Format != 2 || ts.Bundles != st.bundles || len(self.SHA256) != 64) {
				t.Errorf("the audit says the %s chain was written by %+v; %s is %+v and wrote %d bundles", st.chain, ts, st.bin, self, st.bundles)
			}
		}
	}

	// The vault holds each key exactly once, as the version the receipt names.
	tok, err := kvemu.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	v, err := kvemu.Start(kvemu.Config{Kind: kvemu.KindPremium, Token: tok, StatePath: path("kv/vault.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("reopen the demo's vault state: %v", err)
	}
	defer v.Close()
	for _, k := range rep.Keys {
		vs, err := v.KeyVersions(k.Name)
		if err != nil {
			t.Fatalf("key %s: %v", k.Name, err)
		}
		if len(vs) != 1 || vs[0].Version != k.Receipt.Version || !vs[0].Imported || k.Status != "imported" || !k.Receipt.PublicKeyMatch {
			t.Errorf("key %s: the vault holds %+v; the audit says %+v", k.Name, vs, k)
		}
	}
}

// demoJSON runs a binary the demo built, in its folder with the offline station's
// environment, and decodes its JSON output into v.
func demoJSON(t *testing.T, out string, v any, args ...string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = out
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+filepath.Join(out, "softhsm/softhsm2.conf"),
		"BYOK_OFFLINE_STATE_DIR=offline-state", "BYOK_MEDIA=usb", "BYOK_CRASHPOINT=")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, se.String())
	}
	if err := json.Unmarshal(so.Bytes(), v); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, so.String())
	}
}

func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
