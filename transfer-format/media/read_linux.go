package media

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Reading a bundle is most of what a replay costs besides the cryptography, and through
// os.Root's OpenFile each 4 KiB read makes an os.File, with its poller registration (one
// more system call) and its cleanup. readFileAt opens, reads and closes with plain system
// calls on the descriptor of a folder opened through the root, after the same Lstat; and
// listDir lists a folder by descriptor, because os.File.ReadDir stats every entry of a
// folder opened through a root instead of taking the type the kernel returns.

// dirFD opens the folder of r for readFileAt. It returns the open folder and its
// descriptor, or nil and -1 if that fails (ReadFile then reads through r).
func dirFD(r *os.Root) (*os.File, int) {
	f, err := r.Open(".")
	if err != nil {
		return nil, -1
	}
	return f, int(f.Fd())
}

// readFileAt reads the regular file name (one path component, neither "." nor "..") of the
// folder r, whose descriptor is dirfd, of at most limit bytes, as ReadFile does: it refuses
// anything but a regular file before opening it (so a device is never opened), refuses a
// symbolic link, and checks the size before reading. p names the file in errors.
func readFileAt(r *os.Root, dirfd int, name, p string, limit int64) ([]byte, error) {
	fi, err := r.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	size := fi.Size()
	if size > limit {
		return nil, tooLarge(p, size, limit)
	}
	var fd int
	err = ignoringEINTR(func() error {
		var err error
		fd, err = syscall.Openat(dirfd, name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer syscall.Close(fd)
	return readFD(fd, size, p, limit)
}

// readOpenAt is readFileAt for a file a listing of the folder saw as a regular file: it
// opens the name without following a symbolic link and without waiting (a FIFO put there
// since opens at once), then checks that what it opened is a regular file of at most limit
// bytes before reading it.
func readOpenAt(dirfd int, name, p string, limit int64) ([]byte, error) {
	var fd int
	err := ignoringEINTR(func() error {
		var err error
		fd, err = syscall.Openat(dirfd, name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		return err
	})
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := ignoringEINTR(func() error { return syscall.Fstat(fd, &st) }); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: p, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	if st.Size > limit {
		return nil, tooLarge(p, st.Size, limit)
	}
	return readFD(fd, st.Size, p, limit)
}

// readFD reads the open regular file fd, which held size bytes at its stat, refusing more
// than limit bytes.
func readFD(fd int, size int64, p string, limit int64) ([]byte, error) {
	// Ask for what the file held at the stat and one byte more, to see whether it has grown.
	b := make([]byte, size+1)
	n := 0
	for n < len(b) {
		m, err := syscall.Read(fd, b[n:])
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return nil, fmt.Errorf("read %s: %w", p, &fs.PathError{Op: "read", Path: p, Err: err})
		case m == 0:
			return b[:n], nil
		}
		n += m
	}
	// It grew: read on up to the limit.
	for int64(len(b)) <= limit {
		buf := make([]byte, 32<<10)
		m, err := syscall.Read(fd, buf)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return nil, fmt.Errorf("read %s: %w", p, &fs.PathError{Op: "read", Path: p, Err: err})
		case m == 0:
			return b, nil
		}
		b = append(b, buf[:m]...)
	}
	return nil, grewTooLarge(p, limit)
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// listDir lists the open folder f through a duplicate of its descriptor, as an os.File not
// tied to a root, whose ReadDir takes each entry's type from the kernel.
func listDir(f *os.File) ([]fs.DirEntry, error) {
	fd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return f.ReadDir(-1)
	}
	d := os.NewFile(fd, f.Name())
	defer d.Close()
	return d.ReadDir(-1)
}
