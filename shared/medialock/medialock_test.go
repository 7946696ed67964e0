package medialock

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
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
	if _, err := Exclusive(dir); !errors.Is(err, ErrLocked) || exitcode.From(err) != exitcode.Locked {
		t.Fatalf("second Exclusive() = %v (exit %d), want ErrLocked (exit %d)", err, exitcode.From(err), exitcode.Locked)
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
	if _, err := Exclusive(dir); !errors.Is(err, ErrReadOnly) || exitcode.From(err) != exitcode.Media {
		t.Fatalf("Exclusive() on read-only = %v, want ErrReadOnly", err)
	}
	l, err := Shared(dir)
	if err != nil {
		t.Fatalf("Shared() on read-only = %v, want a no-op lock", err)
	}
	l.Release()
}
