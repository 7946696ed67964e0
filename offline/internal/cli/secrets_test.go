package cli

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TestNoPINInAnyOutput runs every command, in text and JSON, at debug log level, with right
// and wrong PINs from the environment and from files; fixture.run fails the test if any
// stdout or stderr holds a PIN. Nor may the ledger or the medium hold one.
func TestNoPINInAnyOutput(t *testing.T) {
	f := newFixture(t)
	soFile := filepath.Join(f.dir, "so.pin")
	wrongFile := filepath.Join(f.dir, "wrong.pin")
	aliceFile := filepath.Join(f.dir, "alice.pin")
	for path, pin := range map[string]string{soFile: testTokens[0].SOPIN, wrongFile: "wrong-pin-0000", aliceFile: testTokens[1].PIN} {
		if err := os.WriteFile(path, []byte(pin+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	debug := func(args ...string) []string { return append([]string{"--log-level", "debug"}, args...) }
	both := func(code int, args ...string) {
		t.Helper()
		f.exits(code, debug(args...)...)
		f.exits(code, debug(append(args, "--json")...)...)
	}
	wrongStation := func(code int, args ...string) {
		t.Helper()
		t.Setenv(envPIN, "wrong-pin-0000")
		both(code, args...)
		t.Setenv(envPIN, "")
		both(code, append(args, "--pin-file", wrongFile)...)
		t.Setenv(envPIN, testTokens[0].PIN)
	}

	both(0, "hsm", "check")
	wrongStation(exitcode.HSM, "hsm", "check")

	on := f.online()
	if _, err := on.Enroll(); err != nil {
		t.Fatal(err)
	}
	initArgs := []string{"init", "--custodian", "alice=alice", "--custodian", "bob=bob", "--threshold", "2",
		"--vault", premium + "=premium:westeurope", "--online-fingerprint", on.Fingerprint()}
	wrongStation(exitcode.HSM, initArgs...)
	t.Setenv(custodianPINEnv("bob"), "wrong-pin-0000")
	both(exitcode.HSM, initArgs...)
	t.Setenv(custodianPINEnv("bob"), testTokens[2].PIN)
	f.must(debug(append(initArgs, "--custodian-pin-file", "alice="+aliceFile)...)...)
	both(exitcode.Refused, initArgs...)

	if _, _, err := f.online().Offer(onlinetest.OfferOptions{}); err != nil {
		t.Fatal(err)
	}
	both(0, "kek", "accept")
	wrongStation(exitcode.HSM, "keygen", "--type", "EC-P256", "--ident", "nope")
	f.must(debug("keygen", "--type", "EC-P256", "--ident", "web")...)
	f.must(debug("keygen", "--type", "EC-P256", "--ident", "web-2", "--json")...)
	f.must(debug("keygen", "--type", "EC-P256", "--ident", "guarded", "--wrap-with-trusted", "--so-pin-file", soFile)...)
	both(exitcode.HSM, "keygen", "--type", "EC-P256", "--ident", "guarded-2", "--wrap-with-trusted", "--so-pin-file", wrongFile)

	wrongStation(exitcode.HSM, "package", "--key", "web", "--vault", premium)
	var pkg packageResult
	f.mustJSON(&pkg, debug("package", "--key", "web", "--vault", premium)...)
	both(0, "package", "--key", "web", "--vault", premium)
	both(exitcode.HSM, "package", "--key", "guarded", "--vault", premium, "--so-pin-file", wrongFile)
	f.must(debug("package", "--key", "guarded", "--vault", premium, "--so-pin-file", soFile)...)

	wrongStation(exitcode.HSM, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "alice")
	t.Setenv(custodianPINEnv("alice"), "wrong-pin-0000")
	both(exitcode.HSM, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "alice")
	both(exitcode.HSM, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "alice", "--custodian-pin-file", "alice="+wrongFile)
	f.must(debug("approve", "--package", pkg.Package.Fingerprint, "--custodian", "alice", "--custodian-pin-file", "alice="+aliceFile)...)
	t.Setenv(custodianPINEnv("alice"), testTokens[1].PIN)
	both(exitcode.Refused, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "alice")
	f.must(debug("approve", "--package", pkg.Package.Fingerprint, "--custodian", "bob")...)

	if _, err := f.online().Receipt(pkg.Package.ID, payload.OutcomeImported); err != nil {
		t.Fatal(err)
	}
	both(0, "sync")
	both(0, "status")
	both(0, "log")
	f.must(debug("inspect", filepath.Join(f.media, filepath.FromSlash(pkg.Path)))...)
	f.must(debug("inspect", "--json", filepath.Join(f.media, filepath.FromSlash(pkg.Path)))...)

	// Nothing at rest holds a PIN either.
	for _, dir := range []string{f.state, f.media} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, pin := range allPINs {
				if bytes.Contains(data, []byte(pin)) {
					t.Errorf("%s holds a PIN", path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestInitConfirmsTheFingerprintTypedOnStdin: without --online-fingerprint the operator
// types the fingerprint the online operator reads aloud; a wrong one is refused (exit 3).
func TestInitConfirmsTheFingerprintTypedOnStdin(t *testing.T) {
	f := newFixture(t)
	on := f.online()
	if _, err := on.Enroll(); err != nil {
		t.Fatal(err)
	}
	args := []string{Name, "init", "--custodian", "alice=alice", "--threshold", "1", "--vault", premium + "=premium:westeurope"}
	tests := []struct {
		name  string
		typed string
		code  int
	}{
		{"nothing typed", "\n", exitcode.Usage},
		{"garbage", "not a fingerprint\n", exitcode.Usage},
		{"another fingerprint", "AAAA-BBBB-CCCC-DDDD\n", exitcode.Verify},
		// People type fingerprints in lowercase, without dashes, with O for 0.
		{"the online station's, as typed", strings.ToLower(strings.ReplaceAll(on.Fingerprint(), "-", " ")) + "\n", exitcode.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(context.Background(), args, strings.NewReader(tt.typed), &out, &errb)
			if code != tt.code {
				t.Fatalf("init with %q typed: exit %d, want %d\n%s", tt.typed, code, tt.code, errb.String())
			}
			if !strings.Contains(errb.String(), "The online station's key fingerprint on this medium is "+on.Fingerprint()) {
				t.Errorf("stderr %q does not show the fingerprint to compare", errb.String())
			}
		})
	}
	var st statusResult
	f.mustJSON(&st, "status")
	if st.Online == nil || st.Online.Fingerprint != on.Fingerprint() {
		t.Errorf("status shows online station %+v, want %s", st.Online, on.Fingerprint())
	}
}
