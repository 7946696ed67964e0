package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// Test tokens and PINs. The PINs are distinctive so that every command's output can be
// checked for them (see fixture.run).
var testTokens = []softhsmtest.Token{
	{Label: "station", PIN: "station-pin-1357", SOPIN: "station-so-2468"},
	{Label: "alice", PIN: "alice-pin-9753", SOPIN: "alice-so-8642"},
	{Label: "bob", PIN: "bob-pin-1122", SOPIN: "bob-so-3344"},
	{Label: "carol", PIN: "carol-pin-5566", SOPIN: "carol-so-7788"},
	{Label: "dave", PIN: "dave-pin-2468", SOPIN: "dave-so-1357"}, // joins in a later policy version
}

const (
	premium = onlinetest.DefaultVault
	mhsm    = "https://contoso-mhsm.managedhsm.azure.net"
)

// allPINs are every PIN a test uses, the wrong ones included.
var allPINs = func() []string {
	var p []string
	for _, t := range testTokens {
		p = append(p, t.PIN, t.SOPIN)
	}
	return append(p, "wrong-pin-0000")
}()

// fixture is a station under test: SoftHSM2 tokens, a state folder and a medium, with the
// environment byok-offline reads them from.
type fixture struct {
	t     testing.TB
	dir   string
	state string
	media string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	mod := softhsmtest.Setup(t, testTokens...)
	dir := t.TempDir()
	f := &fixture{t: t, dir: dir, state: filepath.Join(dir, "state"), media: filepath.Join(dir, "medium")}
	t.Setenv(envModule, mod)
	t.Setenv(envToken, "station")
	t.Setenv(envPIN, testTokens[0].PIN)
	t.Setenv(envStateDir, f.state)
	t.Setenv(envMedia, f.media)
	t.Setenv(envSOPIN, "")
	for _, tok := range testTokens[1:] {
		t.Setenv(custodianPINEnv(tok.Label), tok.PIN)
	}
	return f
}

// run runs byok-offline with args and returns its exit code and output. It fails the test
// if the output holds a PIN.
func (f *fixture) run(args ...string) (int, string, string) {
	f.t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), append([]string{Name}, args...), strings.NewReader(""), &out, &errb)
	for _, pin := range allPINs {
		if strings.Contains(out.String(), pin) || strings.Contains(errb.String(), pin) {
			f.t.Errorf("byok-offline %s: output holds a PIN", strings.Join(args, " "))
		}
	}
	f.t.Logf("byok-offline %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// must runs byok-offline and fails the test unless it succeeds.
func (f *fixture) must(args ...string) string {
	f.t.Helper()
	code, out, errs := f.run(args...)
	if code != 0 {
		f.t.Fatalf("byok-offline %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// exits runs byok-offline and fails the test unless it exits with code; it returns stderr.
func (f *fixture) exits(code int, args ...string) string {
	f.t.Helper()
	got, _, errs := f.run(args...)
	if got != code {
		f.t.Fatalf("byok-offline %s: exit %d, want %d: %s", strings.Join(args, " "), got, code, errs)
	}
	return errs
}

// mustJSON runs byok-offline with --json and decodes its result into v.
func (f *fixture) mustJSON(v any, args ...string) {
	f.t.Helper()
	out := f.must(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		f.t.Fatalf("byok-offline %s --json: %v: %q", strings.Join(args, " "), err, out)
	}
}

// online returns the online station on the fixture's medium.
func (f *fixture) online() *onlinetest.Station {
	f.t.Helper()
	s, err := onlinetest.Open(f.media, onlinetest.DefaultSeed)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { s.Close() })
	return s
}

// setup enrols the online station and runs init with three custodians, threshold 2, a
// premium vault and a Managed HSM, and the extra flags.
func (f *fixture) setup(extra ...string) {
	f.t.Helper()
	on := f.online()
	if _, err := on.Enroll(); err != nil {
		f.t.Fatal(err)
	}
	args := []string{"init", "--custodian", "alice=alice", "--custodian", "bob=bob", "--custodian", "carol=carol", "--threshold", "2",
		"--vault", premium + "=premium:westeurope", "--vault", mhsm + "=managed_hsm:northeurope", "--online-fingerprint", on.Fingerprint()}
	f.must(append(args, extra...)...)
}

// offer has the online station offer a KEK and accepts it.
func (f *fixture) offer(o onlinetest.OfferOptions) bundle.ID {
	f.t.Helper()
	b, _, err := f.online().Offer(o)
	if err != nil {
		f.t.Fatal(err)
	}
	f.must("kek", "accept", "--offer", b.ID().String())
	return b.ID()
}

// packageWeb takes a KEK offer for the premium vault, generates the EC-P256 key "web" and
// packages it for that vault.
func (f *fixture) packageWeb() packageResult {
	f.t.Helper()
	f.offer(onlinetest.OfferOptions{Vault: premium})
	f.must("keygen", "--type", "EC-P256", "--ident", "web")
	var pkg packageResult
	f.mustJSON(&pkg, "package", "--key", "web", "--vault", premium)
	return pkg
}

// withLedger opens the station's ledger for f (no command may run meanwhile).
func (f *fixture) withLedger(fn func(s *store.Store)) {
	f.t.Helper()
	db, err := ledger.Open(filepath.Join(f.state, "ledger.db"), store.Schema())
	if err != nil {
		f.t.Fatal(err)
	}
	defer db.Close()
	fn(store.New(db))
}

// replay verifies the whole medium against the ledger's anchor and returns the result; it
// fails the test on any finding.
func (f *fixture) replay() *chain.Result {
	f.t.Helper()
	var anchor bundle.ID
	f.withLedger(func(s *store.Store) {
		d, err := s.InitDone()
		if err != nil {
			f.t.Fatal(err)
		}
		anchor = d.Policy
	})
	m, err := media.Open(f.media)
	if err != nil {
		f.t.Fatal(err)
	}
	defer m.Close()
	res, err := chain.Replay(context.Background(), m, chain.Options{Anchor: anchor})
	if err != nil {
		f.t.Fatalf("replay: %v", err)
	}
	for _, fd := range res.Findings {
		f.t.Errorf("replay finding: %v", fd)
	}
	return res
}
