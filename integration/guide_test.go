package integration_test

// The operator's guide, docs/ceremony.md, run as written: its ```sh blocks, in order, in one
// bash, in an empty folder, against SoftHSM2 and the local Key Vault, with the binaries built
// from this tree on PATH. A guide that drifts from the commands fails here.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
)

const guidePath = "../docs/ceremony.md"

// guideBlock is a fenced block of the guide.
type guideBlock struct {
	line int    // line of the opening fence, 1-based
	info string // the fence's info string: "sh", "sh no-test", "text"
	body string
}

// Run reports whether the guide's test runs the block.
func (b guideBlock) run() bool { return b.info == "sh" }

// guideBlocks reads the fenced blocks of a Markdown file. Every block must say what it is:
// "sh" (run by TestGuide), "sh no-test" (a command shown, not run: a real HSM, real Azure)
// or "text" (output); any other info string is an error, so that no command block escapes
// the test by a typo.
func guideBlocks(path string) ([]guideBlock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var (
		blocks []guideBlock
		cur    *guideBlock
		body   strings.Builder
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if !strings.HasPrefix(line, "```") {
			if cur != nil {
				body.WriteString(line)
				body.WriteByte('\n')
			}
			continue
		}
		if cur != nil {
			if strings.TrimSpace(line) != "```" {
				return nil, fmt.Errorf("%s:%d: a closing fence with text after it", path, n)
			}
			cur.body = body.String()
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		info := strings.TrimSpace(strings.TrimPrefix(line, "```"))
		switch info {
		case "sh", "sh no-test", "text":
		default:
			return nil, fmt.Errorf("%s:%d: fence info %q: use sh (run by TestGuide), sh no-test or text", path, n, info)
		}
		cur = &guideBlock{line: n, info: info}
		body.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: the block is not closed", path, cur.line)
	}
	return blocks, nil
}

// TestGuideBlocks pins the reader's rules: each fence says what it is, and the run blocks
// are those fenced as sh.
func TestGuideBlocks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, fmt.Sprintf("g%d.md", time.Now().UnixNano()))
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bs, err := guideBlocks(write("# t\n```sh\necho a\n```\ntext\n```sh no-test\nrm -rf /\n```\n```text\nout\n```\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 || !bs[0].run() || bs[1].run() || bs[2].run() || bs[0].body != "echo a\n" || bs[0].line != 2 || bs[1].line != 6 {
		t.Errorf("blocks %+v", bs)
	}
	for _, bad := range []string{"```bash\nx\n```\n", "```shell\nx\n```\n", "```\nx\n```\n", "```sh\nx\n"} {
		if _, err := guideBlocks(write(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestGuide runs every sh block of docs/ceremony.md in order, as one bash script with
// errexit and pipefail, in an empty folder, and fails naming the block (and its line in the
// guide) that failed. It also checks that the run blocks hold the whole ceremony, that the
// README links the guide, and what the run left: the audit's HTML report with PASS, the
// .byok copy on the stick, and the local Key Vault stopped.
func TestGuide(t *testing.T) {
	softhsmtest.Require(t)
	t.Parallel()
	blocks, err := guideBlocks(guidePath)
	if err != nil {
		t.Fatal(err)
	}
	var run []guideBlock
	var all strings.Builder
	for _, b := range blocks {
		if b.run() {
			run = append(run, b)
			all.WriteString(b.body)
		}
	}
	// The tested blocks are the whole ceremony, not a part of it.
	for _, step := range []string{
		"kvemu token", "kvemu serve", "softhsm2-util --init-token", "SOFTHSM2_CONF=",
		"byok-online init", "byok-offline hsm check", "byok-offline init", "byok-online trust",
		"byok-online kek create", "byok-offline kek accept", "byok-offline keygen", "byok-offline package",
		"byok-offline approve", "byok-online verify", "byok-online upload", "byok-offline sync",
		"byok-offline audit", "byok-online audit",
	} {
		if !strings.Contains(all.String(), step) {
			t.Errorf("no tested block of the guide runs %q", step)
		}
	}
	if readme, err := os.ReadFile("../README.md"); err != nil || !bytes.Contains(readme, []byte("(docs/ceremony.md)")) {
		t.Errorf("README.md does not link docs/ceremony.md (%v)", err)
	}

	bin := t.TempDir()
	for _, b := range []struct{ module, cmd, cgo string }{
		{"../offline", "byok-offline", "1"}, {"../online", "byok-online", "0"}, {".", "kvemu", "0"},
	} {
		args := []string{"build"}
		if testing.CoverMode() != "" {
			args = append(args, "-cover")
		}
		args = append(args, "-C", b.module, "-o", filepath.Join(bin, b.cmd), "./cmd/"+b.cmd)
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+b.cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// One script: before each block, its number goes to the mark file, so that a failure
	// names its block.
	aux := t.TempDir()
	mark := filepath.Join(aux, "mark")
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, b := range run {
		fmt.Fprintf(&script, "printf '%%s\\n' %d >%q\n", i, mark)
		script.WriteString(b.body)
	}
	fmt.Fprintf(&script, "printf '%%s\\n' done >%q\n", mark)
	scriptPath := filepath.Join(aux, "guide.sh")
	if err := os.WriteFile(scriptPath, []byte(script.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	cmd := exec.Command("bash", scriptPath)
	cmd.Dir = work
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "BYOK_"), strings.HasPrefix(kv, "SOFTHSM2_CONF="), strings.HasPrefix(kv, "KVEMU_"),
			strings.HasPrefix(kv, "AZURE_"), strings.HasPrefix(kv, "PATH="), strings.HasPrefix(kv, "HOME="):
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+aux)
	// Its own process group: whatever the guide started in the background (the local Key
	// Vault) is stopped with it if a block fails.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	err = cmd.Wait()

	m, _ := os.ReadFile(mark)
	last := strings.TrimSpace(string(m))
	if err != nil || last != "done" {
		where := "before the first block"
		if i, e := strconv.Atoi(last); e == nil && i < len(run) {
			where = fmt.Sprintf("in the block at %s:%d:\n%s", guidePath, run[i].line, run[i].body)
		}
		t.Fatalf("the guide failed (%v) %s\noutput (last lines):\n%s", err, where, tail(out.String(), 60))
	}

	practice := filepath.Join(work, "byok-practice")
	report, err := os.ReadFile(filepath.Join(practice, "report.html"))
	if err != nil || !bytes.Contains(report, []byte(`<h1 id="verdict">PASS</h1>`)) {
		t.Errorf("the guide's audit left no passing report.html (%v)", err)
	}
	if got, _ := filepath.Glob(filepath.Join(practice, "usb", "byok", "contoso-rsa-*.byok")); len(got) != 1 {
		t.Errorf("plain .byok copies on the stick: %v, want 1", got)
	}
	if _, err := os.Stat(filepath.Join(practice, "kv", "ready")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the local Key Vault is still running after the guide's last block (kv/ready: %v)", err)
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
