package integration_test

import (
	"bytes"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
)

// prompted is a command stopped at a prompt on its standard input.
type prompted struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout bytes.Buffer
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
}

// startPrompted starts a station's command that asks a question on stdin, and returns once
// the question is on its stderr: from then on the command waits, holding what it opened.
func (r *resRig) startPrompted(station, prompt string, args ...string) *prompted {
	r.t.Helper()
	bin := r.s.offline
	if station == onlineStation {
		bin = r.s.online.plain
	}
	p := &prompted{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = r.env(station, "BYOK_CRASHPOINT=")
	p.cmd.Stdout = &p.stdout
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		r.t.Fatal(err)
	}
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	asked := make(chan struct{})
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		seen := false
		for {
			n, err := errPipe.Read(buf)
			p.mu.Lock()
			p.stderr.Write(buf[:n])
			if !seen && strings.Contains(p.stderr.String(), prompt) {
				seen = true
				close(asked)
			}
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-asked:
	case <-p.done:
		p.cmd.Wait()
		r.t.Fatalf("byok-%s %s exited before asking %q:\n%s", station, strings.Join(args, " "), prompt, p.stderr.String())
	}
	return p
}

// answer types line at the prompt and waits for the command to exit.
func (p *prompted) answer(t testing.TB, line string) result {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
	p.stdin.Close()
	<-p.done
	err := p.cmd.Wait()
	res := result{stdout: p.stdout.String(), stderr: p.stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return res
}

// testConcurrentUse runs commands while another process of the same station holds its
// ledger (stopped at a prompt): a second process using that ledger, or needing the medium
// another process writes, exits 8 and changes nothing; a reader of a medium another reader
// holds goes on; once the first process is done, the second's command succeeds.
func testConcurrentUse(t *testing.T, s *resSuite) {
	type second struct {
		station string
		args    []string
		want    int
		stderr  string // a line of stderr it must print, if set
	}
	tests := []struct {
		name    string
		before  string // the step run before
		station string
		prompt  string
		args    func(r *resRig) []string
		answer  func(r *resRig) string
		seconds []second
		// waiter, if set, is an online command started with --wait before the answer: it
		// says it waits, and succeeds once the first process lets go of the medium.
		waiter []string
	}{
		{
			name: "offline init", before: "offline init", station: offlineStation,
			prompt: "Type the fingerprint the online operator reads aloud: ",
			args: func(r *resRig) []string {
				a := resCeremony[stepIndex("offline init")].args(r)
				return a[:len(a)-2] // without --online-fingerprint
			},
			answer: func(r *resRig) string { return r.onlineFP },
			seconds: []second{
				{offlineStation, []string{"status"}, exitcode.Locked, ""},                                      // the same ledger
				{offlineStation, []string{"keygen", "--type", "EC-P256", "--ident", "x"}, exitcode.Locked, ""}, // the same ledger
				{onlineStation, []string{"status"}, exitcode.Locked, ""},                                       // the medium, written by init
				{onlineStation, []string{"audit", "--media", "$MEDIUM"}, exitcode.Locked, ""},                  // the medium, written by init
				// --wait: it says whom it waits for, tries, then gives up naming both.
				{onlineStation, []string{"status", "--wait", "300ms"}, exitcode.Locked, "; still locked after waiting 300ms"},
				{onlineStation, []string{"status", "--wait", "300ms"}, exitcode.Locked, `level=WARN msg="the medium is locked; waiting for it"`},
			},
			waiter: []string{"status", "--wait", "10m"},
		},
		{
			name: "online trust", before: "trust", station: onlineStation,
			prompt: "Type the policy fingerprint that byok-offline shows: ",
			args:   func(*resRig) []string { return []string{"trust"} },
			answer: func(r *resRig) string { return r.policyFP },
			seconds: []second{
				{onlineStation, []string{"status"}, exitcode.Locked, ""},                                                                   // the same ledger
				{onlineStation, []string{"kek", "create", "--vault", s.vault.URL(), "--name", "x", "--size", "3072"}, exitcode.Locked, ""}, // the same ledger
				{offlineStation, []string{"kek", "accept"}, exitcode.Locked, ""},                                                           // writes where trust reads
				{offlineStation, []string{"audit", "--media", "$MEDIUM"}, 0, ""},                                                           // two readers
			},
		},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "-"), func(t *testing.T) {
			r := newResRig(t, s, "lock-"+strings.ReplaceAll(tt.name, " ", "-"))
			r.steps(0, stepIndex(tt.before))
			p := r.startPrompted(tt.station, tt.prompt, tt.args(r)...)
			held := filepath.Join(r.offState(), station.LedgerFile)
			if tt.station == onlineStation {
				held = filepath.Join(r.onState(), station.LedgerFile)
			}
			before := rigState(t, r.dir, held)
			for _, c := range tt.seconds {
				args := slices.Clone(c.args)
				if i := slices.Index(args, "$MEDIUM"); i >= 0 {
					args[i] = r.medium()
				}
				res := r.run(c.station, "", args...)
				if res.code != c.want || (c.want == exitcode.Locked && !strings.Contains(res.stderr, "another byok process") && !strings.Contains(res.stderr, "locked by byok-")) ||
					!strings.Contains(res.stderr, c.stderr) {
					t.Errorf("byok-%s %s while %s waits: exit %d, want %d\n%s", c.station, strings.Join(args, " "), tt.name, res.code, c.want, res.stderr)
				}
			}
			if diff := changed(before, rigState(t, r.dir, held)); len(diff) > 0 {
				t.Errorf("the second processes changed %v", diff)
			}
			var waiter *prompted
			if tt.waiter != nil {
				// (Its "prompt" is the line saying it waits: it reads no input.)
				waiter = r.startPrompted(onlineStation, "the medium is locked; waiting for it", tt.waiter...)
			}
			if res := p.answer(t, tt.answer(r)); res.code != 0 {
				t.Fatalf("%s, answered: exit %d\n%s", tt.name, res.code, res.stderr)
			}
			if waiter != nil {
				if res := waiter.answer(t, ""); res.code != 0 || !strings.Contains(res.stdout, "station:") {
					t.Errorf("byok-online %s, waiting while %s holds the medium: exit %d, want 0 once it lets go\n%s%s", strings.Join(tt.waiter, " "), tt.name, res.code, res.stdout, res.stderr)
				}
			}
			if st := resCeremony[stepIndex(tt.before)]; st.learn != nil {
				st.learn(r)
			}
			r.steps(stepIndex(tt.before)+1, len(resCeremony))
			r.converged()
		})
	}
}
