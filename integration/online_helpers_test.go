package integration_test

// Helpers of the byok-online end-to-end tests: the binary, built once per test process by
// TestOnline; a rig of one state folder, one medium, one local Key Vault (kvemu, over TLS,
// through the real azkeys client inside the binary) and a chaintest ceremony playing the
// offline station with the policy, approvals and key packages it would write.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// onlineBinaries are the byok-online binaries of one test process.
type onlineBinaries struct {
	plain string // production build
	crash string // -tags byok_crashpoints
}

// buildOnline builds byok-online twice into dir: as released (CGO_ENABLED=0) and with crash
// points.
func buildOnline(t testing.TB, dir string) onlineBinaries {
	t.Helper()
	b := onlineBinaries{plain: filepath.Join(dir, "byok-online"), crash: filepath.Join(dir, "crash", "byok-online")}
	for _, args := range [][]string{
		{"build", "-C", "../online", "-o", b.plain, "./cmd/byok-online"},
		{"build", "-C", "../online", "-tags", "byok_crashpoints", "-o", b.crash, "./cmd/byok-online"},
	} {
		if testing.CoverMode() != "" {
			args = append(args[:1], append([]string{"-cover"}, args[1:]...)...)
		}
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return b
}

// onlineRigConfig configures a rig.
type onlineRigConfig struct {
	Kind           kvemu.Kind // premium by default
	KEKBits        int        // default 2048
	AllowWeakerKEK bool
	Limits         kvemu.Limits
	Lifetime       time.Duration // bundle lifetime in the policy; default 7 days
	// FastWrite makes the offline side write its bundles without fsync (benchmarks).
	FastWrite bool
	// Dir, if set, holds the state folder and the medium instead of a new t.TempDir().
	Dir string
}

// rigTB is what a rig needs of a test: testing.TB, or a testscript script (scriptTB).
type rigTB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// onlineRig is one online station, its medium, a local Key Vault and the offline side.
type onlineRig struct {
	t         rigTB
	cleanup   func(func())
	bin       string
	vault     *kvemu.Server // nil against a real vault
	vaultURL  string
	dir       string
	state     string
	media     string
	caFile    string
	tokenFile string
	cfg       onlineRigConfig
	c         *chaintest.Ceremony
	offer     bundle.ID
	// manualClock stops tick: the test sets the offline clock itself.
	manualClock bool
}

func newOnlineRig(t testing.TB, bin string, cfg onlineRigConfig) *onlineRig {
	t.Helper()
	dir := cfg.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	r, err := startOnlineRig(dir, bin, cfg, t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	r.t = t
	return r
}

// startOnlineRig starts a rig in dir; cleanup registers what to do at the end.
func startOnlineRig(dir, bin string, cfg onlineRigConfig, cleanup func(func())) (*onlineRig, error) {
	if cfg.Kind == "" {
		cfg.Kind = kvemu.KindPremium
	}
	if cfg.KEKBits == 0 {
		cfg.KEKBits = 2048
	}
	tok, err := kvemu.NewToken()
	if err != nil {
		return nil, err
	}
	v, err := kvemu.Start(kvemu.Config{Kind: cfg.Kind, Token: tok, Limits: cfg.Limits, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	cleanup(func() { v.Close() })
	r := &onlineRig{cleanup: cleanup, bin: bin, vault: v, vaultURL: v.URL(), dir: dir, cfg: cfg,
		state: filepath.Join(dir, "state"), media: filepath.Join(dir, "media"),
		caFile: filepath.Join(dir, "ca.pem"), tokenFile: filepath.Join(dir, "token")}
	if err := os.Mkdir(r.media, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(r.caFile, v.CACertPEM(), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(r.tokenFile, []byte(tok.Reveal()+"\n"), 0o600); err != nil {
		return nil, err
	}
	return r, nil
}

// env is the environment byok-online runs with: every common flag through its variable.
func (r *onlineRig) env(extra ...string) []string {
	return append(append(os.Environ(),
		"BYOK_ONLINE_STATE_DIR="+r.state, "BYOK_MEDIA="+r.media,
		"BYOK_ONLINE_CA_FILE="+r.caFile, "BYOK_ONLINE_TOKEN_FILE="+r.tokenFile,
		"BYOK_CRASHPOINT=",
		// The INFO log on: every line of it is checked for secrets, and tests read the
		// transcript of the upload.
		"BYOK_ONLINE_LOG_LEVEL=info"), extra...)
}

// newLiveRig is a rig against a real vault: azidentity's credential, the system roots.
func newLiveRig(t testing.TB, bin, vaultURL string, cfg onlineRigConfig) *onlineRig {
	dir := t.TempDir()
	if cfg.KEKBits == 0 {
		cfg.KEKBits = 2048
	}
	r := &onlineRig{t: t, cleanup: t.Cleanup, bin: bin, vaultURL: vaultURL, dir: dir, cfg: cfg,
		state: filepath.Join(dir, "state"), media: filepath.Join(dir, "media")}
	if err := os.Mkdir(r.media, 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

// result is one run of the binary.
type result struct {
	code           int
	killed         bool
	stdout, stderr string
}

// exec runs bin with args and the rig's environment plus extra.
func (r *onlineRig) execWith(bin string, extra []string, args ...string) result {
	r.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = r.env(extra...)
	res := runCmd(r.t, cmd)
	if tok := r.token(); tok != "" && strings.Contains(res.stdout+res.stderr, tok) {
		r.t.Fatalf("byok-online %s printed the bearer token", strings.Join(args, " "))
	}
	return res
}

func (r *onlineRig) token() string {
	if r.tokenFile == "" {
		return ""
	}
	b, err := os.ReadFile(r.tokenFile)
	if err != nil {
		r.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// run runs the production binary.
func (r *onlineRig) run(args ...string) result {
	r.t.Helper()
	return r.execWith(r.bin, nil, args...)
}

// must runs the production binary and fails the test unless it exits with want.
func (r *onlineRig) must(want int, args ...string) result {
	r.t.Helper()
	res := r.run(args...)
	if res.code != want || res.killed {
		r.t.Fatalf("byok-online %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, want, res.stdout, res.stderr)
	}
	return res
}

// stationKey reads the key byok-online init wrote.
func (r *onlineRig) stationKey() ed25519.PrivateKey {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.state, "station.key"))
	if err != nil {
		r.t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		r.t.Fatal("station.key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		r.t.Fatal(err)
	}
	return k.(ed25519.PrivateKey)
}

// kind returns the policy's name for the emulator's vault kind.
func (r *onlineRig) kind() string {
	if r.cfg.Kind == kvemu.KindManagedHSM {
		return payload.VaultManagedHSM
	}
	return payload.VaultPremium
}

// init runs byok-online init and starts the offline side's ceremony on the same medium,
// with the station's real key as the online station.
func (r *onlineRig) init() {
	r.t.Helper()
	r.must(0, "init")
	r.attach()
}

// attach starts the offline side's ceremony on the medium that init wrote.
func (r *onlineRig) attach() {
	r.t.Helper()
	c, err := chaintest.New(chaintest.Config{Dir: r.media, Seed: 7, Start: time.Now(), Step: time.Millisecond,
		Vault: r.vaultURL, VaultKind: r.kind(), KEKBits: r.cfg.KEKBits, AllowWeakerKEK: r.cfg.AllowWeakerKEK, Lifetime: r.cfg.Lifetime,
		FastWrite: r.cfg.FastWrite})
	if err != nil {
		r.t.Fatal(err)
	}
	r.cleanup(func() { c.Close() })
	c.OnlineKey = r.stationKey()
	r.c = c
	r.syncOnline()
}

// syncOnline makes the ceremony see the online chain as it is on the medium (the offline
// station reads the stick before it writes).
func (r *onlineRig) syncOnline() {
	r.t.Helper()
	e, ok, err := r.c.M.Head(bundle.ChainOnline)
	if err != nil || !ok {
		r.t.Fatalf("online head: %v, %v", ok, err)
	}
	data, err := r.c.M.Read(e)
	if err != nil {
		r.t.Fatal(err)
	}
	h, err := bundle.ParseHeader(data)
	if err != nil {
		r.t.Fatal(err)
	}
	r.c.Heads.Online = chain.Head{Seq: e.Seq, ID: e.ID, Created: h.Created}
	r.tick()
}

// tick keeps the offline clock at or after the wall clock, so that no bundle looks older
// than the online bundles it saw.
func (r *onlineRig) tick() {
	if r.manualClock {
		return
	}
	if now := time.Now(); r.c.Clock.Before(now) {
		r.c.Clock = now
	}
}

// policy writes the offline enrollment and policy version 1 (edit may change it), without
// approvals; it returns the policy bundle.
func (r *onlineRig) policy(edit func(*payload.Policy)) *bundle.Bundle {
	r.t.Helper()
	r.tick()
	pk, err := payload.NewPublicKey(r.c.OfflineKey.Public())
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.c.Append(bundle.ChainOffline, &payload.Enrollment{Station: "offline", Name: "offline-station", Key: pk, Software: "chaintest",
		HSM: &payload.TokenInfo{Label: "station", Manufacturer: "chaintest", Model: "software"}}); err != nil {
		r.t.Fatal(err)
	}
	p := r.c.NewPolicy()
	if edit != nil {
		edit(p)
	}
	b, err := r.c.Append(bundle.ChainOffline, p)
	if err != nil {
		r.t.Fatal(err)
	}
	r.c.Policy, r.c.PolicyID = p, b.ID()
	return b
}

// approve writes an approval of target by the custodians with the given indexes.
func (r *onlineRig) approve(target bundle.ID, kind bundle.Kind, custodians ...int) {
	r.t.Helper()
	r.tick()
	if _, err := r.c.Approve(target, kind, custodians...); err != nil {
		r.t.Fatal(err)
	}
}

// setup runs init, writes an approved policy, pins it and offers a KEK.
func (r *onlineRig) setup() {
	r.t.Helper()
	r.init()
	p := r.policy(nil)
	r.approve(p.ID(), bundle.KindPolicy, 0, 1)
	r.must(0, "trust", "--fingerprint", p.ID().Short())
	r.kek("kek")
}

// kek runs kek create and registers the offer with the offline side.
func (r *onlineRig) kek(name string) bundle.ID {
	r.t.Helper()
	r.must(0, "kek", "create", "--vault", r.vaultURL, "--name", name, "--size", fmt.Sprint(r.cfg.KEKBits))
	return r.takeOffer()
}

// takeOffer registers the KEK offer at the head of the online chain with the offline side.
func (r *onlineRig) takeOffer() bundle.ID {
	r.t.Helper()
	r.syncOnline()
	b := r.bundle(bundle.ChainOnline, r.c.Heads.Online.Seq)
	o := openPayload(r.t, b).(*payload.KEKOffer)
	r.c.RegisterOffer(b.ID(), o)
	r.offer = b.ID()
	return b.ID()
}

// pkg writes a key package of a software key of type kt named name, approved by the
// custodians given (the threshold, 2 of 3, by default).
func (r *onlineRig) pkg(kt payload.KeyType, name string, custodians ...int) *bundle.Bundle {
	r.t.Helper()
	r.tick()
	b, err := r.c.Package(r.offer, kt, name)
	if err != nil {
		r.t.Fatal(err)
	}
	if custodians == nil {
		custodians = []int{0, 1}
	}
	if len(custodians) > 0 {
		r.approve(b.ID(), bundle.KindKeyPackage, custodians...)
	}
	return b
}

// bundle reads the bundle at seq of chain c from the medium.
func (r *onlineRig) bundle(c bundle.Chain, seq uint64) *bundle.Bundle {
	r.t.Helper()
	e, err := r.c.M.Find(c, seq)
	if err != nil {
		r.t.Fatal(err)
	}
	data, err := r.c.M.Read(e)
	if err != nil {
		r.t.Fatal(err)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func openPayload(t rigTB, b *bundle.Bundle) any {
	t.Helper()
	raw, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	v, err := payload.Decode(b.Header.Kind, raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// receipts returns the receipts on the medium's online chain, by package.
func (r *onlineRig) receipts() map[bundle.ID][]*payload.Receipt {
	r.t.Helper()
	m, err := media.Open(r.media)
	if err != nil {
		r.t.Fatal(err)
	}
	defer m.Close()
	out := map[bundle.ID][]*payload.Receipt{}
	for e, err := range m.Entries(bundle.ChainOnline, 1, nil) {
		if err != nil {
			r.t.Fatal(err)
		}
		data, err := m.Read(e)
		if err != nil {
			r.t.Fatal(err)
		}
		b, err := bundle.Parse(data)
		if err != nil {
			r.t.Fatal(err)
		}
		if b.Header.Kind != bundle.KindReceipt {
			continue
		}
		if err := b.VerifySignature(r.c.OnlineKey.Public()); err != nil {
			r.t.Fatalf("receipt %s: %v", b.ID().Short(), err)
		}
		rc := openPayload(r.t, b).(*payload.Receipt)
		out[rc.Package] = append(out[rc.Package], rc)
	}
	return out
}

// versions returns the number of versions of a key in the vault (0 if it does not exist).
func (r *onlineRig) versions(name string) []kvemu.KeyVersionInfo {
	r.t.Helper()
	vs, err := r.vault.KeyVersions(name)
	if errors.Is(err, kvemu.ErrNotFound) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return vs
}

// exactlyOnce checks that every package is in Key Vault exactly once, tagged with its ID,
// and receipted exactly once as imported with the manifest's public key.
func (r *onlineRig) exactlyOnce(pkgs ...*bundle.Bundle) {
	r.t.Helper()
	rcs := r.receipts()
	for _, b := range pkgs {
		k := openPayload(r.t, b).(*payload.KeyPackage)
		vs := r.versions(k.KeyName)
		n := 0
		for _, v := range vs {
			if v.Tags["byok-package"] == b.ID().String() {
				n++
			}
		}
		if n != 1 {
			r.t.Errorf("key package %s (%s): %d key versions carry its tag, want exactly 1", b.ID().Short(), k.KeyName, n)
		}
		got := rcs[b.ID()]
		if len(got) != 1 {
			r.t.Errorf("key package %s (%s): %d receipts, want exactly 1", b.ID().Short(), k.KeyName, len(got))
			continue
		}
		rc := got[0]
		kt, _ := k.Target.KeyType()
		want := k.PublicKey
		if kt.IsSymmetric() {
			want = nil
		}
		if rc.Outcome != payload.OutcomeImported || !bytes.Equal(rc.PublicKey, want) {
			r.t.Errorf("key package %s (%s): receipt %s with public key %x, want imported with the manifest's", b.ID().Short(), k.KeyName, rc.Outcome, rc.PublicKey)
		}
	}
}

// copyDir copies a folder tree (a medium snapshot).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm()|0o200)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runCmd runs cmd and returns its output and exit code; killed says SIGKILL ended it. Any
// other signal is an error of the test, and so is a command that cannot start.
func runCmd(t rigTB, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.killed = ws.Signal() == syscall.SIGKILL
			if !res.killed {
				t.Errorf("%s %s died of %v", filepath.Base(cmd.Path), strings.Join(cmd.Args[1:], " "), ws.Signal())
			}
		}
	default:
		t.Fatalf("run %s: %v", cmd.Path, err)
	}
	return res
}
