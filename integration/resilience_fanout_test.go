package integration_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/shared/secret"
)

// testFanOutKillRerun sends one key to three vaults in two regions (the suite's vault and a
// second one in westeurope, a third in eastus), killing package, approve --region and upload
// at several points and running each again: in the end each vault holds the key exactly
// once, the receipts say each vault's key and version with the packaged public key, and the
// audit passes.
func testFanOutKillRerun(t *testing.T, s *resSuite) {
	tok, err := os.ReadFile(s.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := secret.New(strings.TrimSpace(string(tok)))
	off := kvemu.Limits{Create: -1, RSA2048: -1, RSA3072: -1, RSA4096: -1, EC: -1, Oct: -1, Vault: -1}
	var vaults []*kvemu.Server
	ca := bytes.Clone(s.vault.CACertPEM())
	for range 2 {
		v, err := kvemu.Start(kvemu.Config{Kind: kvemu.KindPremium, Token: token, Limits: off, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		vaults = append(vaults, v)
		ca = append(ca, v.CACertPEM()...)
	}
	// A suite of its own that trusts all three vaults' CAs.
	fs := *s
	fs.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(fs.caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	eu1, eu2, us := s.vault.URL(), vaults[0].URL(), vaults[1].URL()
	r := newResRig(t, &fs, "fanout")

	var st struct {
		StationKey struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"station_key"`
	}
	r.must(0, onlineStation, "init")
	r.json(&st, 0, onlineStation, "status")
	r.must(0, offlineStation, "init", "--hsm-module", s.module, "--token-label", "station",
		"--custodian", "alice=alice", "--custodian", "bob=bob", "--custodian", "carol=carol", "--threshold", "2",
		"--vault", eu1+"=premium:westeurope", "--vault", eu2+"=premium:westeurope", "--vault", us+"=premium:eastus",
		"--region", "westeurope=2:alice,bob", "--region", "eastus=1:carol", "--online-fingerprint", st.StationKey.Fingerprint)
	r.policyFP = r.offlineStatus().Policy.Fingerprint
	r.must(0, onlineStation, "trust", "--fingerprint", r.policyFP)
	for i, v := range []string{eu1, eu2, us} {
		r.must(0, onlineStation, "kek", "create", "--vault", v, "--name", "fanout-kek-"+string(rune('a'+i)), "--size", "3072")
	}
	r.must(0, offlineStation, "kek", "accept")
	r.must(0, offlineStation, "keygen", "--type", "EC-P256", "--ident", "fan")

	// killAndRerun kills a command at each of points in turn, then runs it to the end.
	killAndRerun := func(station string, points []string, args ...string) {
		t.Helper()
		for _, point := range points {
			if res := r.run(station, point, args...); !res.killed {
				t.Fatalf("byok-%s %s was not killed at %s: exit %d\n%s", station, strings.Join(args, " "), point, res.code, res.stderr)
			}
		}
		r.must(0, station, args...)
	}
	// Three vaults: two named, one more of westeurope by --region.
	killAndRerun(offlineStation, []string{"package-wrapped@2", "package-appended"},
		"package", "--key", "fan", "--name", "fanout-key", "--vault", eu1, "--region", "westeurope", "--vault", us)
	killAndRerun(offlineStation, []string{"approve-signed@1"}, "approve", "--region", "westeurope")
	killAndRerun(offlineStation, []string{"approve-signed@1"}, "approve", "--region", "eastus")
	killAndRerun(onlineStation, []string{"upload-before-import@2", "upload-after-import@2"}, "upload")
	r.must(0, onlineStation, "upload")
	r.must(0, offlineStation, "sync")

	for _, v := range []*kvemu.Server{s.vault, vaults[0], vaults[1]} {
		vs, err := v.KeyVersions("fanout-key")
		if err != nil || len(vs) != 1 {
			t.Errorf("%s holds fanout-key %d times (%v), want once", v.URL(), len(vs), err)
		}
	}
	var rep struct {
		Verdict  string `json:"verdict"`
		Findings []struct {
			Message string `json:"message"`
		} `json:"findings"`
		Counts struct {
			Imported int `json:"imported"`
			Packages int `json:"packages"`
		} `json:"counts"`
		Regions []struct {
			Name     string `json:"name"`
			Imported int    `json:"imported"`
		} `json:"regions"`
	}
	r.json(&rep, 0, offlineStation, "audit", "--media", r.medium(), "--policy", r.policyFP)
	if rep.Verdict != "PASS" || rep.Counts.Packages != 3 || rep.Counts.Imported != 3 {
		t.Errorf("audit = %+v, want PASS with 3 packages imported", rep)
	}
	if len(rep.Regions) != 2 || rep.Regions[0].Name != "eastus" || rep.Regions[0].Imported != 1 || rep.Regions[1].Imported != 2 {
		t.Errorf("audit regions = %+v, want eastus 1 imported, westeurope 2", rep.Regions)
	}
	// Each receipt names its vault's key and version, with the packaged public key.
	res := r.must(0, offlineStation, "audit", "--media", r.medium(), "--policy", r.policyFP)
	for _, v := range []string{eu1, eu2, us} {
		if !strings.Contains(res.stdout, "-> "+v+"/keys/fanout-key/") {
			t.Errorf("the audit names no imported version of fanout-key in %s:\n%s", v, res.stdout)
		}
	}
	if n := strings.Count(res.stdout, "imported, public key matches"); n != 3 {
		t.Errorf("%d keys imported with the packaged public key, want 3:\n%s", n, res.stdout)
	}
}
