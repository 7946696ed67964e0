package ceremony_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

var initTokens = []softhsmtest.Token{
	{Label: "station", PIN: "station-pin-1357", SOPIN: "station-so-2468"},
	{Label: "alice", PIN: "alice-pin-9753", SOPIN: "alice-so-8642"},
	{Label: "bob", PIN: "bob-pin-1122", SOPIN: "bob-so-3344"},
	{Label: "carol", PIN: "carol-pin-5566", SOPIN: "carol-so-7788"}, // a custodian of newCustodians
}

// initFixture is a station about to be initialised: SoftHSM2 tokens for it and two
// custodians, and a medium on which the online station enrolled.
type initFixture struct {
	t            *testing.T
	module       string
	state, media string
	onlineFP     string
	opened       int // tokens opened, i.e. PINs asked for
	confirmed    int // times the operator was asked to confirm the fingerprint
}

func newInitFixture(t *testing.T) *initFixture {
	t.Helper()
	f := &initFixture{t: t, module: softhsmtest.Setup(t, initTokens...)}
	dir := t.TempDir()
	f.state, f.media = filepath.Join(dir, "state"), filepath.Join(dir, "medium")
	on, err := onlinetest.Open(f.media, onlinetest.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	defer on.Close()
	if _, err := on.Enroll(); err != nil {
		t.Fatal(err)
	}
	f.onlineFP = on.Fingerprint()
	return f
}

// open opens a session as init does, logging to log (nil: nowhere).
func (f *initFixture) open(log *slog.Logger) *ceremony.Session {
	f.t.Helper()
	if err := ceremony.CheckInitMedium(f.media); err != nil {
		f.t.Fatalf("CheckInitMedium = %v", err)
	}
	sess, err := ceremony.Open(ceremony.Options{StateDir: f.state, Media: f.media, Access: ceremony.WriteMedium, Create: true, Log: log})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { sess.Close() })
	return sess
}

func (f *initFixture) request() ceremony.InitRequest {
	return ceremony.InitRequest{
		Name: "offline-station", Module: f.module, StationKeyLabel: "byok-station",
		Custodians:        []ceremony.CustodianSpec{{Name: "alice", Token: "alice"}, {Name: "bob", Token: "bob"}},
		CustodianKeyLabel: "byok-custodian", Threshold: 2,
		Vaults:     []payload.Vault{{URL: onlinetest.DefaultVault, Kind: payload.VaultPremium, Region: "westeurope"}},
		MinKEKBits: 3072, KeyTypes: []payload.KeyType{payload.RSA3072, payload.ECP256},
		BundleLifetime: 168 * time.Hour, MaxClockSkew: 5 * time.Minute, Software: "byok-offline test",
	}
}

func (f *initFixture) openToken(ctx context.Context, label string) (*hsm.Token, error) {
	f.opened++
	for _, tok := range initTokens {
		if tok.Label == label {
			return hsm.Open(ctx, hsm.Config{Module: f.module, TokenLabel: label, PIN: secret.New(tok.PIN)})
		}
	}
	f.t.Fatalf("no test token %q", label)
	return nil, nil
}

// hooks confirm the fingerprint typed (as if given with --online-fingerprint) and open the
// test tokens with their PINs.
func (f *initFixture) hooks(typed string) ceremony.InitHooks {
	return ceremony.InitHooks{
		ConfirmOnline: func(fp string) (string, string, error) {
			f.confirmed++
			if fp != f.onlineFP {
				f.t.Errorf("the operator is shown fingerprint %s, want the online station's %s", fp, f.onlineFP)
			}
			return typed, "flag", nil
		},
		OpenStationToken: func(ctx context.Context) (*hsm.Token, error) { return f.openToken(ctx, "station") },
		OpenCustodianToken: func(ctx context.Context, name, token string) (*hsm.Token, error) {
			return f.openToken(ctx, token)
		},
	}
}

// offlineBundles counts the bundles of the offline chain on the medium.
func (f *initFixture) offlineBundles() int {
	f.t.Helper()
	m, err := media.Open(f.media)
	if err != nil {
		f.t.Fatal(err)
	}
	defer m.Close()
	n := 0
	for _, err := range m.Entries(bundle.ChainOffline, 0, nil) {
		if err != nil {
			f.t.Fatal(err)
		}
		n++
	}
	return n
}

func kinds(bs []*bundle.Bundle) []bundle.Kind {
	var ks []bundle.Kind
	for _, b := range bs {
		ks = append(ks, b.Header.Kind)
	}
	return ks
}

// TestInitWrongFingerprint checks that a fingerprint that is not the online station's, or
// is not a fingerprint, ends init before any PIN is asked, and that nothing is recorded or
// written.
func TestInitWrongFingerprint(t *testing.T) {
	f := newInitFixture(t)
	sess := f.open(nil)
	for _, tt := range []struct {
		typed string
		kind  error
	}{
		{"AAAA-BBBB-CCCC-DDDD", ceremony.ErrWrongFingerprint},
		{"not a fingerprint", ceremony.ErrUsage},
	} {
		_, err := ceremony.Init(context.Background(), sess, f.request(), f.hooks(tt.typed))
		if !errors.Is(err, tt.kind) {
			t.Errorf("Init with fingerprint %q = %v, want %v", tt.typed, err, tt.kind)
		}
	}
	var ce *ceremony.Error
	_, err := ceremony.Init(context.Background(), sess, f.request(), f.hooks("AAAA-BBBB-CCCC-DDDD"))
	if !errors.As(err, &ce) || ce.Kind != ceremony.ErrWrongFingerprint {
		t.Errorf("Init with a wrong fingerprint = %v, want a *ceremony.Error of kind ErrWrongFingerprint", err)
	} else if want := "the online station's key on the medium is " + f.onlineFP + ", not AAAA-BBBB-CCCC-DDDD"; err.Error() != want {
		t.Errorf("Init with a wrong fingerprint = %q, want %q", err, want)
	}
	if f.confirmed != 3 || f.opened != 0 {
		t.Errorf("the operator confirmed %d times and %d tokens were opened, want 3 and none", f.confirmed, f.opened)
	}
	if _, err := sess.Store.Online(); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("store.Online after a wrong fingerprint = %v, want ErrNotFound", err)
	}
	if _, err := sess.Store.Station(); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("store.Station after a wrong fingerprint = %v, want ErrNotFound", err)
	}
	if _, err := os.Lstat(filepath.Join(f.media, "offline")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the medium's offline folder after a wrong fingerprint: %v, want none", err)
	}

	// The operator's own refusal (nothing typed) ends it as it is, before any token.
	stop := errors.New("nothing typed")
	h := f.hooks("")
	h.ConfirmOnline = func(string) (string, string, error) { return "", "", stop }
	if _, err := ceremony.Init(context.Background(), sess, f.request(), h); err != stop {
		t.Errorf("Init when the confirmation fails = %v, want its error", err)
	}
	if f.opened != 0 {
		t.Errorf("%d tokens were opened, want none", f.opened)
	}
}

// TestInitOnce checks a complete init (the online station recorded as confirmed, the
// custodians enrolled, enrollment, policy and approval written, policy version 1 in force),
// and that a rerun is refused before the operator is asked anything.
func TestInitOnce(t *testing.T) {
	f := newInitFixture(t)
	sess := f.open(nil)
	res, err := ceremony.Init(context.Background(), sess, f.request(), f.hooks(f.onlineFP))
	if err != nil {
		t.Fatalf("Init = %v", err)
	}
	want := []bundle.Kind{bundle.KindEnrollment, bundle.KindPolicy, bundle.KindApproval}
	if got := kinds(res.Written); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("Init wrote %v, want %v", got, want)
	}
	if n := f.offlineBundles(); n != 3 {
		t.Errorf("the medium's offline chain holds %d bundles, want 3", n)
	}
	if res.Policy.Version != 1 || !res.Policy.InForce(nil) || res.Done.Policy != res.Policy.ID || res.Policy.ID != res.Written[1].ID() {
		t.Errorf("Init's policy: version %d, in force %t, done %s, id %s; want version 1 in force, the one written", res.Policy.Version, res.Policy.InForce(nil), res.Done.Policy.Short(), res.Policy.ID.Short())
	}
	if got := ceremony.ApproverNames(res.Policy.Policy, res.Policy.Approvals); len(got) != 2 {
		t.Errorf("approvers = %v, want alice and bob", got)
	}
	if len(res.Custodians) != 2 || res.Custodians[0].Name != "alice" || res.Custodians[1].KeyLabel != "byok-custodian-bob" {
		t.Errorf("custodians = %+v, want alice and bob with keys labelled byok-custodian-NAME", res.Custodians)
	}
	if res.Online.Key.ID().Short() != f.onlineFP || res.Online.ConfirmedBy != "flag" || res.Station.KeyLabel != "byok-station" || res.Station.Module != f.module {
		t.Errorf("online %s confirmed by %q, station key %q on %q; want %s by flag, byok-station on %s",
			res.Online.Key.ID().Short(), res.Online.ConfirmedBy, res.Station.KeyLabel, res.Station.Module, f.onlineFP, f.module)
	}
	if f.opened != 3 || f.confirmed != 1 {
		t.Errorf("%d tokens opened and %d confirmations, want 3 and 1", f.opened, f.confirmed)
	}

	_, err = ceremony.Init(context.Background(), sess, f.request(), f.hooks(f.onlineFP))
	var ce *ceremony.Error
	if !errors.As(err, &ce) || ce.Kind != ceremony.ErrInitDone {
		t.Fatalf("a second Init = %v, want a *ceremony.Error of kind ErrInitDone", err)
	}
	if f.opened != 3 || f.confirmed != 1 {
		t.Errorf("the second Init opened %d tokens and asked %d confirmations, want none", f.opened-3, f.confirmed-1)
	}
	if n := f.offlineBundles(); n != 3 {
		t.Errorf("the medium's offline chain holds %d bundles after the refused rerun, want 3", n)
	}
}

// cancelOn is a log handler that cancels a context when a message is logged: an interrupt
// (Ctrl-C) at that point of a command.
type cancelOn struct {
	msg    string
	cancel context.CancelFunc
}

func (h cancelOn) Enabled(context.Context, slog.Level) bool { return true }
func (h cancelOn) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h cancelOn) WithGroup(string) slog.Handler            { return h }
func (h cancelOn) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.cancel()
	}
	return nil
}

// TestInitInterrupted interrupts init after it wrote policy version 1, before the
// custodians' approval: a rerun whose flags describe another policy is refused with nothing
// written, and a rerun with the same flags finishes the init, writing only the approval.
func TestInitInterrupted(t *testing.T) {
	f := newInitFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	sess := f.open(slog.New(cancelOn{msg: "policy written", cancel: cancel}))
	if _, err := ceremony.Init(ctx, sess, f.request(), f.hooks(f.onlineFP)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Init interrupted after the policy = %v, want context.Canceled", err)
	}
	sess.Close()
	if n := f.offlineBundles(); n != 2 {
		t.Fatalf("the interrupted init left %d bundles on the offline chain, want 2 (enrollment, policy)", n)
	}

	sess = f.open(nil)
	other := f.request()
	other.Threshold = 1
	_, err := ceremony.Init(context.Background(), sess, other, f.hooks(f.onlineFP))
	var ce *ceremony.Error
	if !errors.As(err, &ce) || ce.Kind != ceremony.ErrInitPolicyDiffers {
		t.Fatalf("a rerun with another threshold = %v, want a *ceremony.Error of kind ErrInitPolicyDiffers", err)
	}
	if n := f.offlineBundles(); n != 2 {
		t.Errorf("the refused rerun left %d bundles, want 2", n)
	}
	if _, err := sess.Store.InitDone(); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("InitDone after the refused rerun = %v, want ErrNotFound", err)
	}

	confirmed := f.confirmed
	res, err := ceremony.Init(context.Background(), sess, f.request(), f.hooks(f.onlineFP))
	if err != nil {
		t.Fatalf("a rerun with the same request = %v", err)
	}
	if got := kinds(res.Written); len(got) != 1 || got[0] != bundle.KindApproval {
		t.Errorf("the rerun wrote %v, want only the approval", got)
	}
	if f.confirmed != confirmed {
		t.Errorf("the rerun asked the operator to confirm the online station again")
	}
	if !res.Policy.InForce(nil) || f.offlineBundles() != 3 {
		t.Errorf("after the rerun: policy in force %t, %d bundles; want in force, 3", res.Policy.InForce(nil), f.offlineBundles())
	}
}

// TestCheckInitMedium checks that a folder without the medium's marker is refused as holding
// no online enrollment, and left as it was.
func TestCheckInitMedium(t *testing.T) {
	dir := t.TempDir()
	err := ceremony.CheckInitMedium(dir)
	if !errors.Is(err, ceremony.ErrNoOnlineEnrollment) {
		t.Fatalf("CheckInitMedium(empty folder) = %v, want ErrNoOnlineEnrollment", err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("CheckInitMedium created %d entries", len(es))
	}
	if err := ceremony.CheckInitMedium(filepath.Join(dir, "absent")); err == nil || errors.Is(err, ceremony.ErrNoOnlineEnrollment) {
		t.Errorf("CheckInitMedium(missing folder) = %v, want the medium's not-mounted error", err)
	}
}

// TestEnrolCustodian checks the enrolment init and policy amend share: a key that the
// token holds under the custodian's label, which the ledger does not know, is refused unless
// reuse is asked (nothing recorded), then adopted; a later enrolment finds the recorded key
// again.
func TestEnrolCustodian(t *testing.T) {
	f := newInitFixture(t)
	ctx := context.Background()
	tok, err := f.openToken(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	held, err := tok.GenerateSigner(ctx, "byok-custodian-alice", []byte("held-by-alice"))
	tok.Close()
	if err != nil {
		t.Fatal(err)
	}
	sess := f.open(nil)
	open := f.hooks("").OpenCustodianToken
	alice := ceremony.CustodianSpec{Name: "alice", Token: "alice"}

	_, err = sess.EnrolCustodian(ctx, open, alice, "byok-custodian-alice", false)
	var ce *ceremony.Error
	if !errors.As(err, &ce) || ce.Kind != ceremony.ErrSignerHeld || ce.Flag != "--reuse-custodian-keys" || ce.What != "custodian key" {
		t.Fatalf("EnrolCustodian over an unknown key = %v, want ErrSignerHeld naming --reuse-custodian-keys", err)
	}
	if _, err := sess.Store.Custodian("alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("store.Custodian after the refusal = %v, want ErrNotFound", err)
	}

	cs, err := sess.EnrolCustodian(ctx, open, alice, "byok-custodian-alice", true)
	if err != nil {
		t.Fatalf("EnrolCustodian with reuse = %v", err)
	}
	cs.Token.Close()
	if !cs.Record.Adopted || !ceremony.SamePublic(held.Public(), cs.Record.Key.SPKI) {
		t.Errorf("EnrolCustodian with reuse recorded %+v, want the held key, adopted", cs.Record)
	}

	again, err := sess.EnrolCustodian(ctx, open, alice, "byok-custodian-alice", false)
	if err != nil {
		t.Fatalf("EnrolCustodian of an enrolled custodian = %v", err)
	}
	again.Token.Close()
	if again.Record.Key.ID() != cs.Record.Key.ID() || !again.Record.Adopted {
		t.Errorf("EnrolCustodian again recorded key %s (adopted %t), want %s as before", again.Record.Key.ID().Short(), again.Record.Adopted, cs.Record.Key.ID().Short())
	}
}
