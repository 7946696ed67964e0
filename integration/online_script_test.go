package integration_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/shared/clitest"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// onlineRigKey holds a script's rig in its testscript.Env values.
type onlineRigKey struct{}

// scriptTB lets a rig report failures into a script.
type scriptTB struct{ ts *testscript.TestScript }

func (s scriptTB) Helper()                           {}
func (s scriptTB) Fatal(args ...any)                 { s.ts.Fatalf("%s", fmt.Sprint(args...)) }
func (s scriptTB) Fatalf(format string, args ...any) { s.ts.Fatalf(format, args...) }
func (s scriptTB) Errorf(format string, args ...any) { s.ts.Fatalf(format, args...) }

func scriptRig(ts *testscript.TestScript) *onlineRig {
	r := ts.Value(onlineRigKey{}).(*onlineRig)
	r.t = scriptTB{ts}
	return r
}

// runOnlineScripts runs testdata/script/online_*.txtar. Each script has its own local Key
// Vault (premium, allow_weaker_kek in the policy) and these variables: BYOK_ONLINE_STATE_DIR
// ($WORK/state), BYOK_MEDIA ($WORK/media), BYOK_ONLINE_CA_FILE, BYOK_ONLINE_TOKEN_FILE,
// BYOK_ONLINE_LOG_LEVEL (info), VAULT (the vault URL) and TESTBUILD (byok-online built with
// -tags byok_crashpoints, whose clock BYOK_TEST_CLOCK_OFFSET shifts); byok-online, the
// released build, is on PATH. Commands:
//
//	exits N prog args...            run prog, expect exit code N (shared/clitest)
//	ceremony policy [unapproved]    the offline station's enrollment and policy v1
//	                                (approved by 2 of 3 custodians); sets POLICY_FP
//	ceremony approve-policy         the approvals of a policy written unapproved
//	ceremony offer                  the offline station takes the KEK offer byok-online wrote
//	ceremony package KT NAME [N]    a key package approved by N custodians (default 2);
//	                                sets PKG, PKG_FP, PKG_FILE
//	ceremony mismatch NAME          an approved EC-P256 package whose manifest names
//	                                another public key than the one wrapped
//	kv versions NAME N              the vault holds N versions of key NAME
//	kv imports N                    the vault imported N key versions in all
//	kv fault KIND [STATUS]          fail the next ImportKey: status, reset, commit_then_reset
//	flip FILE                       flip a bit near the end of FILE (a stored payload)
func runOnlineScripts(t *testing.T, bins onlineBinaries) {
	testscript.Run(t, testscript.Params{
		Files:       onlineScripts(t),
		WorkdirRoot: t.TempDir(),
		Setup: func(env *testscript.Env) error {
			r, err := startOnlineRig(env.WorkDir, bins.plain, onlineRigConfig{AllowWeakerKEK: true}, env.Defer)
			if err != nil {
				return err
			}
			env.Values[onlineRigKey{}] = r
			env.Setenv("BYOK_ONLINE_STATE_DIR", r.state)
			env.Setenv("BYOK_MEDIA", r.media)
			env.Setenv("BYOK_ONLINE_CA_FILE", r.caFile)
			env.Setenv("BYOK_ONLINE_TOKEN_FILE", r.tokenFile)
			// The INFO transcript on (the default is warnings only): the scripts read it.
			env.Setenv("BYOK_ONLINE_LOG_LEVEL", "info")
			env.Setenv("VAULT", r.vault.URL())
			env.Setenv("TESTBUILD", bins.crash)
			env.Setenv("PATH", filepath.Dir(bins.plain)+string(os.PathListSeparator)+env.Getenv("PATH"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":    clitest.Commands()["exits"],
			"ceremony": scriptCeremony,
			"kv":       scriptKV,
			"flip":     scriptFlip,
		},
	})
}

// onlineScripts lists this suite's scripts, so other suites can share the folder.
func onlineScripts(t *testing.T) []string {
	files, err := filepath.Glob("testdata/script/online_*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no online scripts: %v", err)
	}
	return files
}

func scriptCeremony(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: ceremony policy|approve-policy|offer|package|mismatch ...")
	}
	r := scriptRig(ts)
	if r.c == nil {
		r.attach()
	}
	switch args[0] {
	case "policy":
		p := r.policy(nil)
		if len(args) < 2 || args[1] != "unapproved" {
			r.approve(p.ID(), bundle.KindPolicy, 0, 1)
		}
		ts.Setenv("POLICY_FP", p.ID().Short())
	case "approve-policy":
		r.approve(r.c.PolicyID, bundle.KindPolicy, 0, 1)
	case "offer":
		r.takeOffer()
	case "package":
		if len(args) < 3 {
			ts.Fatalf("usage: ceremony package KEYTYPE NAME [APPROVALS]")
		}
		kt, err := payload.ParseKeyType(args[1])
		ts.Check(err)
		custodians := []int{0, 1}
		if len(args) > 3 {
			n, err := strconv.Atoi(args[3])
			ts.Check(err)
			custodians = make([]int, n)
			for i := range custodians {
				custodians[i] = i
			}
		}
		r.syncOnline()
		b := r.pkg(kt, args[2], custodians...)
		ts.Setenv("PKG", b.ID().String())
		ts.Setenv("PKG_FP", b.ID().Short())
		ts.Setenv("PKG_FILE", r.c.File(b))
	case "mismatch":
		if len(args) != 2 {
			ts.Fatalf("usage: ceremony mismatch NAME")
		}
		r.syncOnline()
		k, err := r.c.PackagePayload(r.offer, payload.ECP256, args[1])
		ts.Check(err)
		_, _, other, _ := r.c.TargetKey(payload.ECP256, "not-"+args[1])
		k.PublicKey = other
		b, err := r.c.Append(bundle.ChainOffline, k)
		ts.Check(err)
		r.approve(b.ID(), bundle.KindKeyPackage, 0, 1)
		ts.Setenv("PKG", b.ID().String())
	default:
		ts.Fatalf("ceremony: unknown step %q", args[0])
	}
}

func scriptKV(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: kv versions NAME N | kv imports N | kv fault KIND [STATUS]")
	}
	r := scriptRig(ts)
	switch args[0] {
	case "versions":
		want, err := strconv.Atoi(args[2])
		ts.Check(err)
		if got := len(r.versions(args[1])); got != want {
			ts.Fatalf("key %s has %d versions, want %d", args[1], got, want)
		}
	case "imports":
		want, err := strconv.ParseUint(args[1], 10, 64)
		ts.Check(err)
		if got := r.vault.Stats().Imports; got != want {
			ts.Fatalf("the vault imported %d key versions, want %d", got, want)
		}
	case "fault":
		f := kvemu.Fault{Kind: kvemu.FaultKind(args[1]), Method: "PUT", Path: importPath}
		if len(args) > 2 {
			n, err := strconv.Atoi(args[2])
			ts.Check(err)
			f.Status = n
		}
		ts.Check(r.vault.InjectFault(f))
	default:
		ts.Fatalf("kv: unknown check %q", args[0])
	}
}

func scriptFlip(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: flip FILE")
	}
	p := ts.MkAbs(args[0])
	data, err := os.ReadFile(p)
	ts.Check(err)
	data[len(data)-10] ^= 1
	ts.Check(os.Chmod(p, 0o644))
	ts.Check(os.WriteFile(p, data, 0o444))
}
