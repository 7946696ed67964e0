package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/airgap-byok/airgap-byok/shared/clitest"
	"github.com/airgap-byok/airgap-byok/shared/testclock"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		// A script shifts the clock with env BYOK_TEST_CLOCK_OFFSET=+192h (clitest.Clock).
		"byok-online": func() { os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr, clitest.Clock())) },
	})
}

// TestBinaryIgnoresTestClock checks that the binary itself never reads the scripts' clock:
// only the command wrapper above gives run one.
func TestBinaryIgnoresTestClock(t *testing.T) { clitest.CheckBinaryHasNoClock(t) }

// TestScripts runs the command-line scripts that need no Key Vault; the integration module
// runs the ones that do.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:  "testdata/script",
		Cmds: clitest.Commands(),
		Setup: func(env *testscript.Env) error {
			// No ambient configuration leaks into the scripts.
			for _, k := range []string{"BYOK_ONLINE_STATE_DIR", "BYOK_MEDIA", "BYOK_ONLINE_CA_FILE", "BYOK_ONLINE_TOKEN_FILE"} {
				env.Setenv(k, "")
			}
			return nil
		},
	})
}

// TestBuildsWithoutCgoOrPKCS11 pins the online binary's dependency rule: it builds with
// CGO_ENABLED=0 and links neither crypto11 nor any PKCS#11 package.
func TestBuildsWithoutCgoOrPKCS11(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed %d packages; the check would prove nothing", len(deps))
	}
	for _, d := range deps {
		l := strings.ToLower(d)
		if strings.Contains(l, "crypto11") || strings.Contains(l, "pkcs11") || d == "runtime/cgo" {
			t.Errorf("byok-online depends on %s", d)
		}
	}
	var sawAzkeys bool
	for _, d := range deps {
		sawAzkeys = sawAzkeys || strings.HasSuffix(d, "/azkeys")
	}
	if !sawAzkeys {
		t.Error("the dependency list lacks azkeys: is it the right package?")
	}
	bin := t.TempDir() + "/byok-online"
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	// Nor does the binary name the scripts' clock variable.
	if b, err := os.ReadFile(bin); err != nil || bytes.Contains(b, []byte(testclock.EnvOffset)) {
		t.Errorf("the built binary holds %q (or is unreadable: %v)", testclock.EnvOffset, err)
	}
}
