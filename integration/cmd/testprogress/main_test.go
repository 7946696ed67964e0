package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goTestJSON runs `go test -json ./...` on a small module of its own: a package whose tests
// pass, fail (with a subtest) and skip, a package that does not build, and one without tests.
// It returns the event stream exactly as go test wrote it.
func goTestJSON(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.26\n",
		"good/good_test.go": `package good

import "testing"

func TestOne(t *testing.T) {}
func TestTwo(t *testing.T) { t.Run("sub", func(t *testing.T) {}) }
func TestSkipped(t *testing.T) { t.Skip("not here") }
`,
		"bad/bad_test.go": `package bad

import "testing"

func TestFine(t *testing.T) {}
func TestBroken(t *testing.T) {
	t.Run("inner", func(t *testing.T) { t.Log("the marker line"); t.Error("went wrong") })
}
`,
		"nobuild/nobuild_test.go": "package nobuild\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) { undefinedThing() }\n",
		"notests/notests.go":      "package notests\n",
		// A test binary that ends while tests run, as one does at its -timeout.
		"crash/crash_test.go": `package crash

import (
	"os"
	"testing"
)

func TestBefore(t *testing.T) {}
func TestEnds(t *testing.T) { t.Run("inner", func(t *testing.T) { os.Exit(3) }) }
`,
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "GOPROXY=off")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("go test passed on a module with a failing test:\n%s", out)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func feed(r *report, lines []string) {
	for _, l := range lines {
		r.line(l)
	}
}

// TestReport runs go test once and checks the report of its stream, whole and in parts.
func TestReport(t *testing.T) {
	stream := goTestJSON(t)
	t.Run("whole", func(t *testing.T) { testWholeRun(t, stream) })
	t.Run("passing", func(t *testing.T) { testPassingRun(t, stream) })
	t.Run("unfinished", func(t *testing.T) { testUnfinishedPackage(t, stream) })
}

// testWholeRun: every package's line, each failing test's output, the build failure, the list
// of failures and the closing count as the last line.
func testWholeRun(t *testing.T, stream []string) {
	var out bytes.Buffer
	r := newReport(&out, "example.com/m/")
	feed(r, stream)
	closing := r.finish()
	text := out.String()

	// good: TestOne, TestTwo, TestTwo/sub pass, TestSkipped skips; bad: TestFine passes,
	// TestBroken/inner and TestBroken fail; crash: TestBefore passes, TestEnds and
	// TestEnds/inner were running when it ended; nobuild's build fails.
	if want := "tests: 5 passed, 5 failed, 1 skipped"; closing != want {
		t.Errorf("closing line %q, want %q\n%s", closing, want, text)
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if last := lines[len(lines)-1]; last != closing {
		t.Errorf("last line %q, want the closing count", last)
	}
	for _, want := range []string{
		"ok    good ",
		"FAIL  bad ",
		"--- FAIL  bad TestBroken/inner",
		"the marker line",
		"went wrong",
		"FAIL  build of nobuild [nobuild.test]\n",
		"build of nobuild [nobuild.test] failed\n",
		"undefinedThing",
		"Failed:\n  bad TestBroken/inner\n  bad TestBroken\n",
		"\n  nobuild\n",
		"FAIL  crash ",
		"  crash TestEnds/inner (still running when the package ended)\n",
		"  crash TestEnds (still running when the package ended)\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "notests") {
		t.Errorf("a package without tests is reported:\n%s", text)
	}
	if strings.Contains(text, `"Action"`) {
		t.Errorf("raw events in the report:\n%s", text)
	}
	if !r.anyFailure() {
		t.Error("a run with failures is reported as passing")
	}
}

// testPassingRun: the passing package alone is no failure.
func testPassingRun(t *testing.T, stream []string) {
	var out bytes.Buffer
	r := newReport(&out, "")
	var pass []string
	for _, l := range stream {
		if strings.Contains(l, `"Package":"example.com/m/good"`) {
			pass = append(pass, l)
		}
	}
	feed(r, pass)
	if got, want := r.finish(), "tests: 3 passed, 0 failed, 1 skipped"; got != want {
		t.Errorf("closing line %q, want %q\n%s", got, want, out.String())
	}
	if r.anyFailure() {
		t.Errorf("a passing package is reported as failing:\n%s", out.String())
	}
}

// testUnfinishedPackage: a stream cut off before a package ends (go test killed, or its output
// lost) is a failure, not a pass with fewer tests.
func testUnfinishedPackage(t *testing.T, stream []string) {
	var out bytes.Buffer
	r := newReport(&out, "example.com/m/")
	var cut []string
	for _, l := range stream {
		if strings.Contains(l, `"Package":"example.com/m/good"`) && strings.Contains(l, `"Action":"pass"`) && !strings.Contains(l, `"Test"`) {
			continue // the package's own pass event
		}
		if strings.Contains(l, `"Package":"example.com/m/good"`) {
			cut = append(cut, l)
		}
	}
	feed(r, cut)
	r.finish()
	if !r.anyFailure() {
		t.Fatalf("an unfinished package is not a failure:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "FAIL  good: the test stream ended before the package finished") {
		t.Errorf("the unfinished package is not named:\n%s", out.String())
	}
}

// While a package runs, the periodic line says how long, how much has passed and which test
// runs now.
func TestRunningLine(t *testing.T) {
	var out bytes.Buffer
	r := newReport(&out, "example.com/m/")
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, l := range []string{
		`{"Time":"2026-01-02T03:04:05Z","Action":"start","Package":"example.com/m/slow"}`,
		`{"Time":"2026-01-02T03:04:06Z","Action":"run","Package":"example.com/m/slow","Test":"TestA"}`,
		`{"Time":"2026-01-02T03:04:07Z","Action":"pass","Package":"example.com/m/slow","Test":"TestA","Elapsed":1}`,
		`{"Time":"2026-01-02T03:04:07Z","Action":"run","Package":"example.com/m/slow","Test":"TestLong"}`,
		`go: a line that is not an event`,
	} {
		r.line(l)
	}
	r.running(t0.Add(95 * time.Second))
	text := out.String()
	if !strings.Contains(text, "go: a line that is not an event\n") {
		t.Errorf("a plain line is not passed through:\n%s", text)
	}
	if !strings.Contains(text, "...   slow") || !strings.Contains(text, "1m35s  1 passed so far, running TestLong") {
		t.Errorf("running line:\n%s", text)
	}
}
