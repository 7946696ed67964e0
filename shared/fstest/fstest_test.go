package fstest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	ReadOnly(t, dir)
	err := os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o644)
	if err == nil {
		t.Fatal("write to a read-only folder succeeded")
	}
	if os.Geteuid() == 0 && !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write = %v, want EROFS", err)
	}
}

func TestFull(t *testing.T) {
	dir := Full(t, 64<<10)
	err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 1<<20), 0o644)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write of 1 MiB to a 64 KiB file system = %v, want ENOSPC", err)
	}
}
