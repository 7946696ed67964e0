package integration_test

// The whole ceremony with both real binaries: byok-offline on SoftHSM2 tokens, byok-online
// against the local Key Vault (TLS, the real azkeys client), one medium between them.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// offlineTokens are the SoftHSM2 tokens of the offline station and its custodians.
var offlineTokens = []softhsmtest.Token{
	{Label: "station", PIN: "station-pin-8181", SOPIN: "station-so-8282"},
	{Label: "alice", PIN: "alice-pin-8383", SOPIN: "alice-so-8484"},
	{Label: "bob", PIN: "bob-pin-8585", SOPIN: "bob-so-8686"},
	{Label: "carol", PIN: "carol-pin-8787", SOPIN: "carol-so-8888"}, // joins in policy version 2
}

// TestOfflineWithOnline runs init, trust, KEK creation and acceptance, keygen, package,
// approve, upload and sync across byok-offline and byok-online, for a Premium vault and a
// Managed HSM, and checks that every key landed exactly once, as the key the HSM made. With
// the Premium vault, custodian bob is then replaced by carol in policy version 2, which the
// online station follows.
func TestOfflineWithOnline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both binaries")
	}
	mod := softhsmtest.Require(t)
	dir := t.TempDir()
	offline := filepath.Join(dir, "byok-offline")
	build := exec.Command("go", "build", "-C", "../offline", "-o", offline, "./cmd/byok-offline")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build byok-offline: %v\n%s", err, out)
	}
	online := buildOnline(t, dir).plain

	tests := []struct {
		name  string
		kind  kvemu.Kind
		vault string // the vault kind in the policy
		types []payload.KeyType
	}{
		{"premium", kvemu.KindPremium, "premium", []payload.KeyType{payload.RSA2048, payload.RSA3072, payload.ECP256, payload.ECP384}},
		{"managed HSM", kvemu.KindManagedHSM, "managed_hsm", []payload.KeyType{payload.AES256, payload.ECP521}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCrossRig(t, offline, online, mod, tt.kind)
			c.ceremony(tt.vault, tt.types)
			if tt.kind == kvemu.KindPremium {
				c.nextPolicy()
			}
		})
	}
	// The stick is lost after every step, from the online station's init to the last sync:
	// each time both stations restore what they hold to an empty folder on a new stick, and
	// the ceremony goes on there. Every key lands exactly once, every receipt reaches the
	// final stick, and the audit passes.
	t.Run("stick lost after every step", func(t *testing.T) {
		t.Parallel()
		c := newCrossRig(t, offline, online, mod, kvemu.KindPremium)
		c.lose = true
		c.ceremony("premium", []payload.KeyType{payload.ECP256, payload.RSA2048})
		if c.lost < 10 {
			t.Fatalf("the stick was lost %d times, want after every step", c.lost)
		}
		c.auditPasses(2)
	})
	// A backup stick is made with media copy after the first approval; the ceremony goes on
	// on the original, which is lost after the upload (its receipts never reached another
	// stick). Both stations restore onto the backup what was written since, and the ceremony
	// finishes from it: every key in the vault once, every receipt on the backup, the audit
	// passes.
	t.Run("backup stick, original lost", func(t *testing.T) {
		t.Parallel()
		c := newCrossRig(t, offline, online, mod, kvemu.KindPremium)
		c.backupAt, c.loseAt = "approve", "upload"
		c.ceremony("premium", []payload.KeyType{payload.ECP256, payload.RSA2048})
		if len(c.restored) != 2 || c.restored[0] == 0 || c.restored[1] == 0 || c.medium != c.backup {
			t.Fatalf("restores onto the backup wrote %v bundle(s) (offline, online station), want some each; medium %s", c.restored, c.medium)
		}
		c.auditPasses(2)
	})
}

// auditPasses audits the medium: PASS, with n keys, each imported.
func (c *crossRig) auditPasses(n int) {
	c.t.Helper()
	var audit struct {
		Verdict string `json:"verdict"`
		Keys    []struct {
			Status string `json:"status"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(c.off("audit", "--media", c.medium, "--json")), &audit); err != nil || audit.Verdict != "PASS" || len(audit.Keys) != n {
		c.t.Fatalf("audit of the final stick: %+v (%v), want PASS with %d keys", audit, err, n)
	}
	for _, k := range audit.Keys {
		if k.Status != "imported" {
			c.t.Errorf("audit: a key is %s, want imported", k.Status)
		}
	}
}

// crossRig is both stations, a medium and a local Key Vault.
type crossRig struct {
	t       *testing.T
	offline string
	online  string
	vault   *kvemu.Server
	offEnv  []string
	onEnv   []string
	medium  string
	attRoot string
	// lose, when set, loses the stick after every command but media and audit: both
	// stations restore their copies to a new, empty folder, which becomes the medium.
	lose bool
	lost int
	// backupAt, when set, makes a backup stick with the offline station's media copy after
	// the first command of that name; loseAt loses the original after the first command of
	// its name once the backup exists: both stations restore onto the backup (adding what
	// was written since the copy), which becomes the medium. restored counts the bundles
	// each restore wrote.
	backupAt, loseAt string
	backup           string
	restored         []int
	allPINs          []string
	vaultURL         string
}

func newCrossRig(t *testing.T, offline, online, mod string, kind kvemu.Kind) *crossRig {
	dir := t.TempDir()
	tok, err := kvemu.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	v, err := kvemu.Start(kvemu.Config{Kind: kind, Token: tok, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	c := &crossRig{t: t, offline: offline, online: online, vault: v, medium: filepath.Join(dir, "medium"), vaultURL: v.URL()}
	if err := os.Mkdir(c.medium, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := write("ca.pem", v.CACertPEM(), 0o644)
	token := write("token", []byte(tok.Reveal()+"\n"), 0o600)
	c.attRoot = write("attestation-root.pem", v.AttestationRootPEM(), 0o644)

	conf, err := softhsmtest.Config(filepath.Join(dir, "softhsm"))
	if err != nil {
		t.Fatal(err)
	}
	// The INFO log on, so that every line of it is checked for secrets.
	base := []string{"BYOK_OFFLINE_LOG_LEVEL=info", "BYOK_ONLINE_LOG_LEVEL=info"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BYOK_") && !strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			base = append(base, kv)
		}
	}
	c.offEnv = append(slices.Clip(base), "SOFTHSM2_CONF="+conf, "BYOK_OFFLINE_HSM_MODULE="+mod, "BYOK_OFFLINE_TOKEN_LABEL=station",
		"BYOK_OFFLINE_STATE_DIR="+filepath.Join(dir, "offline-state"), "BYOK_MEDIA="+c.medium)
	for i, tk := range offlineTokens {
		if err := softhsmtest.InitToken(conf, tk); err != nil {
			t.Fatal(err)
		}
		c.allPINs = append(c.allPINs, tk.PIN, tk.SOPIN)
		if i == 0 {
			c.offEnv = append(c.offEnv, "BYOK_OFFLINE_PIN="+tk.PIN)
		} else {
			c.offEnv = append(c.offEnv, "BYOK_OFFLINE_CUSTODIAN_PIN_"+strings.ToUpper(tk.Label)+"="+tk.PIN)
		}
	}
	c.allPINs = append(c.allPINs, tok.Reveal())
	c.onEnv = append(slices.Clip(base), "BYOK_ONLINE_STATE_DIR="+filepath.Join(dir, "online-state"), "BYOK_MEDIA="+c.medium,
		"BYOK_ONLINE_CA_FILE="+ca, "BYOK_ONLINE_TOKEN_FILE="+token)
	return c
}

// run runs a binary and fails the test unless it exits 0; no secret may appear in its
// output.
func (c *crossRig) run(bin string, env []string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	for _, s := range c.allPINs {
		if strings.Contains(out.String()+errb.String(), s) {
			c.t.Errorf("%s %s printed a secret", filepath.Base(bin), args[0])
		}
	}
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func (c *crossRig) off(args ...string) string {
	c.t.Helper()
	defer c.maybeLose(args[0])
	defer c.maybeBackup(args[0])
	return c.run(c.offline, c.offEnv, args...)
}
func (c *crossRig) on(args ...string) string {
	c.t.Helper()
	defer c.maybeLose(args[0])
	defer c.maybeBackup(args[0])
	return c.run(c.online, c.onEnv, args...)
}

// maybeBackup makes the backup stick after the command backupAt, and after the command
// loseAt (once there is a backup) loses the original: the backup, an older copy by now, is
// refused (exit 10) until both stations have restored onto it what they hold; then it is
// the medium.
func (c *crossRig) maybeBackup(cmd string) {
	if c.t.Failed() {
		return
	}
	c.t.Helper()
	switch {
	case cmd == c.backupAt && c.backup == "":
		c.backup = filepath.Join(c.t.TempDir(), "backup")
		if err := os.Mkdir(c.backup, 0o755); err != nil {
			c.t.Fatal(err)
		}
		c.run(c.offline, c.offEnv, "media", "copy", c.medium, c.backup)
	case cmd == c.loseAt && c.backup != "" && c.restored == nil:
		if err := os.RemoveAll(c.medium); err != nil {
			c.t.Fatal(err)
		}
		verify := exec.Command(c.online, "verify", "--media", c.backup)
		verify.Env = c.onEnv
		if out, err := verify.CombinedOutput(); verify.ProcessState.ExitCode() != 10 || !strings.Contains(string(out), "this stick is an older copy") {
			c.t.Fatalf("byok-online verify on the backup before restore: %v, want exit 10 (an older copy)\n%s", err, out)
		}
		for _, st := range []struct {
			bin string
			env []string
		}{{c.offline, c.offEnv}, {c.online, c.onEnv}} {
			var w struct {
				Bundles int `json:"bundles_written"`
			}
			if err := json.Unmarshal([]byte(c.run(st.bin, st.env, "media", "restore", "--to", c.backup, "--json")), &w); err != nil {
				c.t.Fatal(err)
			}
			c.restored = append(c.restored, w.Bundles)
		}
		c.medium = c.backup
		for _, env := range [][]string{c.offEnv, c.onEnv} {
			env[slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "BYOK_MEDIA=") })] = "BYOK_MEDIA=" + c.backup
		}
	}
}

// maybeLose loses the stick after command cmd if c.lose is set: the old folder is removed,
// each station that has a ledger writes its copy of the log to a new empty folder (the
// offline station first), and both stations use it from now on.
func (c *crossRig) maybeLose(cmd string) {
	if !c.lose || cmd == "media" || cmd == "audit" || c.t.Failed() {
		return
	}
	c.t.Helper()
	c.lost++
	if err := os.RemoveAll(c.medium); err != nil {
		c.t.Fatal(err)
	}
	stick := filepath.Join(c.t.TempDir(), fmt.Sprintf("stick-%d", c.lost))
	if err := os.Mkdir(stick, 0o755); err != nil {
		c.t.Fatal(err)
	}
	for _, st := range []struct {
		bin string
		env []string
		key string
	}{{c.offline, c.offEnv, "BYOK_OFFLINE_STATE_DIR="}, {c.online, c.onEnv, "BYOK_ONLINE_STATE_DIR="}} {
		i := slices.IndexFunc(st.env, func(kv string) bool { return strings.HasPrefix(kv, st.key) })
		if _, err := os.Stat(filepath.Join(strings.TrimPrefix(st.env[i], st.key), "ledger.db")); err != nil {
			continue // this station has not begun
		}
		c.run(st.bin, st.env, "media", "restore", "--to", stick)
	}
	c.medium = stick
	for _, env := range [][]string{c.offEnv, c.onEnv} {
		env[slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "BYOK_MEDIA=") })] = "BYOK_MEDIA=" + stick
	}
}

func (c *crossRig) offJSON(v any, args ...string) {
	c.t.Helper()
	if err := json.Unmarshal([]byte(c.off(append(args, "--json")...)), v); err != nil {
		c.t.Fatalf("byok-offline %s --json: %v", args[0], err)
	}
}

func (c *crossRig) ceremony(vaultKind string, types []payload.KeyType) {
	t := c.t
	// The online station enrols; its operator reads the fingerprint to the offline one.
	m := regexp.MustCompile(`(?m)^station key fingerprint: ([0-9A-Z-]{19})$`).FindStringSubmatch(c.on("init"))
	if m == nil {
		t.Fatal("byok-online init shows no fingerprint")
	}
	var in struct {
		Policy struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"policy"`
	}
	c.offJSON(&in, "init", "--custodian", "alice=alice", "--custodian", "bob=bob", "--threshold", "2",
		"--vault", c.vaultURL+"="+vaultKind+":local", "--allow-weaker-kek", "--online-fingerprint", m[1])

	// The online station pins the policy after comparing its fingerprint, creates a KEK in
	// the vault and offers it; the offline station accepts it.
	c.on("trust", "--fingerprint", in.Policy.Fingerprint)
	c.on("kek", "create", "--vault", c.vaultURL, "--name", "kek", "--size", "3072")
	var keks struct {
		KEKs []struct {
			State       string `json:"state"`
			Attestation string `json:"attestation"`
		} `json:"keks"`
	}
	c.offJSON(&keks, "kek", "accept", "--attestation-root", c.attRoot)
	wantAtt := "none"
	if vaultKind == "managed_hsm" {
		wantAtt = "verified"
	}
	if len(keks.KEKs) != 1 || keks.KEKs[0].State != "accepted" || keks.KEKs[0].Attestation != wantAtt {
		t.Fatalf("kek accept = %+v, want one accepted KEK with attestation %s", keks, wantAtt)
	}

	// Keys are generated, packaged and approved offline.
	type pkg struct {
		Package struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"package"`
		KeyName      string `json:"key_name"`
		PublicSHA256 string `json:"public_key_sha256"`
		KCV          string `json:"kcv"`
	}
	var pkgs []pkg
	for _, kt := range types {
		ident := strings.ToLower(string(kt))
		c.off("keygen", "--type", string(kt), "--ident", ident)
		var p pkg
		c.offJSON(&p, "package", "--key", ident, "--vault", c.vaultURL)
		c.off("approve", "--package", p.Package.Fingerprint, "--custodian", "alice", "--custodian", "bob")
		pkgs = append(pkgs, p)
	}

	// The online station verifies and uploads; the offline station reads the receipts.
	c.on("verify")
	c.on("upload")
	var sync struct {
		Packages []struct {
			KeyName string `json:"key_name"`
			State   string `json:"state"`
			Version string `json:"version"`
		} `json:"packages"`
	}
	c.offJSON(&sync, "sync")
	if len(sync.Packages) != len(pkgs) {
		t.Fatalf("sync shows %d packages, want %d", len(sync.Packages), len(pkgs))
	}
	for _, p := range sync.Packages {
		versions, err := c.vault.KeyVersions(p.KeyName)
		if err != nil {
			t.Fatal(err)
		}
		if p.State != "imported" || len(versions) != 1 || versions[0].Version != p.Version {
			t.Errorf("key %s: offline says %s as version %q; the vault has %d version(s) %+v", p.KeyName, p.State, p.Version, len(versions), versions)
		}
	}
	if st := c.vault.Stats(); st.Imports != uint64(len(pkgs)) {
		t.Errorf("the vault imported %d keys, want %d", st.Imports, len(pkgs))
	}
	// Both stations' views of the medium agree: no findings either side.
	c.on("verify")
	log := c.off("log")
	if strings.Contains(log, "finding") || strings.Count(log, " receipt ") != len(pkgs) {
		t.Errorf("byok-offline log shows findings or not one receipt per package:\n%s", log)
	}
}

// nextPolicy replaces custodian bob by carol in policy version 2 (approved by alice and
// carol of the new set and alice and bob of the old one), then packages a key that only the
// new set approves: the online station follows the new version, refuses nothing, uploads it,
// and the audit passes.
func (c *crossRig) nextPolicy() {
	t := c.t
	var r struct {
		InForce  bool `json:"in_force"`
		Proposal struct {
			Version     int    `json:"version"`
			Fingerprint string `json:"fingerprint"`
		} `json:"proposal"`
	}
	c.offJSON(&r, "policy", "amend", "--remove-custodian", "bob", "--add-custodian", "carol=carol", "--custodian", "alice", "--custodian", "carol")
	if r.InForce || r.Proposal.Version != 2 {
		t.Fatalf("policy amend = %+v, want version 2 awaiting bob", r)
	}
	// Until bob approves, version 1 stays in force: the online station verifies the medium.
	c.on("verify")
	c.offJSON(&r, "policy", "approve", "--custodian", "bob")
	if !r.InForce {
		t.Fatalf("policy approve by bob = %+v, want in force", r)
	}
	var p struct {
		Package struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"package"`
		KeyName string `json:"key_name"`
	}
	c.off("keygen", "--type", "EC-P256", "--ident", "after-v2")
	c.offJSON(&p, "package", "--key", "after-v2", "--vault", c.vaultURL)
	c.off("approve", "--package", p.Package.Fingerprint, "--custodian", "alice", "--custodian", "carol")
	c.on("verify")
	c.on("upload")
	c.off("sync")
	if vs, err := c.vault.KeyVersions(p.KeyName); err != nil || len(vs) != 1 {
		t.Errorf("key %s after policy version 2: %d versions (%v), want 1", p.KeyName, len(vs), err)
	}
	var audit struct {
		Verdict string         `json:"verdict"`
		Counts  map[string]int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(c.off("audit", "--media", c.medium, "--json")), &audit); err != nil || audit.Verdict != "PASS" {
		t.Errorf("audit after policy version 2: %+v (%v), want PASS", audit, err)
	}
}
