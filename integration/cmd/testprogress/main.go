// Command testprogress turns the event stream of `go test -json` into output a person can
// follow while the tests run: a line per package as it ends, a line every so often for each
// package still running (how long, how many tests have passed, which test runs now), the
// full output of every failing test and of every package that failed outside a test, and a
// closing count.
//
// It reads the stream on stdin and writes to stdout; lines that are not test events (go's
// own messages) pass through as they are. Its exit code is 1 when anything failed or the
// stream ended with a package unfinished, 0 otherwise; go test's own exit code is the
// caller's to check as well.
//
//	go test -json work 2>&1 | testprogress -trim github.com/airgap-byok/airgap-byok/
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

func main() {
	every := flag.Duration("every", time.Minute, "how often to report each package that is still running (0: never)")
	trim := flag.String("trim", "", "a prefix to leave off package paths")
	summary := flag.String("summary", "", "also write the closing count line to this file")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go test -json PACKAGES 2>&1 | testprogress [-every DURATION] [-trim PREFIX] [-summary FILE]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	r := newReport(os.Stdout, *trim)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
		for sc.Scan() {
			lines <- sc.Text()
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintf(os.Stderr, "testprogress: reading the test events: %v\n", err)
		}
		close(lines)
	}()
	var tick <-chan time.Time
	if *every > 0 {
		t := time.NewTicker(*every)
		defer t.Stop()
		tick = t.C
	}
	for done := false; !done; {
		select {
		case line, ok := <-lines:
			if !ok {
				done = true
				break
			}
			r.line(line)
		case now := <-tick:
			r.running(now)
		}
	}
	line := r.finish()
	if *summary != "" {
		if err := os.WriteFile(*summary, []byte(line+"\n"), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "testprogress: %v\n", err)
			os.Exit(1)
		}
	}
	if r.anyFailure() {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json), with the build events of Go 1.24.
type event struct {
	Time        time.Time
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string
	FailedBuild string
}

// pkg is what the report knows of one package's run.
type pkg struct {
	name     string
	start    time.Time
	passed   int
	failed   int
	skipped  int
	output   []string            // lines outside any test
	tests    map[string][]string // the output of each test that has not ended yet
	running  []string            // tests that have started and not ended, in order
	finished bool
}

type report struct {
	w        io.Writer
	trim     string
	pkgs     map[string]*pkg
	builds   map[string][]string // build output by import path
	passed   int
	failed   int
	skipped  int
	failures []string // "package Test" of each failed test, and "package" of each failed package
	bad      bool     // a package or build failed
}

func newReport(w io.Writer, trim string) *report {
	return &report{w: w, trim: trim, pkgs: map[string]*pkg{}, builds: map[string][]string{}}
}

func (r *report) name(path string) string {
	if r.trim == "" || path == r.trim {
		return path
	}
	return strings.ReplaceAll(path, r.trim, "")
}

func (r *report) pkg(e *event) *pkg {
	p := r.pkgs[e.Package]
	if p == nil {
		p = &pkg{name: r.name(e.Package), start: e.Time, tests: map[string][]string{}}
		r.pkgs[e.Package] = p
	}
	return p
}

// line handles one line of the stream.
func (r *report) line(line string) {
	var e event
	if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &e) != nil || e.Action == "" {
		fmt.Fprintln(r.w, line)
		return
	}
	switch e.Action {
	case "build-output":
		r.builds[e.ImportPath] = append(r.builds[e.ImportPath], e.Output)
		return
	case "build-fail":
		r.bad = true
		fmt.Fprintf(r.w, "FAIL  build of %s\n", r.name(e.ImportPath))
		r.print(r.builds[e.ImportPath])
		delete(r.builds, e.ImportPath)
		return
	}
	if e.Package == "" {
		return
	}
	p := r.pkg(&e)
	if e.Test == "" {
		r.packageEvent(p, &e)
		return
	}
	switch e.Action {
	case "run":
		p.running = append(p.running, e.Test)
		p.tests[e.Test] = nil
	case "output":
		p.tests[e.Test] = append(p.tests[e.Test], e.Output)
	case "pass", "skip", "fail":
		p.end(e.Test)
		out := p.tests[e.Test]
		delete(p.tests, e.Test)
		switch e.Action {
		case "pass":
			p.passed++
			r.passed++
		case "skip":
			p.skipped++
			r.skipped++
		case "fail":
			p.failed++
			r.failed++
			r.failures = append(r.failures, p.name+" "+e.Test)
			fmt.Fprintf(r.w, "--- FAIL  %s %s (%.2fs)\n", p.name, e.Test, e.Elapsed)
			r.print(out)
		}
	}
}

func (r *report) packageEvent(p *pkg, e *event) {
	switch e.Action {
	case "start":
		p.start = e.Time
	case "output":
		p.output = append(p.output, e.Output)
	case "skip":
		// No test files: nothing ran.
		p.finished = true
	case "pass":
		p.finished = true
		fmt.Fprintf(r.w, "ok    %-40s %7.1fs  %s\n", p.name, e.Elapsed, counts(p.passed, p.failed, p.skipped))
	case "fail":
		p.finished = true
		r.bad = true
		// The tests still running when the package ended (a timeout, a crash) failed with it,
		// and a package that failed outside any test (its build, TestMain) is one failure: the
		// count never says 0 failed of a run that failed.
		for _, t := range p.running {
			r.failures = append(r.failures, p.name+" "+t+" (still running when the package ended)")
		}
		p.failed += len(p.running)
		r.failed += len(p.running)
		if p.failed == 0 {
			p.failed++
			r.failed++
		}
		r.failures = append(r.failures, p.name)
		what := counts(p.passed, p.failed, p.skipped)
		if e.FailedBuild != "" {
			what = "build of " + r.name(e.FailedBuild) + " failed"
		} else if p.failed == len(p.running) && p.failed > 0 {
			what += ": the package ended while tests ran"
		}
		fmt.Fprintf(r.w, "FAIL  %-40s %7.1fs  %s\n", p.name, e.Elapsed, what)
		// What the package printed outside its tests (a panic, a timeout, TestMain), and the
		// tests that were still running when it ended.
		var out []string
		for _, l := range p.output {
			// go test's own verdict lines repeat what the line above says.
			if s := strings.TrimRight(l, "\n"); s != "PASS" && s != "FAIL" && !strings.HasPrefix(s, "FAIL\t") && !strings.HasPrefix(s, "ok  \t") {
				out = append(out, l)
			}
		}
		r.print(out)
		for _, t := range p.running {
			fmt.Fprintf(r.w, "      still running when %s ended: %s\n", p.name, t)
			r.print(p.tests[t])
		}
	}
}

// end removes test from the package's running tests.
func (p *pkg) end(test string) {
	for i, t := range p.running {
		if t == test {
			p.running = append(p.running[:i], p.running[i+1:]...)
			return
		}
	}
}

func (r *report) print(lines []string) {
	for _, l := range lines {
		fmt.Fprint(r.w, "      ", l)
		if !strings.HasSuffix(l, "\n") {
			fmt.Fprintln(r.w)
		}
	}
}

// unfinished returns the packages that have started and not finished, in path order.
func (r *report) unfinished() []*pkg {
	var names []string
	for k, p := range r.pkgs {
		if !p.finished {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	ps := make([]*pkg, len(names))
	for i, k := range names {
		ps[i] = r.pkgs[k]
	}
	return ps
}

// running reports each package that has started and not finished.
func (r *report) running(now time.Time) {
	for _, p := range r.unfinished() {
		line := fmt.Sprintf("...   %-40s %7s  %d passed so far", p.name, now.Sub(p.start).Round(time.Second), p.passed)
		if p.failed > 0 {
			line += fmt.Sprintf(", %d failed", p.failed)
		}
		if n := len(p.running); n > 0 {
			line += ", running " + p.running[n-1]
		}
		fmt.Fprintln(r.w, line)
	}
}

// finish prints what failed and the closing count, and returns the count line.
func (r *report) finish() string {
	for _, p := range r.unfinished() {
		r.bad = true
		r.failures = append(r.failures, p.name+" (did not finish)")
		fmt.Fprintf(r.w, "FAIL  %s: the test stream ended before the package finished\n", p.name)
		r.print(p.output)
	}
	if len(r.failures) > 0 {
		fmt.Fprintln(r.w)
		fmt.Fprintln(r.w, "Failed:")
		for _, f := range r.failures {
			fmt.Fprintln(r.w, "  "+f)
		}
	}
	line := fmt.Sprintf("tests: %d passed, %d failed, %d skipped", r.passed, r.failed, r.skipped)
	fmt.Fprintln(r.w)
	fmt.Fprintln(r.w, line)
	return line
}

// anyFailure says whether a test, a package or a build failed, or a package did not finish.
func (r *report) anyFailure() bool { return r.bad || r.failed > 0 }

func counts(passed, failed, skipped int) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d passed", passed)
	if failed > 0 {
		fmt.Fprintf(&b, ", %d failed", failed)
	}
	if skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped", skipped)
	}
	return b.String()
}
