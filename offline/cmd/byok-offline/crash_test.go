package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TestCrashRecovery kills byok-offline (built with -tags byok_crashpoints) with SIGKILL at
// every point of a package, an approve, a keygen and an init where a power cut could
// stop it: the journal's points (pending-recorded, media-written, committed), the atomic
// write's points (tmp-written, renamed, synced; @2 is the plain .byok copy) and the
// command's own points between HSM calls. Then it runs the same command again and checks
// that nothing was lost or doubled and that the ledger and the medium agree.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary and runs many processes")
	}
	mod := softhsmtest.Require(t)
	bin := filepath.Join(t.TempDir(), "byok-offline")
	build := exec.Command("go", "build", "-tags", "byok_crashpoints", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags byok_crashpoints: %v\n%s", err, out)
	}

	t.Run("package", func(t *testing.T) {
		for _, point := range []string{
			"pending-recorded", "media-written", "committed",
			"tmp-written", "renamed", "synced", // the bundle
			"tmp-written@2", "renamed@2", "synced@2", // its plain .byok copy
			"package-key-found", "package-wrapped", "package-appended", "package-byok-written",
		} {
			t.Run(point, func(t *testing.T) {
				t.Parallel()
				s := newCrashStation(t, bin, mod)
				s.ready()
				s.must("keygen", "--type", "RSA-2048", "--ident", "app")
				s.crash(point, "package", "--key", "app", "--vault", onlinetest.DefaultVault)
				s.must("package", "--key", "app", "--vault", onlinetest.DefaultVault)
				s.checkPackages(map[string]int{"app": 1})
			})
		}
	})

	// Any command that writes finishes the interrupted write, not only a rerun of the same
	// command; a read-only log shows the timeline meanwhile.
	t.Run("package then sync", func(t *testing.T) {
		for _, point := range []string{"pending-recorded", "media-written", "committed", "package-appended"} {
			t.Run(point, func(t *testing.T) {
				t.Parallel()
				s := newCrashStation(t, bin, mod)
				s.ready()
				s.must("keygen", "--type", "EC-P256", "--ident", "app")
				s.crash(point, "package", "--key", "app", "--vault", onlinetest.DefaultVault)
				s.must("log")
				s.must("sync")
				s.checkPackages(map[string]int{"app": 1})
				out := s.must("package", "--key", "app", "--vault", onlinetest.DefaultVault)
				if !strings.Contains(out, "exists already") {
					t.Errorf("package after sync recovered it: %s, want the existing package", out)
				}
				s.checkPackages(map[string]int{"app": 1})
			})
		}
	})

	t.Run("approve", func(t *testing.T) {
		for _, point := range []string{
			"pending-recorded", "media-written", "committed", "tmp-written", "renamed", "synced",
			"approve-signed", "approve-signed@2",
		} {
			t.Run(point, func(t *testing.T) {
				t.Parallel()
				s := newCrashStation(t, bin, mod)
				s.ready()
				s.must("keygen", "--type", "EC-P256", "--ident", "app")
				s.must("package", "--key", "app", "--vault", onlinetest.DefaultVault)
				pkg := s.packages()[0]
				args := []string{"approve", "--package", pkg.ID.Short(), "--custodian", "alice", "--custodian", "bob"}
				s.crash(point, args...)
				// The rerun either writes the approval or finds it written (exit 7: approved
				// already); either way exactly one approval of each must result.
				if code, _, errs := s.run(nil, args...); code != 0 && !(code == 7 && strings.Contains(errs, "approved key package "+pkg.ID.Short()+" already")) {
					t.Fatalf("approve after the crash: exit %d: %s", code, errs)
				}
				s.checkPackages(map[string]int{"app": 1})
				s.checkApprovals(pkg.ID, []string{"alice", "bob"})
			})
		}
	})

	t.Run("keygen", func(t *testing.T) {
		for _, point := range []string{"keygen-intent-recorded", "keygen-generated"} {
			t.Run(point, func(t *testing.T) {
				t.Parallel()
				s := newCrashStation(t, bin, mod)
				s.ready()
				s.crash(point, "keygen", "--type", "EC-P256", "--ident", "web")
				s.must("keygen", "--type", "EC-P256", "--ident", "web")
				if n := s.objects("web"); n != 1 {
					t.Fatalf("%d private keys labelled web after the rerun, want 1", n)
				}
				s.must("package", "--key", "web", "--vault", onlinetest.DefaultVault)
				s.checkPackages(map[string]int{"web": 1})
			})
		}
	})

	t.Run("init", func(t *testing.T) {
		// A kill once the approval of the policy is in the journal leaves an initialised
		// station: the rerun says so (exit 7), as any second init does.
		for _, tt := range []struct {
			point string
			done  bool
		}{
			{"signer-intent-recorded", false}, {"signer-generated", false}, {"signer-generated@2", false},
			{"init-enrolled", false}, {"pending-recorded@2", false}, {"media-written@2", false},
			{"init-policy-written", false}, {"tmp-written@3", true},
			{"pending-recorded@3", true}, {"renamed@3", true}, {"committed@3", true},
		} {
			point := tt.point
			t.Run(point, func(t *testing.T) {
				t.Parallel()
				s := newCrashStation(t, bin, mod)
				s.crash(point, s.initArgs()...)
				if code, _, errs := s.run(nil, s.initArgs()...); code != 0 && !(tt.done && code == 7 && strings.Contains(errs, "initialised already")) {
					t.Fatalf("init after the crash: exit %d: %s", code, errs)
				}
				for _, label := range []string{"byok-station"} {
					if n := s.objects(label); n != 1 {
						t.Fatalf("%d keys labelled %s after the rerun, want 1", n, label)
					}
				}
				s.checkPackages(map[string]int{})
				var st struct {
					Initialised bool `json:"initialised"`
					Head        struct {
						Seq uint64 `json:"seq"`
					} `json:"head"`
				}
				s.mustJSON(&st, "status")
				if !st.Initialised || st.Head.Seq != 3 {
					t.Errorf("status after the rerun: initialised %t, head %d; want true, 3", st.Initialised, st.Head.Seq)
				}
			})
		}
	})
}

// crashStation is one station for a crash test: its own SoftHSM2 tokens, state folder and
// medium, and an environment passed to each process (the tests run in parallel).
type crashStation struct {
	t     *testing.T
	bin   string
	env   []string
	state string
	media string
	conf  string
	mod   string
}

func newCrashStation(t *testing.T, bin, mod string) *crashStation {
	dir := t.TempDir()
	conf, err := softhsmtest.Config(filepath.Join(dir, "softhsm"))
	if err != nil {
		t.Fatal(err)
	}
	s := &crashStation{t: t, bin: bin, state: filepath.Join(dir, "state"), media: filepath.Join(dir, "medium"), conf: conf, mod: mod}
	if err := os.Mkdir(s.media, 0o755); err != nil {
		t.Fatal(err)
	}
	s.env = []string{"SOFTHSM2_CONF=" + conf, "BYOK_OFFLINE_HSM_MODULE=" + mod, "BYOK_OFFLINE_TOKEN_LABEL=station",
		"BYOK_OFFLINE_STATE_DIR=" + s.state, "BYOK_MEDIA=" + s.media}
	for _, tok := range scriptTokens {
		if err := softhsmtest.InitToken(conf, softhsmtest.Token{Label: tok.label, PIN: tok.pin, SOPIN: tok.so}); err != nil {
			t.Fatal(err)
		}
		if tok.label == "station" {
			s.env = append(s.env, "BYOK_OFFLINE_PIN="+tok.pin)
		} else {
			s.env = append(s.env, "BYOK_OFFLINE_CUSTODIAN_PIN_"+upper(tok.label)+"="+tok.pin)
		}
	}
	on, err := onlinetest.Open(s.media, onlinetest.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	defer on.Close()
	if _, err := on.Enroll(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *crashStation) initArgs() []string {
	fp, err := onlinetest.Fingerprint(onlinetest.DefaultSeed)
	if err != nil {
		s.t.Fatal(err)
	}
	return []string{"init", "--custodian", "alice=alice", "--custodian", "bob=bob", "--threshold", "2",
		"--vault", onlinetest.DefaultVault + "=premium:westeurope", "--online-fingerprint", fp}
}

// ready initialises the station and accepts a KEK offer.
func (s *crashStation) ready() {
	s.must(s.initArgs()...)
	on, err := onlinetest.Open(s.media, onlinetest.DefaultSeed)
	if err != nil {
		s.t.Fatal(err)
	}
	defer on.Close()
	if _, _, err := on.Offer(onlinetest.OfferOptions{}); err != nil {
		s.t.Fatal(err)
	}
	s.must("kek", "accept")
}

// run runs the binary with extra environment and returns its exit code (-1 if a signal
// killed it) and output.
func (s *crashStation) run(extra []string, args ...string) (int, string, string) {
	s.t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(append(filteredEnviron(), s.env...), extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal()), out.String(), errb.String()
		}
		return ee.ExitCode(), out.String(), errb.String()
	}
	s.t.Fatalf("run %s: %v", args[0], err)
	return 0, "", ""
}

// filteredEnviron is the test's environment without what the station sets.
func filteredEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BYOK_") && !strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *crashStation) must(args ...string) string {
	s.t.Helper()
	code, out, errs := s.run(nil, args...)
	if code != 0 {
		s.t.Fatalf("byok-offline %s: exit %d\n%s", strings.Join(args, " "), code, errs)
	}
	return out
}

func (s *crashStation) mustJSON(v any, args ...string) {
	s.t.Helper()
	if err := json.Unmarshal([]byte(s.must(append(args, "--json")...)), v); err != nil {
		s.t.Fatal(err)
	}
}

// crash runs the command with BYOK_CRASHPOINT=point and fails unless SIGKILL stopped it.
func (s *crashStation) crash(point string, args ...string) {
	s.t.Helper()
	code, _, errs := s.run([]string{"BYOK_CRASHPOINT=" + point}, args...)
	if code != -int(syscall.SIGKILL) {
		s.t.Fatalf("byok-offline %s with BYOK_CRASHPOINT=%s: exit %d, want killed (was the point reached?)\n%s", args[0], point, code, errs)
	}
}

// objects counts the private keys labelled label in the station's token (pkcs11-tool, in
// its own process: this process never loads the module).
func (s *crashStation) objects(label string) int {
	s.t.Helper()
	cmd := exec.Command("pkcs11-tool", "--module", s.mod, "--token-label", "station", "--login", "--pin", scriptTokens[0].pin,
		"--list-objects", "--type", "privkey")
	cmd.Env = append(filteredEnviron(), "SOFTHSM2_CONF="+s.conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("pkcs11-tool --list-objects: %v\n%s", err, out)
	}
	return len(regexp.MustCompile(`(?m)^\s+label:\s+`+regexp.QuoteMeta(label)+`$`).FindAll(out, -1))
}

// onMedium is what the medium holds of the offline chain.
type onMedium struct {
	packages  map[bundle.ID]*payload.KeyPackage
	approvals map[bundle.ID][]bundle.ID // target → custodian key IDs
	head      chain.Head
}

// replay verifies the medium against the ledger's anchor (no finding allowed) and collects
// the offline chain's packages and approvals.
func (s *crashStation) replay(anchor bundle.ID) onMedium {
	s.t.Helper()
	m, err := media.Open(s.media)
	if err != nil {
		s.t.Fatal(err)
	}
	defer m.Close()
	got := onMedium{packages: map[bundle.ID]*payload.KeyPackage{}, approvals: map[bundle.ID][]bundle.ID{}}
	res, err := chain.Replay(context.Background(), m, chain.Options{Anchor: anchor, OnBundle: func(v *chain.Verified) error {
		switch p := v.Payload.(type) {
		case *payload.KeyPackage:
			got.packages[v.Bundle.ID()] = p
		case *payload.Approval:
			for _, sig := range p.Signatures {
				got.approvals[p.Target] = append(got.approvals[p.Target], sig.Custodian)
			}
		}
		return nil
	}})
	if err != nil {
		s.t.Fatalf("the medium does not replay: %v", err)
	}
	for _, f := range res.Findings {
		s.t.Errorf("finding on the medium: %v", f)
	}
	got.head = res.State.Heads.Offline
	return got
}

// withLedger opens the ledger (no process runs meanwhile).
func (s *crashStation) withLedger(fn func(st *store.Store, state station.State)) {
	s.t.Helper()
	db, err := ledger.Open(filepath.Join(s.state, station.LedgerFile), store.Schema())
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	state, err := (&station.Station{DB: db}).Load()
	if err != nil {
		s.t.Fatal(err)
	}
	fn(store.New(db), state)
}

func (s *crashStation) packages() []store.Package {
	var pkgs []store.Package
	s.withLedger(func(st *store.Store, _ station.State) {
		var err error
		if pkgs, err = st.Packages(); err != nil {
			s.t.Fatal(err)
		}
	})
	return pkgs
}

// checkPackages checks that the ledger and the medium agree: the same head, nothing
// pending, the same key packages (want: packages per ident), each with exactly one plain
// .byok copy that unwraps to the packaged key.
func (s *crashStation) checkPackages(want map[string]int) {
	s.t.Helper()
	var pkgs []store.Package
	var state station.State
	s.withLedger(func(st *store.Store, ls station.State) {
		var err error
		if pkgs, err = st.Packages(); err != nil {
			s.t.Fatal(err)
		}
		state = ls
	})
	got := s.replay(state.Anchor)
	if state.Pending {
		s.t.Error("the ledger still has a pending write")
	}
	if state.Head != got.head {
		s.t.Errorf("ledger head %d %s, medium head %d %s", state.Head.Seq, state.Head.ID.Short(), got.head.Seq, got.head.ID.Short())
	}
	count := map[string]int{}
	for _, p := range pkgs {
		count[p.Ident]++
		kp, ok := got.packages[p.ID]
		if !ok {
			s.t.Errorf("ledger package %s is not on the medium", p.ID.Short())
			continue
		}
		if p.ByokCopy != "byok/"+p.ByokName() {
			s.t.Errorf("package %s: plain copy %q, want byok/%s", p.ID.Short(), p.ByokCopy, p.ByokName())
			continue
		}
		plain, err := os.ReadFile(filepath.Join(s.media, filepath.FromSlash(p.ByokCopy)))
		if err != nil || !bytes.Equal(plain, kp.BYOK) {
			s.t.Errorf("package %s: plain copy %v or different from the package's", p.ID.Short(), err)
			continue
		}
		s.checkUnwraps(kp)
	}
	if len(pkgs) != len(got.packages) {
		s.t.Errorf("ledger has %d packages, the medium %d", len(pkgs), len(got.packages))
	}
	if len(count) != len(want) {
		s.t.Errorf("packages per key %v, want %v", count, want)
	}
	for k, n := range want {
		if count[k] != n {
			s.t.Errorf("packages per key %v, want %v", count, want)
		}
	}
	ents, err := os.ReadDir(filepath.Join(s.media, media.ByokDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			n++
		}
	}
	if n != len(pkgs) {
		s.t.Errorf("%d .byok files on the medium for %d packages", n, len(pkgs))
	}
}

// checkUnwraps unwraps the package's .byok with the test KEK and compares the key with the
// manifest's public key.
func (s *crashStation) checkUnwraps(kp *payload.KeyPackage) {
	s.t.Helper()
	f, err := byok.Parse(kp.BYOK)
	if err != nil {
		s.t.Fatal(err)
	}
	plain, err := keywrap.UnwrapRSAAES(onlinetest.KEK(3072), f.Ciphertext)
	if err != nil {
		s.t.Fatalf("unwrap: %v", err)
	}
	der, _, err := keywrap.TrimDER(plain)
	if err != nil {
		s.t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		s.t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
	if !bytes.Equal(pub, kp.PublicKey) {
		s.t.Error("the .byok holds another key than the manifest names")
	}
}

// checkApprovals checks that the package has exactly one approval of each named custodian
// on the medium, and that the ledger records the same.
func (s *crashStation) checkApprovals(pkg bundle.ID, names []string) {
	s.t.Helper()
	var rec *store.Package
	var anchor bundle.ID
	s.withLedger(func(st *store.Store, ls station.State) {
		var err error
		if rec, err = st.Package(pkg); err != nil {
			s.t.Fatal(err)
		}
		anchor = ls.Anchor
	})
	got := s.replay(anchor)
	onMedium := got.approvals[pkg]
	if len(onMedium) != len(names) {
		s.t.Errorf("%d approvals of %s on the medium, want %d", len(onMedium), pkg.Short(), len(names))
	}
	var inLedger []string
	for _, a := range rec.Approvals {
		inLedger = append(inLedger, a.Custodian)
		if !slices.Contains(onMedium, a.Key) {
			s.t.Errorf("the ledger's approval by %s is not on the medium", a.Custodian)
		}
	}
	slices.Sort(inLedger)
	if !slices.Equal(inLedger, names) {
		s.t.Errorf("ledger approvals %v, want %v", inLedger, names)
	}
}
