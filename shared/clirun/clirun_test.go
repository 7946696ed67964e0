package clirun

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/fstest"
	"github.com/airgap-byok/airgap-byok/shared/jsonout"
	"github.com/airgap-byok/airgap-byok/shared/medialock"
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
		{Name: "log", Action: func(*cli.Context) error {
			e.Log.Info("step done", "n", 1)
			e.Log.Warn("look at this")
			return nil
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
		{"bad log level after command", []string{"ok", "--log-level", "loud"}, exitcode.Usage, "", "log level"},
		{"version flag", []string{"--version"}, 0, "tool version devel\n", ""},
		{"completion needs a shell", []string{"completion"}, exitcode.Usage, "", "bash, zsh or fish"},
		{"completion unknown shell", []string{"completion", "tcsh"}, exitcode.Usage, "", `unknown shell "tcsh"`},
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

// TestLogging pins the logging rules: quiet by default (warnings only), the INFO log with -v
// or --log-level before or after the command, and only JSON on stderr with --json.
func TestLogging(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		info     bool
		jsonLogs bool
	}{
		{"quiet by default", []string{"log"}, false, false},
		{"-v before", []string{"-v", "log"}, true, false},
		{"-v after", []string{"log", "-v"}, true, false},
		{"--verbose after", []string{"log", "--verbose"}, true, false},
		{"log level after", []string{"log", "--log-level", "info"}, true, false},
		{"log level error hides warnings", []string{"log", "--log-level", "error"}, false, false},
		{"json logs with --json", []string{"--json", "log", "-v"}, true, true},
		{"json logs with --json after", []string{"log", "--json", "-v"}, true, true},
		{"explicit text format wins", []string{"log", "--json", "--log-format", "text"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(tt.args...)
			if code != 0 || out != "" {
				t.Fatalf("code %d, stdout %q, stderr %q", code, out, errs)
			}
			if got := strings.Contains(errs, "step done"); got != tt.info {
				t.Errorf("INFO line shown = %v, want %v; stderr %q", got, tt.info, errs)
			}
			wantWarn := !slices.Contains(tt.args, "error")
			if got := strings.Contains(errs, "look at this"); got != wantWarn {
				t.Errorf("warning shown = %v, want %v; stderr %q", got, wantWarn, errs)
			}
			if tt.jsonLogs {
				for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
					if !json.Valid([]byte(line)) {
						t.Errorf("stderr line is not JSON: %q", line)
					}
				}
			} else if strings.Contains(errs, `{"time"`) {
				t.Errorf("JSON log lines without --json: %q", errs)
			}
		})
	}
}

func TestHelpCommand(t *testing.T) {
	code, out, errs := run("help", "ok")
	if code != 0 || !strings.Contains(out, "USAGE:") || !strings.Contains(out, "tool ok") {
		t.Errorf("help ok: code %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestCompletionBash loads the bash script in bash and completes commands, subcommands and
// flags with it.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed: %v", err)
	}
	code, script, errs := run("completion", "bash")
	if code != 0 {
		t.Fatalf("completion bash: code %d, stderr %q", code, errs)
	}
	f := filepath.Join(t.TempDir(), "tool.bash")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		words string // the command line, the last word being completed
		want  string // one of the completions
		not   string // not among them
	}{
		{"tool gr", "group", "ok"},
		{"tool group ''", "leaf", "refuse"},
		{"tool ok --js", "--json", "--log-level"},
		{"tool --log-level info gr", "group", ""},
		{"tool group leaf --v", "--verbose", ""},
		{"tool compl", "completion", ""},
	}
	for _, tt := range tests {
		t.Run(tt.words, func(t *testing.T) {
			prog := fmt.Sprintf(`source %q; complete -p tool >/dev/null || exit 9; COMP_WORDS=(%s); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _tool; printf '%%s\n' "${COMPREPLY[@]}"`, f, tt.words)
			out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v: %s", err, out)
			}
			got := strings.Fields(string(out))
			if !slices.Contains(got, tt.want) {
				t.Errorf("completions %q, want %q among them", got, tt.want)
			}
			if tt.not != "" && slices.Contains(got, tt.not) {
				t.Errorf("completions %q, want no %q", got, tt.not)
			}
		})
	}
}

func TestCompletionZshAndFish(t *testing.T) {
	for _, shell := range []string{"zsh", "fish"} {
		code, script, errs := run("completion", shell)
		if code != 0 || !strings.Contains(script, "group") || !strings.Contains(script, "json") {
			t.Errorf("completion %s: code %d, stderr %q, script %q", shell, code, errs, script)
		}
	}
}

// A medium another process holds, or that cannot be written, gets exit 8 or 9 and the
// operator's next step: how to wait for the holder, how to make the stick writable.
func TestMediumHints(t *testing.T) {
	held := t.TempDir()
	l, err := medialock.ExclusiveWith(context.Background(), held, medialock.Options{Command: "byok-offline package"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	_, locked := medialock.Exclusive(held)
	_, waited := medialock.SharedWith(context.Background(), held, medialock.Options{Wait: time.Millisecond})
	ro := t.TempDir()
	fstest.ReadOnly(t, ro)
	_, readOnly := medialock.Exclusive(ro)
	for _, tt := range []struct {
		name string
		err  error
		code int
		hint string
	}{
		{"locked", locked, exitcode.Locked, "run this command again with --wait DURATION"},
		{"locked after a wait", waited, exitcode.Locked, "or with a longer --wait"},
		{"read-only", readOnly, exitcode.Media, "the stick is write-protected or mounted read-only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Fail(NewEnv("tool", nil, &out, &errb), tt.err)
			if code != tt.code || !strings.Contains(errb.String(), "tool: hint: ") || !strings.Contains(errb.String(), tt.hint) {
				t.Errorf("Fail(%v) = %d, stderr %q; want %d and a hint with %q", tt.err, code, errb.String(), tt.code, tt.hint)
			}
		})
	}
}
