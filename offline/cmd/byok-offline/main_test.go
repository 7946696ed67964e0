package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/shared/clitest"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		// A script shifts the clock with env BYOK_TEST_CLOCK_OFFSET=+192h (clitest.Clock).
		"byok-offline": func() { os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr, clitest.Clock())) },
		"byok-test":    func() { os.Exit(onlinetest.Command(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestBinaryIgnoresTestClock checks that the binary itself never reads the scripts' clock:
// only the command wrapper above gives run one.
func TestBinaryIgnoresTestClock(t *testing.T) { clitest.CheckBinaryHasNoClock(t) }

// Script tokens and their PINs. The PINs are distinctive so that the scripts can check that
// no output ever holds one.
var scriptTokens = []struct{ label, pin, so string }{
	{"station", "station-pin-4417", "station-so-9902"},
	{"alice", "alice-pin-5173", "alice-so-6631"},
	{"bob", "bob-pin-8265", "bob-so-1248"},
	{"carol", "carol-pin-3390", "carol-so-7754"},
}

func TestScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end scripts are skipped with -short")
	}
	mod := softhsmtest.Require(t)
	fp, err := onlinetest.Fingerprint(onlinetest.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	// Another ceremony's online station: byok-test enroll --seed 7.
	fp7, err := onlinetest.Fingerprint(7)
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:           filepath.Join("testdata", "script"),
		Cmds:          scriptCommands(),
		UpdateScripts: os.Getenv("UPDATE_SCRIPTS") != "",
		Setup: func(env *testscript.Env) error {
			if err := setupScript(env, mod, fp); err != nil {
				return err
			}
			env.Setenv("ONLINE_FP7", fp7)
			return nil
		},
	})
}

// setupScript gives every script its own SoftHSM2 tokens, PIN files, state folder and
// medium, and the environment byok-offline reads them from.
func setupScript(env *testscript.Env, mod, onlineFP string) error {
	conf, err := softhsmtest.Config(filepath.Join(env.WorkDir, ".softhsm"))
	if err != nil {
		return err
	}
	pins := filepath.Join(env.WorkDir, "pins")
	if err := os.Mkdir(pins, 0o700); err != nil {
		return err
	}
	for _, tok := range scriptTokens {
		if err := softhsmtest.InitToken(conf, softhsmtest.Token{Label: tok.label, PIN: tok.pin, SOPIN: tok.so}); err != nil {
			return err
		}
		for name, v := range map[string]string{tok.label + ".pin": tok.pin, tok.label + ".so.pin": tok.so} {
			if err := os.WriteFile(filepath.Join(pins, name), []byte(v+"\n"), 0o600); err != nil {
				return err
			}
		}
		if tok.label != "station" {
			env.Setenv(fmt.Sprintf("BYOK_OFFLINE_CUSTODIAN_PIN_%s", upper(tok.label)), tok.pin)
		}
	}
	env.Setenv("SOFTHSM2_CONF", conf)
	env.Setenv("BYOK_OFFLINE_HSM_MODULE", mod)
	env.Setenv("BYOK_OFFLINE_TOKEN_LABEL", "station")
	env.Setenv("BYOK_OFFLINE_PIN", scriptTokens[0].pin)
	env.Setenv("BYOK_OFFLINE_STATE_DIR", filepath.Join(env.WorkDir, "state"))
	// The stick: an existing, empty folder, where the ceremony's first init makes the medium.
	if err := os.Mkdir(filepath.Join(env.WorkDir, "medium"), 0o755); err != nil {
		return err
	}
	env.Setenv("BYOK_MEDIA", filepath.Join(env.WorkDir, "medium"))
	env.Setenv("ONLINE_FP", onlineFP)
	env.Setenv("VAULT", onlinetest.DefaultVault)
	env.Setenv("MHSM", "https://contoso-mhsm.managedhsm.azure.net")
	if p, err := exec.LookPath("openssl"); err == nil {
		env.Setenv("OPENSSL", p)
	}
	return nil
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// scriptCommands are the custom script commands: clitest's, and
//
//	jsonenv VAR FILE FIELD
//
// which sets $VAR to the string FIELD of the JSON object in FILE, FIELD being a dotted path
// (e.g. a package's fingerprint, package.fingerprint, from "package --json" output), so a
// later command can name it.
func scriptCommands() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	cmds := clitest.Commands()
	cmds["jsonenv"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 3 {
			ts.Fatalf("usage: jsonenv VAR FILE FIELD")
		}
		var obj any
		if err := json.Unmarshal([]byte(ts.ReadFile(args[1])), &obj); err != nil {
			ts.Fatalf("jsonenv: %s: %v", args[1], err)
		}
		for _, name := range strings.Split(args[2], ".") {
			m, _ := obj.(map[string]any)
			obj = m[name]
		}
		v, ok := obj.(string)
		if !ok {
			ts.Fatalf("jsonenv: %s has no string field %q", args[1], args[2])
		}
		ts.Setenv(args[0], v)
	}
	// waitfile FILE waits until FILE exists (a background command's ready file).
	cmds["waitfile"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: waitfile FILE")
		}
		deadline := time.Now().Add(time.Minute)
		for {
			if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
				return
			}
			if time.Now().After(deadline) {
				ts.Fatalf("waitfile: %s did not appear", args[0])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return cmds
}
