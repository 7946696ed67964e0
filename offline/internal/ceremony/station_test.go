package ceremony_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/cli"
	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// The tokens of a test station: the station's and its custodians'.
var stationTokens = []softhsmtest.Token{
	{Label: "station", PIN: "station-pin-1357", SOPIN: "station-so-2468"},
	{Label: "alice", PIN: "alice-pin-9753", SOPIN: "alice-so-8642"},
	{Label: "bob", PIN: "bob-pin-1122", SOPIN: "bob-so-3344"},
}

const premium = onlinetest.DefaultVault

// station is an initialised offline station on SoftHSM2, with its ledger and its medium:
// init run by byok-offline itself, with the custodians alice and bob, threshold 2, the
// premium vault in westeurope, and the extra flags given.
type station struct {
	t      *testing.T
	module string
	state  string
	media  string
}

func newStation(t *testing.T, extra ...string) *station {
	t.Helper()
	mod := softhsmtest.Setup(t, stationTokens...)
	dir := t.TempDir()
	s := &station{t: t, module: mod, state: filepath.Join(dir, "state"), media: filepath.Join(dir, "medium")}
	t.Setenv("BYOK_OFFLINE_STATE_DIR", s.state)
	t.Setenv("BYOK_MEDIA", s.media)
	t.Setenv("BYOK_OFFLINE_PIN", stationTokens[0].PIN)
	t.Setenv("BYOK_OFFLINE_CUSTODIAN_PIN_ALICE", stationTokens[1].PIN)
	t.Setenv("BYOK_OFFLINE_CUSTODIAN_PIN_BOB", stationTokens[2].PIN)
	on := s.online()
	if _, err := on.Enroll(); err != nil {
		t.Fatal(err)
	}
	fp := on.Fingerprint()
	on.Close()
	s.run(append([]string{"init", "--hsm-module", mod, "--token-label", "station", "--custodian", "alice=alice", "--custodian", "bob=bob", "--threshold", "2",
		"--vault", premium + "=premium:westeurope", "--online-fingerprint", fp}, extra...)...)
	return s
}

// run runs byok-offline on the station's state folder and medium (from the environment), and
// fails the test unless it succeeds.
func (s *station) run(args ...string) string {
	s.t.Helper()
	var out, errb bytes.Buffer
	args = append([]string{cli.Name}, args...)
	if code := cli.Main(context.Background(), args, strings.NewReader(""), &out, &errb); code != 0 {
		s.t.Fatalf("%s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	return out.String()
}

// online opens the online station on the medium; the caller closes it.
func (s *station) online() *onlinetest.Station {
	s.t.Helper()
	on, err := onlinetest.Open(s.media, onlinetest.DefaultSeed)
	if err != nil {
		s.t.Fatal(err)
	}
	return on
}

// offer has the online station write a KEK offer.
func (s *station) offer(o onlinetest.OfferOptions) (bundle.ID, *payload.KEKOffer) {
	s.t.Helper()
	on := s.online()
	defer on.Close()
	b, kp, err := on.Offer(o)
	if err != nil {
		s.t.Fatal(err)
	}
	return b.ID(), kp
}

// with runs fn on a session on the ledger and, unless access is ledgerOnly, on the medium,
// with the clock now (nil: time.Now), and closes it.
func (s *station) with(access ceremony.Access, now func() time.Time, fn func(*ceremony.Session)) {
	s.t.Helper()
	o := ceremony.Options{StateDir: s.state, Media: s.media, Access: access, Context: context.Background(), Now: now}
	if access == ledgerOnly {
		o.Media, o.Access = "", ceremony.ReadMedium
	}
	sess, err := ceremony.Open(o)
	if err != nil {
		s.t.Fatal(err)
	}
	defer sess.Close()
	fn(sess)
}

// ledgerOnly is the access of a session on the ledger alone.
const ledgerOnly ceremony.Access = -1
