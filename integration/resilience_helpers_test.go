package integration_test

// Helpers of the resilience suite: both binaries, plain and with crash points; one local Key
// Vault shared by every ceremony of a test process (each ceremony gives Key Vault names of its
// own); and a rig of two stations whose whole state (SoftHSM2 tokens, both ledgers, the
// medium) lives in one folder, so that a ceremony can be copied at any step and continued in
// several ways.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Station names, as the rig's run takes them.
const (
	offlineStation = "offline"
	onlineStation  = "online"
)

// resSuite is what the resilience tests share: the binaries, the SoftHSM2 module, PINs and
// one local Key Vault with throttling off.
type resSuite struct {
	module       string
	offline      string // byok-offline as released
	offlineCrash string // byok-offline -tags byok_crashpoints
	online       onlineBinaries
	vault        *kvemu.Server
	caFile       string
	tokenFile    string
	pins         map[string]string // token label -> PIN
	secrets      []string          // what no output may contain
	// root holds the rigs: a tmpfs mounted in a t.TempDir() when running as root (as CI
	// does), so that thousands of fsyncs cost nothing; a plain t.TempDir() otherwise. Killing
	// a process does not lose what it wrote to the page cache, so the kill tests lose nothing.
	root string
}

// resTokens are the token labels: the offline station's, then the custodians' (a custodian's
// name is its token's label).
var resTokens = []string{"station", "alice", "bob", "carol"}

// newResSuite builds the binaries and starts the vault.
func newResSuite(t *testing.T) *resSuite {
	t.Helper()
	s := &resSuite{module: softhsmtest.Require(t), pins: map[string]string{}, root: memDir(t)}
	dir := t.TempDir()
	s.offline, s.offlineCrash = buildOffline(t, dir)
	s.online = buildOnline(t, dir)

	tok, err := kvemu.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	off := kvemu.Limits{Create: -1, RSA2048: -1, RSA3072: -1, RSA4096: -1, EC: -1, Oct: -1, Vault: -1}
	v, err := kvemu.Start(kvemu.Config{Kind: kvemu.KindPremium, Token: tok, Limits: off, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	s.vault = v
	s.caFile = filepath.Join(dir, "ca.pem")
	s.tokenFile = filepath.Join(dir, "token")
	if err := os.WriteFile(s.caFile, v.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.tokenFile, []byte(tok.Reveal()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.secrets = append(s.secrets, tok.Reveal())
	for _, label := range resTokens {
		s.pins[label] = randomPIN(t)
		s.secrets = append(s.secrets, s.pins[label])
	}
	return s
}

// memDir returns a new folder on a tmpfs mounted inside a t.TempDir() (as root), or a plain
// t.TempDir().
func memDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4g,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Logf("no tmpfs for the rigs, using the disk: mount: %v: %s", err, out)
		return dir
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// tempDir returns a new folder for a rig, removed at the end of the test.
func (s *resSuite) tempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp(s.root, "rig-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func randomPIN(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// buildOffline builds byok-offline into dir twice: as released and with crash points.
func buildOffline(t testing.TB, dir string) (plain, crash string) {
	t.Helper()
	plain, crash = filepath.Join(dir, "byok-offline"), filepath.Join(dir, "crash", "byok-offline")
	for _, args := range [][]string{
		{"build", "-C", "../offline", "-o", plain, "./cmd/byok-offline"},
		{"build", "-C", "../offline", "-tags", "byok_crashpoints", "-o", crash, "./cmd/byok-offline"},
	} {
		if testing.CoverMode() != "" {
			args = append(args[:1], append([]string{"-cover"}, args[1:]...)...)
		}
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return plain, crash
}

// resRig is a ceremony between two stations: everything it has lives under dir.
type resRig struct {
	t testing.TB
	s *resSuite
	// dir holds softhsm/ (config and tokens), offline-state/, online-state/ and usb/.
	dir string
	// mediumDir, if set, is the medium instead of dir/usb (a stick of its own).
	mediumDir string
	// branch prefixes the names this ceremony gives Key Vault, unique in the suite's vault.
	branch string
	// Learned along the way.
	onlineFP, policyFP string
	kek                string            // the KEK's name in the vault
	names              map[string]string // key ident -> key name in the vault
	packages           map[string]string // key ident -> key package fingerprint
	// Environment added to every run of a station (a clock offset); it makes the rig run the
	// test builds, the only ones that honour such variables.
	offEnv, onEnv []string
	// initArgs are added to byok-offline init's (policy settings).
	initArgs []string
}

// newResRig returns a rig with new SoftHSM2 tokens and nothing else.
func newResRig(t testing.TB, s *resSuite, branch string) *resRig {
	t.Helper()
	r := &resRig{t: t, s: s, dir: s.tempDir(t), branch: branch, names: map[string]string{}, packages: map[string]string{}}
	r.writeSoftHSMConf()
	if err := os.Mkdir(r.medium(), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, label := range resTokens {
		if err := softhsmtest.InitToken(r.softhsmConf(), softhsmtest.Token{Label: label, PIN: s.pins[label], SOPIN: randomPIN(t)}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *resRig) softhsmConf() string { return filepath.Join(r.dir, "softhsm", "softhsm2.conf") }
func (r *resRig) medium() string {
	if r.mediumDir != "" {
		return r.mediumDir
	}
	return filepath.Join(r.dir, "usb")
}
func (r *resRig) offState() string { return filepath.Join(r.dir, "offline-state") }
func (r *resRig) onState() string  { return filepath.Join(r.dir, "online-state") }

// moveMedium moves the medium to dir (which must not exist or be empty).
func (r *resRig) moveMedium(dir string) {
	r.t.Helper()
	copyDir(r.t, r.medium(), dir)
	if err := os.RemoveAll(r.medium()); err != nil {
		r.t.Fatal(err)
	}
	r.mediumDir = dir
}

func (r *resRig) writeSoftHSMConf() {
	if _, err := softhsmtest.Config(filepath.Join(r.dir, "softhsm")); err != nil {
		r.t.Fatal(err)
	}
}

// fork copies the ceremony as it is now into a new rig whose vault names start with branch.
func (r *resRig) fork(t testing.TB, branch string) *resRig {
	t.Helper()
	f := *r
	f.t, f.branch, f.dir = t, branch, r.s.tempDir(t)
	copyDir(t, r.dir, f.dir)
	if r.mediumDir != "" {
		f.mediumDir = filepath.Join(f.dir, "usb")
		copyDir(t, r.mediumDir, f.mediumDir)
	}
	f.writeSoftHSMConf() // its token folder is the copy's
	f.names, f.packages = maps.Clone(r.names), maps.Clone(r.packages)
	f.offEnv, f.onEnv, f.initArgs = slices.Clone(r.offEnv), slices.Clone(r.onEnv), slices.Clone(r.initArgs)
	return &f
}

// env is a station's environment: every common flag and every PIN through its variable.
func (r *resRig) env(station string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BYOK_") && !strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			env = append(env, kv)
		}
	}
	// The INFO log on, so that every line of it is checked for secrets.
	env = append(env, "BYOK_MEDIA="+r.medium(), "BYOK_OFFLINE_LOG_LEVEL=info", "BYOK_ONLINE_LOG_LEVEL=info")
	if station == offlineStation {
		env = append(env, "SOFTHSM2_CONF="+r.softhsmConf(), "BYOK_OFFLINE_STATE_DIR="+r.offState(),
			"BYOK_OFFLINE_PIN="+r.s.pins["station"])
		for _, c := range resTokens[1:] {
			env = append(env, "BYOK_OFFLINE_CUSTODIAN_PIN_"+strings.ToUpper(c)+"="+r.s.pins[c])
		}
		env = append(env, r.offEnv...)
	} else {
		env = append(env, "BYOK_ONLINE_STATE_DIR="+r.onState(), "BYOK_ONLINE_CA_FILE="+r.s.caFile, "BYOK_ONLINE_TOKEN_FILE="+r.s.tokenFile)
		env = append(env, r.onEnv...)
	}
	return append(env, extra...)
}

// run runs a station's binary: with crash points if point is set (BYOK_CRASHPOINT=point) or
// the rig has a test environment, as released otherwise. No secret may appear in its output.
func (r *resRig) run(station, point string, args ...string) result {
	r.t.Helper()
	bin, crash := r.s.offline, r.s.offlineCrash
	extra := r.offEnv
	if station == onlineStation {
		bin, crash, extra = r.s.online.plain, r.s.online.crash, r.onEnv
	}
	if point != "" || len(extra) > 0 {
		bin = crash
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = r.env(station, "BYOK_CRASHPOINT="+point)
	res := runCmd(r.t, cmd)
	for _, s := range r.s.secrets {
		if strings.Contains(res.stdout+res.stderr, s) {
			r.t.Errorf("byok-%s %s printed a PIN or the vault token", station, strings.Join(args, " "))
		}
	}
	return res
}

// must runs a station's binary and fails the test unless it exits with want.
func (r *resRig) must(want int, station string, args ...string) result {
	r.t.Helper()
	res := r.run(station, "", args...)
	if res.code != want || res.killed {
		r.t.Fatalf("byok-%s %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", station, strings.Join(args, " "), res.code, want, res.stdout, res.stderr)
	}
	return res
}

// json runs a station's binary with --json, expects exit want and decodes stdout into v.
func (r *resRig) json(v any, want int, station string, args ...string) {
	r.t.Helper()
	res := r.must(want, station, append(args, "--json")...)
	if err := json.Unmarshal([]byte(res.stdout), v); err != nil {
		r.t.Fatalf("byok-%s %s --json: %v\n%s", station, strings.Join(args, " "), err, res.stdout)
	}
}

// resStep is one command of the ceremony.
type resStep struct {
	name    string
	station string
	// args returns the command line; it may choose the names this rig gives Key Vault.
	args func(r *resRig) []string
	// learn reads what later steps need once the step has succeeded.
	learn func(r *resRig)
}

// resKeys are the keys the ceremony generates, packages and uploads, and the custodians who
// approve each.
var resKeys = []struct {
	ident, kt  string
	custodians []string
}{
	{"rsa", "RSA-2048", []string{"alice", "bob"}},
	{"ec", "EC-P256", []string{"bob", "carol"}},
}

// resCeremony is the whole ceremony, one command a step.
var resCeremony = func() []resStep {
	steps := []resStep{
		{"online init", onlineStation, func(*resRig) []string { return []string{"init"} }, func(r *resRig) {
			var st struct {
				StationKey struct {
					Fingerprint string `json:"fingerprint"`
				} `json:"station_key"`
			}
			r.json(&st, 0, onlineStation, "status")
			r.onlineFP = st.StationKey.Fingerprint
		}},
		{"offline init", offlineStation, func(r *resRig) []string {
			args := []string{"init", "--hsm-module", r.s.module, "--token-label", "station"}
			for _, c := range resTokens[1:] {
				args = append(args, "--custodian", c+"="+c)
			}
			args = append(args, "--threshold", "2", "--vault", r.s.vault.URL()+"=premium:local")
			return append(append(args, r.initArgs...), "--online-fingerprint", r.onlineFP)
		}, func(r *resRig) { r.policyFP = r.offlineStatus().Policy.Fingerprint }},
		{"trust", onlineStation, func(r *resRig) []string { return []string{"trust", "--fingerprint", r.policyFP} }, nil},
		{"kek create", onlineStation, func(r *resRig) []string {
			r.kek = r.branch + "-kek"
			return []string{"kek", "create", "--vault", r.s.vault.URL(), "--name", r.kek, "--size", "3072"}
		}, nil},
		{"kek accept", offlineStation, func(*resRig) []string { return []string{"kek", "accept"} }, nil},
	}
	for _, k := range resKeys {
		steps = append(steps, resStep{"keygen " + k.ident, offlineStation, func(*resRig) []string {
			return []string{"keygen", "--type", k.kt, "--ident", k.ident}
		}, nil})
	}
	for _, k := range resKeys {
		steps = append(steps, resStep{"package " + k.ident, offlineStation, func(r *resRig) []string {
			r.names[k.ident] = r.branch + "-" + k.ident
			return []string{"package", "--key", k.ident, "--vault", r.s.vault.URL(), "--name", r.names[k.ident]}
		}, func(r *resRig) {
			for _, p := range r.offlineStatus().Packages {
				if p.KeyName == r.names[k.ident] {
					r.packages[k.ident] = p.Package.Fingerprint
				}
			}
		}})
	}
	for _, k := range resKeys {
		steps = append(steps, resStep{"approve " + k.ident, offlineStation, func(r *resRig) []string {
			args := []string{"approve", "--package", r.packages[k.ident]}
			for _, c := range k.custodians {
				args = append(args, "--custodian", c)
			}
			return args
		}, nil})
	}
	return append(steps,
		resStep{"upload", onlineStation, func(*resRig) []string { return []string{"upload"} }, nil},
		resStep{"sync", offlineStation, func(*resRig) []string { return []string{"sync"} }, nil},
		// Policy version 2 drops carol; alice and bob approve it for both sets.
		resStep{"policy amend", offlineStation, func(*resRig) []string {
			return []string{"policy", "amend", "--remove-custodian", "carol", "--custodian", "alice", "--custodian", "bob"}
		}, nil},
	)
}()

// stepIndex returns the index of the named step of resCeremony.
func stepIndex(name string) int {
	i := slices.IndexFunc(resCeremony, func(s resStep) bool { return s.name == name })
	if i < 0 {
		panic("no ceremony step " + name)
	}
	return i
}

// step runs step i and fails the test unless it succeeds.
func (r *resRig) step(i int) {
	r.t.Helper()
	st := resCeremony[i]
	r.must(0, st.station, st.args(r)...)
	if st.learn != nil {
		st.learn(r)
	}
}

// steps runs steps from up to (not including) to.
func (r *resRig) steps(from, to int) {
	r.t.Helper()
	for i := from; i < to; i++ {
		r.step(i)
	}
}

// offlineStatus is the part of byok-offline status --json the suite reads.
type offlineStatus struct {
	Policy struct {
		Fingerprint string `json:"fingerprint"`
	} `json:"policy"`
	Head    struct{ Seq uint64 } `json:"head"`
	Peer    struct{ Seq uint64 } `json:"peer"`
	Pending bool                 `json:"pending_write"`
	KEKs    []struct {
		State string `json:"state"`
	} `json:"keks"`
	Packages []struct {
		Package struct {
			ID          string `json:"id"`
			Fingerprint string `json:"fingerprint"`
		} `json:"package"`
		KeyName string `json:"key_name"`
		State   string `json:"state"`
		Version string `json:"version"`
	} `json:"packages"`
}

func (r *resRig) offlineStatus() offlineStatus {
	r.t.Helper()
	var st offlineStatus
	r.json(&st, 0, offlineStation, "status")
	return st
}

// onlineStatus is the part of byok-online status --json the suite reads.
type onlineStatus struct {
	OnlineHead  struct{ Seq uint64 } `json:"online_head"`
	OfflineHead struct{ Seq uint64 } `json:"offline_head"`
	Pending     bool                 `json:"pending_write"`
	Counts      map[string]int       `json:"upload_counts"`
	Medium      struct {
		OnlineSeq  uint64 `json:"online_seq"`
		OfflineSeq uint64 `json:"offline_seq"`
	} `json:"medium"`
}

// auditReport is the part of audit --json the suite reads.
type auditReport struct {
	Verdict  string         `json:"verdict"`
	Counts   map[string]int `json:"counts"`
	Findings []struct {
		Verdict string `json:"verdict"`
		Message string `json:"message"`
	} `json:"findings"`
	Warnings []string `json:"warnings"`
}

// audit runs the auditor's replay of the medium from station's binary, pinned to the policy.
func (r *resRig) audit(want int, station string) auditReport {
	r.t.Helper()
	var rep auditReport
	r.json(&rep, want, station, "audit", "--media", r.medium(), "--policy", r.policyFP)
	return rep
}

// mediumView is what the medium holds, read directly.
type mediumView struct {
	heads    map[bundle.Chain]uint64
	packages map[bundle.ID]string // key package ID -> key name
	receipts map[bundle.ID]int    // key package ID -> receipts
	offers   int
}

func readMedium(t testing.TB, dir string) mediumView {
	t.Helper()
	m, err := media.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	v := mediumView{heads: map[bundle.Chain]uint64{}, packages: map[bundle.ID]string{}, receipts: map[bundle.ID]int{}}
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		for e, err := range m.Entries(c, 1, nil) {
			if err != nil {
				t.Fatal(err)
			}
			v.heads[c] = e.Seq
			data, err := m.Read(e)
			if err != nil {
				t.Fatal(err)
			}
			b, err := bundle.Parse(data)
			if err != nil {
				t.Fatalf("%s: %v", e.Path, err)
			}
			switch b.Header.Kind {
			case bundle.KindKeyPackage:
				v.packages[b.ID()] = openPayload(t, b).(*payload.KeyPackage).KeyName
			case bundle.KindReceipt:
				v.receipts[openPayload(t, b).(*payload.Receipt).Package]++
			case bundle.KindKEKOffer:
				v.offers++
			}
		}
	}
	return v
}

// converged checks that the finished ceremony is what it must be after any crash and rerun:
// every key in Key Vault exactly once as the key package it came from, one receipt per key
// package, both ledgers at the medium's heads with nothing pending, both stations' views
// verified, and the audit passing.
func (r *resRig) converged() {
	r.t.Helper()
	mv := readMedium(r.t, r.medium())
	if len(mv.packages) != len(resKeys) {
		r.t.Errorf("the medium holds %d key packages, want %d", len(mv.packages), len(resKeys))
	}
	for id, name := range mv.packages {
		if n := mv.receipts[id]; n != 1 {
			r.t.Errorf("key package %s (%s): %d receipts, want 1", id.Short(), name, n)
		}
		vs, err := r.s.vault.KeyVersions(name)
		if err != nil {
			r.t.Errorf("key %s: %v", name, err)
			continue
		}
		if len(vs) != 1 || vs[0].Tags["byok-package"] != id.String() || !vs[0].Imported {
			r.t.Errorf("key %s: %d versions in Key Vault %+v, want exactly one, imported from package %s", name, len(vs), vs, id.Short())
		}
	}
	for id, n := range mv.receipts {
		if _, ok := mv.packages[id]; !ok {
			r.t.Errorf("%d receipts for %s, which is no key package on the medium", n, id.Short())
		}
	}

	r.must(0, onlineStation, "verify")
	var on onlineStatus
	r.json(&on, 0, onlineStation, "status")
	if on.Pending || on.OnlineHead.Seq != mv.heads[bundle.ChainOnline] || on.Medium.OnlineSeq != mv.heads[bundle.ChainOnline] ||
		on.Medium.OfflineSeq != mv.heads[bundle.ChainOffline] || on.Counts["imported"] != len(resKeys) {
		r.t.Errorf("byok-online status %+v disagrees with the medium (heads %v)", on, mv.heads)
	}
	off := r.offlineStatus()
	if off.Pending || off.Head.Seq != mv.heads[bundle.ChainOffline] || off.Peer.Seq != mv.heads[bundle.ChainOnline] {
		r.t.Errorf("byok-offline status: head %d, peer %d, pending %v; the medium's heads are %v", off.Head.Seq, off.Peer.Seq, off.Pending, mv.heads)
	}
	for _, p := range off.Packages {
		if p.State != "imported" || p.Version == "" {
			r.t.Errorf("byok-offline status: package %s (%s) is %s, want imported", p.Package.Fingerprint, p.KeyName, p.State)
		}
	}
	if rep := r.audit(0, onlineStation); rep.Verdict != "PASS" || rep.Counts["imported"] != len(resKeys) || rep.Counts["receipts"] != len(resKeys) {
		r.t.Errorf("audit: %+v", rep)
	}
}
