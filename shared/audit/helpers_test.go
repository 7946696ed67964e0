package audit_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/urfave/cli/v2"
)

// newCeremony returns a ceremony writing to a fresh medium in the test's temporary folder.
func newCeremony(t testing.TB, cfg chaintest.Config) *chaintest.Ceremony {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "medium")
	}
	c, err := chaintest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// run audits and closes the report at the end of the test.
func run(t testing.TB, opts audit.Options) *audit.Report {
	t.Helper()
	rep, err := audit.Run(context.Background(), opts, nil)
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	t.Cleanup(func() { rep.Close() })
	return rep
}

// cliMu serialises cliRun: urfave/cli v2 writes package-level flags (help, version) while
// it parses, so two apps must not run at once in one process.
var cliMu sync.Mutex

// cliRun runs the audit command as a binary would, returning exit code, stdout and stderr.
func cliRun(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	cliMu.Lock()
	defer cliMu.Unlock()
	var out, errb bytes.Buffer
	env := clirun.NewEnv("byok-test", strings.NewReader(""), &out, &errb)
	app := clirun.NewApp(env, "test", "", []*cli.Command{audit.Command(env)})
	code := clirun.Run(context.Background(), app, env, append([]string{"byok-test"}, args...))
	return code, out.String(), errb.String()
}

// rewrite replaces a bundle file on the medium with edit(its bytes).
func rewrite(t testing.TB, c *chaintest.Ceremony, b *bundle.Bundle, edit func([]byte) []byte) {
	t.Helper()
	p := c.File(b)
	data, err := os.ReadFile(p)
	check(t, err)
	check(t, os.Chmod(p, 0o644))
	check(t, os.WriteFile(p, edit(data), 0o644))
}
