package clirun

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/buildinfo"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

func runVersion(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	e := NewEnv("tool", strings.NewReader(""), &out, &errb)
	app := NewApp(e, "test", "", []*cli.Command{VersionCommand(e)})
	code := Run(context.Background(), app, e, append([]string{"tool"}, args...))
	return code, out.String(), errb.String()
}

func TestVersionCommand(t *testing.T) {
	SetVersion("v9.8.7")
	t.Cleanup(func() { SetVersion("devel") })
	self, err := buildinfo.Self() // buildinfo's own test checks it against the file
	if err != nil {
		t.Fatal(err)
	}
	want := self.SHA256

	code, out, errs := runVersion("version", "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var in buildinfo.Info
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("stdout is not one JSON object: %v: %q", err, out)
	}
	if in.SHA256 != want {
		t.Errorf("sha256 = %q, want the test binary's %q", in.SHA256, want)
	}
	if in.Version != "v9.8.7" || in.GoVersion != runtime.Version() || in.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("info = %+v", in)
	}
	if in.Module != "github.com/airgap-byok/airgap-byok/shared" {
		t.Errorf("module = %q, want the test binary's main module", in.Module)
	}

	code, out, _ = runVersion("version")
	if code != 0 || !strings.HasPrefix(out, "tool v9.8.7\n") || !strings.Contains(out, "sha256:     "+want+"\n") {
		t.Errorf("text form: exit %d, %q", code, out)
	}

	code, out, _ = runVersion("--version")
	if code != 0 || out != "tool version v9.8.7\n" {
		t.Errorf("--version: exit %d, %q", code, out)
	}

	if code, _, errs := runVersion("version", "extra"); code != exitcode.Usage {
		t.Errorf("version extra: exit %d, want %d (stderr %q)", code, exitcode.Usage, errs)
	}
}
