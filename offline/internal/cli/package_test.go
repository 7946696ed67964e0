package cli

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// setClock makes the commands see t from now on.
func setClock(tb testing.TB, t time.Time) {
	tb.Helper()
	prev := testOnlyNow
	testOnlyNow = func() time.Time { return t }
	tb.Cleanup(func() { testOnlyNow = prev })
}

// offlineHead returns the sequence number of the offline chain's last bundle on the medium.
func (f *fixture) offlineHead() uint64 {
	f.t.Helper()
	var st statusResult
	f.mustJSON(&st, "status")
	return st.Head.Seq
}

func TestPackageRefusals(t *testing.T) {
	f := newFixture(t)
	f.setup()
	f.offer(onlinetest.OfferOptions{Vault: premium, Bits: 3072})
	f.must("keygen", "--type", "RSA-2048", "--ident", "r2")
	f.must("keygen", "--type", "EC-P384", "--ident", "e384")
	f.must("keygen", "--type", "AES-256", "--ident", "a256")
	f.must("keygen", "--type", "RSA-4096", "--ident", "r4")
	start := time.Now()

	tests := []struct {
		name   string
		at     time.Duration // clock offset
		args   []string
		code   int
		stderr string
	}{
		{"vault not in the policy", 0, []string{"--key", "r2", "--vault", "https://other.vault.azure.net"}, exitcode.Refused, "does not allow vault"},
		{"KEK weaker than the target", 0, []string{"--key", "e384", "--vault", premium}, exitcode.Refused,
			"(?s)weaker than the EC-P384 key.*hint: no KEK is as strong as an EC-P384 key .*byok-offline policy amend --allow-weaker-kek"},
		{"KEK smaller than Azure's largest", 0, []string{"--key", "r4", "--vault", premium}, exitcode.Refused,
			"(?s)weaker than the RSA-4096 key.*hint: have the online station offer a larger KEK \\(byok-online kek create --size 4096\\)"},
		{"AES to a premium vault", 0, []string{"--key", "a256", "--vault", premium}, exitcode.Refused, "go only to a Managed HSM"},
		{"no KEK for the vault", 0, []string{"--key", "a256", "--vault", mhsm}, exitcode.Refused, "no accepted KEK for " + mhsm},
		{"offer expired", 8 * 24 * time.Hour, []string{"--key", "r2", "--vault", premium}, exitcode.Verify,
			"(?s)KEK offer .* expired.*hint: the online station offers a new one \\(byok-online kek create --vault " + premium + " --name "},
		{"KEK expired", 31 * 24 * time.Hour, []string{"--key", "r2", "--vault", premium}, exitcode.Verify, "KEK .* expired"},
		{"unknown key", 0, []string{"--key", "nope", "--vault", premium}, exitcode.Usage, `no key "nope"`},
		{"bad key name", 0, []string{"--key", "r2", "--vault", premium, "--name", "no_underscores"}, exitcode.Usage, "Key Vault names"},
		{"bad key op", 0, []string{"--key", "r2", "--vault", premium, "--key-ops", "sign,derive"}, exitcode.Usage, "--key-ops derive"},
		{"expiry in the past", 0, []string{"--key", "r2", "--vault", premium, "--expires", "-1h"}, exitcode.Usage, "--expires must be later"},
		{"KEK of another vault", 0, []string{"--key", "r2", "--vault", mhsm}, exitcode.Refused, "no accepted KEK"},
	}
	head := f.offlineHead()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setClock(t, start.Add(tt.at))
			errs := f.exits(tt.code, append([]string{"package"}, tt.args...)...)
			if !matches(tt.stderr, errs) {
				t.Errorf("stderr %q does not match %q", errs, tt.stderr)
			}
		})
	}
	if got := f.offlineHead(); got != head {
		t.Errorf("refused packages moved the offline chain from %d to %d", head, got)
	}
	f.withLedger(func(s *store.Store) {
		if pkgs, err := s.Packages(); err != nil || len(pkgs) != 0 {
			t.Errorf("ledger has %d packages (%v) after refusals, want 0", len(pkgs), err)
		}
	})
}

// TestPackageIsIdempotent packages a key, reruns the same command (same package), then
// asks for another name (refused), uploads it and asks again (refused: uploaded).
func TestPackageIsIdempotent(t *testing.T) {
	f := newFixture(t)
	f.setup()
	f.offer(onlinetest.OfferOptions{Vault: premium})
	f.must("keygen", "--type", "EC-P256", "--ident", "web")
	var first, again packageResult
	f.mustJSON(&first, "package", "--key", "web", "--vault", premium)
	f.mustJSON(&again, "package", "--key", "web", "--vault", premium)
	if !again.Existing || again.Package != first.Package {
		t.Errorf("second package = %s (existing %t), want the first %s", again.Package.Fingerprint, again.Existing, first.Package.Fingerprint)
	}
	f.exits(exitcode.Refused, "package", "--key", "web", "--vault", premium, "--name", "web-2")
	f.must("approve", "--package", first.Package.Fingerprint, "--custodian", "alice", "--custodian", "bob")
	if _, err := f.online().Receipt(first.Package.ID, payload.OutcomeImported); err != nil {
		t.Fatal(err)
	}
	errs := f.exits(exitcode.Refused, "package", "--key", "web", "--vault", premium)
	if !strings.Contains(errs, "uploaded to "+premium+" already") {
		t.Errorf("stderr %q, want it to say the key was uploaded", errs)
	}
	f.replay()
}

// TestWrapWithTrusted marks a key CKA_WRAP_WITH_TRUSTED: the token refuses to wrap it
// without the security officer (exit code 5, nothing written), and wraps it with the SO PIN
// into a .byok that unwraps to the HSM's key.
func TestWrapWithTrusted(t *testing.T) {
	f := newFixture(t)
	f.setup()
	f.offer(onlinetest.OfferOptions{Vault: premium})
	soFile := filepath.Join(f.dir, "so.pin")
	if err := os.WriteFile(soFile, []byte(testTokens[0].SOPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongFile := filepath.Join(f.dir, "wrong.pin")
	if err := os.WriteFile(wrongFile, []byte("wrong-pin-0000\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var key keyResult
	f.mustJSON(&key, "keygen", "--type", "RSA-2048", "--ident", "guarded", "--wrap-with-trusted", "--so-pin-file", soFile)
	if !key.WrapWithTrusted || key.Attributes["CKA_WRAP_WITH_TRUSTED"] != "true" || !key.TrialExport {
		t.Fatalf("keygen --wrap-with-trusted = %+v, want the attribute set and a trial export", key)
	}
	// A wrong SO PIN fails the trial export with the HSM's error.
	errs := f.exits(exitcode.HSM, "keygen", "--type", "RSA-2048", "--ident", "guarded-2", "--wrap-with-trusted", "--so-pin-file", wrongFile)
	if !strings.Contains(errs, "pin incorrect") {
		t.Errorf("stderr %q, want the SO PIN refused", errs)
	}

	head := f.offlineHead()
	errs = f.exits(exitcode.HSM, "package", "--key", "guarded", "--vault", premium)
	if !strings.Contains(errs, "may only be wrapped by a trusted key") || !strings.Contains(errs, "--so-pin-file") {
		t.Errorf("stderr %q, want the token's refusal and the hint", errs)
	}
	if got := f.offlineHead(); got != head {
		t.Fatalf("a refused wrap moved the offline chain from %d to %d", head, got)
	}

	var pkg packageResult
	f.mustJSON(&pkg, "package", "--key", "guarded", "--vault", premium, "--so-pin-file", soFile)
	if !pkg.Trusted {
		t.Errorf("package result %+v, want wrapped_with_trusted", pkg)
	}
	plain, err := os.ReadFile(filepath.Join(f.media, filepath.FromSlash(pkg.Byok)))
	if err != nil {
		t.Fatal(err)
	}
	file, err := byok.Parse(plain)
	if err != nil {
		t.Fatal(err)
	}
	got, err := keywrap.UnwrapRSAAES(onlinetest.KEK(3072), file.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	der, _, err := keywrap.TrimDER(got)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
	if !bytes.Equal(pub, key.PublicKey) {
		t.Error("the trusted wrap unwraps to another key than the HSM's")
	}
	// The station key still signs after the SO session: the package verifies.
	f.replay()
}

// matches reports whether s matches the regular expression pattern.
func matches(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// An expired key package is a verification failure (exit 3), not a refusal.
func TestApproveExpiredPackage(t *testing.T) {
	f := newFixture(t)
	f.setup()
	pkg := f.packageWeb()
	setClock(t, time.Now().Add(8*24*time.Hour))
	errs := f.exits(exitcode.Verify, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "alice")
	if !matches("(?s)key package "+pkg.Package.Fingerprint+" expired at .*hint: package the key again", errs) {
		t.Errorf("stderr %q: want the package's expiry and the next step", errs)
	}
}
