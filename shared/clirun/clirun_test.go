package clirun

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/jsonout"
)

func testApp(e *Env) *cli.App {
	return NewApp(e, "test", "", []*cli.Command{
		{Name: "ok", Action: func(*cli.Context) error {
			return e.Result(map[string]int{"n": 1}, func(w io.Writer) error {
				_, err := w.Write([]byte("one\n"))
				return err
			})
		}},
		{Name: "refuse", Action: func(*cli.Context) error {
			return exitcode.Wrap(exitcode.Refused, exitcode.ErrRefused, "try something else")
		}},
		{Name: "group", Subcommands: []*cli.Command{{Name: "leaf", Action: func(*cli.Context) error { return nil }}}},
	})
}

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	e := NewEnv("tool", strings.NewReader(""), &out, &errb)
	code := Run(context.Background(), testApp(e), e, append([]string{"tool"}, args...))
	return code, out.String(), errb.String()
}

func TestRunExitCodesAndOutput(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderrWant string
	}{
		{"ok", []string{"ok"}, 0, "one\n", ""},
		{"json after command", []string{"ok", "--json"}, 0, "{\n  \"n\": 1\n}\n", ""},
		{"json before command", []string{"--json", "ok"}, 0, "{\n  \"n\": 1\n}\n", ""},
		{"unknown flag", []string{"ok", "--nope"}, exitcode.Usage, "", "tool: error: usage"},
		{"unknown command", []string{"nope"}, exitcode.Usage, "", `unknown command "nope"`},
		{"unknown subcommand", []string{"group", "nope"}, exitcode.Usage, "", `unknown command "nope"`},
		{"bad log level", []string{"--log-level", "loud", "ok"}, exitcode.Usage, "", "log level"},
		{"refused with hint", []string{"refuse"}, exitcode.Refused, "", "tool: hint: try something else"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(tt.args...)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.code, errs)
			}
			if out != tt.stdout {
				t.Errorf("stdout = %q, want %q", out, tt.stdout)
			}
			if !strings.Contains(errs, tt.stderrWant) {
				t.Errorf("stderr = %q, want it to contain %q", errs, tt.stderrWant)
			}
		})
	}
}

func TestRunJSONError(t *testing.T) {
	code, out, errs := run("--json", "refuse")
	if code != exitcode.Refused || out != "" {
		t.Fatalf("code %d, stdout %q", code, out)
	}
	var je jsonout.Error
	if err := json.Unmarshal([]byte(errs), &je); err != nil {
		t.Fatalf("stderr is not one JSON object: %v: %q", err, errs)
	}
	if je.ExitCode != exitcode.Refused || je.Code != "refused" || je.Hint != "try something else" {
		t.Errorf("JSON error = %+v", je)
	}
}

func TestEnvPrefix(t *testing.T) {
	if got := envPrefix("byok-offline"); got != "BYOK_OFFLINE_" {
		t.Errorf("envPrefix = %q", got)
	}
}
