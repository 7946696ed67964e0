package medialock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/fstest"
)

func TestExclusiveRefusesSecondHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := Exclusive(dir)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open file descriptions, so a second open in this process
	// conflicts just as another process would.
	if _, err := Exclusive(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Exclusive() = %v, want ErrLocked", err)
	}
	if _, err := Shared(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("Shared() under Exclusive = %v, want ErrLocked", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release() = %v", err)
	}
	l2, err := Exclusive(dir)
	if err != nil {
		t.Fatalf("Exclusive() after Release = %v", err)
	}
	l2.Release()
}

func TestSharedReaders(t *testing.T) {
	dir := t.TempDir()
	// A writer has used the medium: the lock file is there.
	w, err := Exclusive(dir)
	if err != nil {
		t.Fatal(err)
	}
	w.Release()
	a, err := Shared(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	b, err := Shared(dir)
	if err != nil {
		t.Fatalf("second Shared() = %v", err)
	}
	defer b.Release()
	if _, err := Exclusive(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("Exclusive() under readers = %v, want ErrLocked", err)
	}
}

func TestLockHeldByAnotherProcess(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/"+FileName, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("flock", "-x", dir+"/"+FileName, "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// Wait until the child holds the lock.
	for i := 0; ; i++ {
		l, err := Exclusive(dir)
		if errors.Is(err, ErrLocked) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
		if i > 1000 {
			t.Fatal("child never took the lock")
		}
		exec.Command("sleep", "0.01").Run()
	}
}

func TestReadOnlyFolder(t *testing.T) {
	dir := t.TempDir()
	fstest.ReadOnly(t, dir)
	if _, err := Exclusive(dir); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Exclusive() on read-only = %v, want ErrReadOnly", err)
	}
	l, err := Shared(dir)
	if err != nil {
		t.Fatalf("Shared() on read-only = %v, want a no-op lock", err)
	}
	l.Release()
}

// A reader creates nothing: without a lock file it reads without a lock.
func TestSharedCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	l, err := Shared(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Shared() left %v in the folder, want nothing", ents)
	}
}

// The lock file is on the medium, in an attacker's hands: a link (to a file, to a missing
// path, to a device), a FIFO or a device node in its place is refused by readers and
// writers, and nothing outside the medium is created or opened.
func TestUnsafeLockFileRefused(t *testing.T) {
	outside := t.TempDir()
	for _, tt := range []struct {
		name   string
		make   func(p string) error
		target string // a path outside the medium that must stay as it was
	}{
		{"link to a file", func(p string) error {
			if err := os.WriteFile(filepath.Join(outside, "file"), []byte("keep"), 0o600); err != nil {
				return err
			}
			return os.Symlink(filepath.Join(outside, "file"), p)
		}, filepath.Join(outside, "file")},
		{"link to a missing path", func(p string) error { return os.Symlink(filepath.Join(outside, "pwned"), p) }, filepath.Join(outside, "pwned")},
		{"link to a device", func(p string) error { return os.Symlink("/dev/null", p) }, ""},
		{"link to a folder", func(p string) error { return os.Symlink(outside, p) }, ""},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o644) }, ""},
		{"device node", func(p string) error { return syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|3) }, ""},
		{"folder", func(p string) error { return os.Mkdir(p, 0o755) }, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tt.make(filepath.Join(dir, FileName)); err != nil {
				t.Skipf("cannot make it here: %v", err)
			}
			var before []byte
			if tt.target != "" {
				before, _ = os.ReadFile(tt.target)
			}
			for name, take := range map[string]func(string) (*Lock, error){"Exclusive": Exclusive, "Shared": Shared} {
				l, err := take(dir)
				if !errors.Is(err, ErrUnsafe) {
					l.Release()
					t.Errorf("%s() with .lock a %s = %v, want ErrUnsafe", name, tt.name, err)
				}
			}
			if tt.target != "" {
				after, err := os.ReadFile(tt.target)
				if string(after) != string(before) || (before == nil) != errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the link's target %s changed: %q (%v), was %q", tt.target, after, err, before)
				}
			}
		})
	}
}

// The writer names itself in the lock file; a second process is told who holds the medium,
// and the record goes when the lock does.
func TestHolderNamed(t *testing.T) {
	dir := t.TempDir()
	l, err := ExclusiveWith(context.Background(), dir, Options{Command: "byok-offline package"})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	_, err = Shared(dir)
	var le *LockedError
	if !errors.As(err, &le) || le.Holder == nil || le.Holder.PID != os.Getpid() || le.Holder.Command != "byok-offline package" || le.Holder.Host != host {
		t.Fatalf("Shared() under a writer = %#v, want a *LockedError naming this process", err)
	}
	if want := fmt.Sprintf("locked by byok-offline package (pid %d on %s, since ", os.Getpid(), host); !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("errors.Is(%v, ErrLocked) = false", err)
	}
	l.Release()
	if b, err := os.ReadFile(filepath.Join(dir, FileName)); err != nil || len(b) != 0 {
		t.Errorf("lock file after Release = %q, %v; want empty", b, err)
	}
}

// A record left by a writer that was killed (a process of this host that no longer runs)
// names nobody.
func TestStaleHolderNotNamed(t *testing.T) {
	dir := t.TempDir()
	host, _ := os.Hostname()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	rec := fmt.Sprintf(`{"pid":%d,"host":%q,"command":"byok-online upload","since":"2026-01-02T10:02:11Z"}`, cmd.Process.Pid, host)
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Shared(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	_, err = Exclusive(dir)
	var le *LockedError
	if !errors.As(err, &le) || le.Holder != nil {
		t.Fatalf("Exclusive() under a reader, with a dead writer's record = %v, want ErrLocked naming nobody", err)
	}
}

// With Wait, a second process is told who holds the lock, waits, and takes it once the holder
// lets go; a wait that ends first fails naming the holder and the time waited; a cancelled
// context (Ctrl-C) ends the wait at once.
func TestWait(t *testing.T) {
	dir := t.TempDir()
	l, err := ExclusiveWith(context.Background(), dir, Options{Command: "byok-offline package"})
	if err != nil {
		t.Fatal(err)
	}
	holds := func(le *LockedError) bool { return le.Holder != nil && le.Holder.Command == "byok-offline package" }

	t.Run("outlasts the holder", func(t *testing.T) {
		waiting := make(chan *LockedError, 1)
		done := make(chan error)
		go func() {
			l2, err := SharedWith(context.Background(), dir, Options{Wait: time.Hour, Waiting: func(le *LockedError) { waiting <- le }})
			if err == nil {
				l2.Release()
			}
			done <- err
		}()
		if le := <-waiting; !holds(le) {
			t.Errorf("Waiting got %v, want the holder named", le)
		}
		l.Release()
		if err := <-done; err != nil {
			t.Fatalf("SharedWith(Wait) = %v, want the lock once released", err)
		}
	})

	l, err = ExclusiveWith(context.Background(), dir, Options{Command: "byok-offline package"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	t.Run("short wait", func(t *testing.T) {
		tried := false
		_, err := ExclusiveWith(context.Background(), dir, Options{Wait: 30 * time.Millisecond, Waiting: func(*LockedError) { tried = true }})
		var le *LockedError
		if !errors.As(err, &le) || !holds(le) || le.Waited != 30*time.Millisecond || !errors.Is(err, ErrLocked) {
			t.Fatalf("ExclusiveWith(short Wait) = %v, want a *LockedError (ErrLocked) naming the holder after waiting 30ms", err)
		}
		if !tried || !strings.Contains(err.Error(), "locked by byok-offline package (pid ") || !strings.HasSuffix(err.Error(), "; still locked after waiting 30ms") {
			t.Errorf("error %q (waited: %v), want the holder and the wait named, after waiting", err, tried)
		}
	})
	t.Run("no wait", func(t *testing.T) {
		_, err := ExclusiveWith(context.Background(), dir, Options{Waiting: func(*LockedError) { t.Error("Waiting called without Wait") }})
		var le *LockedError
		if !errors.As(err, &le) || le.Waited != 0 || strings.Contains(err.Error(), "waiting") {
			t.Fatalf("ExclusiveWith() = %v, want a *LockedError at once", err)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, err := SharedWith(ctx, dir, Options{Wait: time.Hour, Waiting: func(*LockedError) { cancel() }})
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrLocked) {
			t.Fatalf("SharedWith(Wait) cancelled = %v, want context.Canceled", err)
		}
	})
}
