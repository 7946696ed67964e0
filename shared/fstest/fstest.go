// Package fstest gives tests folders that fail the way removable media fail: read-only, and
// full.
//
// As root (CI runs as root), it uses real mounts: a read-only bind mount and a small tmpfs, so
// the kernel returns EROFS and ENOSPC exactly as it would for a write-protected or full USB
// stick. Without root it falls back to permission bits for read-only, and skips the full-disk
// case (it needs a mount); under CI, where root is available, nothing is skipped.
package fstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ReadOnly makes dir read-only until the end of the test.
func ReadOnly(t testing.TB, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return
	}
	mount(t, "--bind", dir, dir)
	t.Cleanup(func() { umount(dir) })
	mount(t, "-o", "remount,bind,ro", dir, dir)
}

// Full returns a new empty folder on a file system of the given size in bytes (at least 16
// KiB), removed at the end of the test.
func Full(t testing.TB, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("a full-disk test needs root to mount a tmpfs")
		}
		t.Skip("a full-disk test needs root to mount a tmpfs")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mount(t, "-t", "tmpfs", "-o", "size="+itoa(size), "tmpfs", dir)
	t.Cleanup(func() { umount(dir) })
	return dir
}

func mount(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Fatalf("mount %v: %v: %s", args, err, out)
	}
}

func umount(dir string) { _ = exec.Command("umount", "-l", dir).Run() }

func itoa(n int) string {
	if n < 16<<10 {
		n = 16 << 10
	}
	b := []byte{}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
