//go:build linux

package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

// terminal is a pseudo-terminal: the command prompts on tty; the test reads the prompts and
// types at the other end.
type terminal struct {
	tty    *os.File
	master *os.File
	mu     sync.Mutex
	shown  bytes.Buffer
}

func newTerminal(t *testing.T) *terminal {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pseudo-terminal number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the terminal: %v", err)
	}
	term := &terminal{tty: tty, master: m}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 256)
		for {
			n, err := m.Read(buf)
			term.mu.Lock()
			term.shown.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		tty.Close()
		m.Close()
		<-done
	})
	return term
}

// answer waits until the terminal has shown want (a prompt), then types line.
func (term *terminal) answer(t *testing.T, want, line string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		term.mu.Lock()
		seen := strings.Contains(term.shown.String(), want)
		term.mu.Unlock()
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q; it shows %q", want, term.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := io.WriteString(term.master, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.shown.String()
}

// runOn runs byok-offline with its PIN prompts on tty.
func (f *fixture) runOn(tty *os.File, args ...string) (int, string) {
	var out, errb bytes.Buffer
	env := clirun.NewEnv(Name, strings.NewReader(""), &out, &errb)
	env.Terminal = tty
	code := clirun.Run(context.Background(), NewApp(env), env, append([]string{Name}, args...))
	for _, pin := range allPINs {
		if strings.Contains(out.String(), pin) || strings.Contains(errb.String(), pin) {
			f.t.Errorf("byok-offline %s: output holds a PIN", strings.Join(args, " "))
		}
	}
	return code, errb.String()
}

// start runs byok-offline in the background with its prompts on term; wait returns its exit
// code and stderr.
func (f *fixture) start(term *terminal, args ...string) (wait func() (int, string)) {
	done := make(chan struct{})
	var code int
	var errs string
	go func() {
		defer close(done)
		code, errs = f.runOn(term.tty, args...)
	}()
	return func() (int, string) {
		<-done
		return code, errs
	}
}

// A wrong PIN typed at the terminal is asked for again, up to three tries in all.
func TestWrongPINIsAskedAgain(t *testing.T) {
	f := newFixture(t)
	f.setup()
	pkg := f.packageWeb()
	t.Setenv(custodianPINEnv("alice"), "")

	term := newTerminal(t)
	wait := f.start(term, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "alice")
	term.answer(t, `Enter PIN of custodian alice (token "alice"): `, "wrong-pin-0000")
	term.answer(t, "the last one was not correct: try 2 of 3", testTokens[1].PIN)
	if code, errs := wait(); code != exitcode.OK {
		t.Fatalf("approve: exit %d, want 0: %s", code, errs)
	}

	// Three wrong ones end the command (exit 5); bob is asked three times.
	t.Setenv(custodianPINEnv("bob"), "")
	term = newTerminal(t)
	wait = f.start(term, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "bob")
	term.answer(t, `Enter PIN of custodian bob (token "bob"): `, "wrong-pin-0000")
	term.answer(t, "try 2 of 3", "wrong-pin-0000")
	term.answer(t, "try 3 of 3", "wrong-pin-0000")
	if code, errs := wait(); code != exitcode.HSM || !strings.Contains(errs, "pin incorrect") {
		t.Fatalf("approve after three wrong PINs: exit %d, want %d: %s", code, exitcode.HSM, errs)
	}
	if strings.Count(term.output(), "Enter PIN of custodian bob") != 3 {
		t.Errorf("bob was asked %d times, want 3: %q", strings.Count(term.output(), "Enter PIN of custodian bob"), term.output())
	}
}

// A wrong PIN from the environment (or a file) is not asked for again: it fails at once.
func TestWrongPINFromEnvironmentFailsAtOnce(t *testing.T) {
	f := newFixture(t)
	f.setup()
	pkg := f.packageWeb()
	t.Setenv(custodianPINEnv("alice"), "wrong-pin-0000")
	term := newTerminal(t)
	code, errs := f.runOn(term.tty, "approve", "--package", pkg.Package.Fingerprint, "--custodian", "alice")
	if code != exitcode.HSM || strings.Contains(term.output(), "Enter PIN") {
		t.Fatalf("approve with a wrong PIN in the environment: exit %d, prompts %q: %s", code, term.output(), errs)
	}
}
