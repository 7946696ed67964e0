// Package medialock keeps two processes from writing to the same transfer medium or state
// folder at once.
//
// The lock is an advisory flock(2) on a file named .lock in the folder. It is released when
// the process exits, however it exits, so a crash never leaves a stale lock behind. A second
// process gets ErrLocked at once (it does not wait), which callers turn into exit code 8.
package medialock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// FileName is the name of the lock file.
const FileName = media.LockName

// ErrLocked means another process holds the lock. It wraps exitcode.ErrLocked.
var ErrLocked = fmt.Errorf("%w: another byok process is using it", exitcode.ErrLocked)

// ErrReadOnly means the folder cannot be written. It wraps exitcode.ErrMedia.
var ErrReadOnly = fmt.Errorf("%w: read-only", exitcode.ErrMedia)

// Lock is a held lock.
type Lock struct {
	f *os.File
}

// Exclusive takes the write lock on dir. It fails with ErrLocked if another process holds any
// lock on it, and with ErrReadOnly if the folder is read-only.
func Exclusive(dir string) (*Lock, error) {
	return take(dir, syscall.LOCK_EX)
}

// Shared takes a read lock on dir: several readers may hold it, no writer. On a read-only
// folder nobody can write, so it returns a no-op lock.
func Shared(dir string) (*Lock, error) {
	l, err := take(dir, syscall.LOCK_SH)
	if errors.Is(err, ErrReadOnly) {
		return &Lock{}, nil
	}
	return l, err
}

func take(dir string, how int) (*Lock, error) {
	p := filepath.Join(dir, FileName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		if errors.Is(err, syscall.EROFS) || errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%s: %w", dir, ErrReadOnly)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock. It is safe to call more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}
