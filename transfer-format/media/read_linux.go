package media

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// Every open of a path of the medium for reading goes through openIn: relative to the
// medium folder's descriptor, one path component at a time, never following a symbolic
// link (O_NOFOLLOW), never waiting (O_NONBLOCK: a FIFO opens at once instead of blocking the
// process in open(2), where no signal can end it), and checked after the open with fstat:
// a folder where a folder belongs, a regular file where a file does. Every read is bounded
// (readFD). Reading a bundle through os.Root's OpenFile would also make an os.File with its
// poller registration for each 4 KiB read; these are plain system calls.

// openTop opens the medium folder dir itself, without waiting: a FIFO or a device in its
// place fails at once (O_DIRECTORY).
func openTop(dir string) (*os.File, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		return err
	})
	switch {
	case errors.Is(err, syscall.ENOENT):
		return nil, NotMedia(dir, "the folder does not exist")
	case errors.Is(err, syscall.ENOTDIR):
		return nil, NotMedia(dir, "it is not a folder")
	case err != nil:
		return nil, fmt.Errorf("open medium: %w", &fs.PathError{Op: "open", Path: dir, Err: err})
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// openIn opens p (slash-separated, relative to the folder whose descriptor is dirfd) for
// reading as described above, and returns its descriptor. It returns an error wrapping
// fs.ErrNotExist if a component is missing, and a *TypeError if one is not a folder, or the
// last not a folder (dir) or a regular file (!dir).
func openIn(dirfd int, p string, dir bool) (int, error) {
	if p == "." || p == "" {
		p = "."
	}
	parts := strings.Split(p, "/")
	fd := dirfd
	closeFD := func() {
		if fd != dirfd {
			syscall.Close(fd)
		}
	}
	for i, name := range parts {
		if name == "" || name == ".." {
			closeFD()
			return -1, &fs.PathError{Op: "open", Path: p, Err: fs.ErrInvalid}
		}
		last := i == len(parts)-1
		wantDir := !last || dir
		flags := syscall.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
		if wantDir {
			flags |= syscall.O_DIRECTORY
		}
		var next int
		err := ignoringEINTR(func() (err error) {
			next, err = syscall.Openat(fd, name, flags, 0)
			return err
		})
		at := strings.Join(parts[:i+1], "/")
		if err != nil {
			closeFD()
			if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
				return -1, &TypeError{Path: at, Dir: wantDir, Got: kindAt(fd, name)}
			}
			return -1, &fs.PathError{Op: "open", Path: at, Err: err}
		}
		closeFD()
		fd = next
		var st syscall.Stat_t
		if err := ignoringEINTR(func() error { return syscall.Fstat(fd, &st) }); err != nil {
			closeFD()
			return -1, &fs.PathError{Op: "fstat", Path: at, Err: err}
		}
		if got := st.Mode & syscall.S_IFMT; (wantDir && got != syscall.S_IFDIR) || (!wantDir && got != syscall.S_IFREG) {
			closeFD()
			return -1, &TypeError{Path: at, Dir: wantDir, Got: KindOf(got)}
		}
	}
	if fd == dirfd {
		// "." : a descriptor of its own, which the caller closes.
		fd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(dirfd), syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			return -1, &fs.PathError{Op: "dup", Path: p, Err: errno}
		}
		return int(fd), nil
	}
	return fd, nil
}

// kindAt says what name in the folder fd is, for a refusal's message, without following or
// opening it (through /proc, which names the open folder; without /proc it says less).
func kindAt(fd int, name string) string {
	fi, err := os.Lstat(fmt.Sprintf("/proc/self/fd/%d/%s", fd, name))
	if err != nil {
		return "not what the layout puts there"
	}
	return KindOf(uint32(fi.Sys().(*syscall.Stat_t).Mode))
}

// KindOf names the file type in a stat mode for a refusal's message: "a FIFO", "a
// symbolic link", ...
func KindOf(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return "a regular file"
	case syscall.S_IFDIR:
		return "a folder"
	case syscall.S_IFLNK:
		return "a symbolic link"
	case syscall.S_IFIFO:
		return "a FIFO"
	case syscall.S_IFCHR, syscall.S_IFBLK:
		return "a device node"
	case syscall.S_IFSOCK:
		return "a socket"
	}
	return "of an unknown type"
}

// readIn reads the regular file p of the folder dirfd, of at most limit bytes, opened by
// openIn; pathName names the file in errors.
func readIn(dirfd int, p, pathName string, limit int64) ([]byte, error) {
	fd, err := openIn(dirfd, p, false)
	if err != nil {
		var te *TypeError
		if errors.As(err, &te) {
			te.Path = pathName
		}
		return nil, err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := ignoringEINTR(func() error { return syscall.Fstat(fd, &st) }); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: pathName, Err: err}
	}
	if st.Size > limit {
		return nil, tooLarge(pathName, st.Size, limit)
	}
	return readFD(fd, st.Size, pathName, limit)
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
		buf := make([]byte, min(32<<10, limit+1-int64(len(b))))
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

// listIn lists folder p of the folder dirfd, opened by openIn. The entries' types are the
// kernel's (os.File.ReadDir of a folder opened through a root would stat every entry).
func listIn(dirfd int, p string) ([]fs.DirEntry, error) {
	fd, err := openIn(dirfd, p, true)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(fd), p)
	defer d.Close()
	return d.ReadDir(-1)
}

// openFolder opens folder p of the medium whose folder is top.
func openFolder(top *os.File, p string) (*os.File, error) {
	fd, err := openIn(int(top.Fd()), p, true)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

// listFolder lists folder p of the medium whose folder is top.
func listFolder(top *os.File, p string) ([]fs.DirEntry, error) {
	return listIn(int(top.Fd()), p)
}

// readFile reads the regular file name of the open folder dir, of at most limit bytes; p
// names it in errors.
func readFile(dir *os.File, name, p string, limit int64) ([]byte, error) {
	return readIn(int(dir.Fd()), name, p, limit)
}

// checkFile opens the file name of the open folder dir as readFile does, and closes it.
func checkFile(dir *os.File, name, p string) error {
	fd, err := openIn(int(dir.Fd()), name, false)
	if err != nil {
		var te *TypeError
		if errors.As(err, &te) {
			te.Path = p
		}
		return err
	}
	return syscall.Close(fd)
}
