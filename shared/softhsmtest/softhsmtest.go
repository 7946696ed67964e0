// Package softhsmtest creates SoftHSM2 tokens for tests.
//
// SoftHSM2 is this project's real HSM in tests. Each test package gets its own token folder
// and configuration file (SoftHSM reads SOFTHSM2_CONF once per module load, and packages run
// as parallel processes). Tokens must be created before the first crypto11.Configure in the
// process: a token initialised after the module was loaded is invisible to that process.
//
// When the SoftHSM2 module is missing, tests skip, except when the CI environment variable is
// set: there a missing module is a failure, so CI can never pass without exercising the HSM.
package softhsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Token describes a token to initialise.
type Token struct {
	Label string
	PIN   string
	SOPIN string
}

// candidates are where distributions install the SoftHSM2 module.
var candidates = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// ModulePath returns the SoftHSM2 PKCS#11 module path, or "" if none is installed.
// BYOK_TEST_PKCS11_MODULE overrides the search.
func ModulePath() string {
	if p := os.Getenv("BYOK_TEST_PKCS11_MODULE"); p != "" {
		return p
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Require returns the module path, skipping the test when SoftHSM2 or softhsm2-util is not
// installed, or failing it when CI is set.
func Require(t testing.TB) string {
	t.Helper()
	mod := ModulePath()
	_, utilErr := exec.LookPath("softhsm2-util")
	if mod == "" || utilErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("SoftHSM2 is required in CI: install the softhsm2 package (module %q, softhsm2-util: %v)", mod, utilErr)
		}
		t.Skip("SoftHSM2 not installed (apt-get install softhsm2)")
	}
	return mod
}

// Config writes a SoftHSM2 configuration with its own token folder under dir and returns
// the path of the configuration file.
func Config(dir string) (string, error) {
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", err
	}
	return conf, nil
}

// InitToken initialises a token with softhsm2-util under the given configuration file.
func InitToken(conf string, tok Token) error {
	cmd := exec.Command("softhsm2-util", "--init-token", "--free",
		"--label", tok.Label, "--pin", tok.PIN, "--so-pin", tok.SOPIN)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		// The output of softhsm2-util names the label, never the PINs.
		return fmt.Errorf("softhsm2-util --init-token %s: %v: %s", tok.Label, err, out)
	}
	return nil
}

// Setup creates a fresh SoftHSM2 configuration in a temporary folder, initialises the tokens,
// points SOFTHSM2_CONF at it for the rest of the test, and returns the module path.
// It uses t.Setenv, so the calling test cannot be parallel.
func Setup(t testing.TB, tokens ...Token) string {
	t.Helper()
	mod := Require(t)
	conf, err := Config(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		if err := InitToken(conf, tok); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	return mod
}
