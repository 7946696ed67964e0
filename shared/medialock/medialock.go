// Package medialock keeps two processes from writing to the same transfer medium at once.
//
// The lock is an advisory flock(2) on the file .lock in the medium's folder. It is released
// when the process exits, however it exits, so a crash never leaves a stale lock behind. A
// second process gets ErrLocked at once unless it asked to wait, which callers turn into exit
// code 8.
//
// # The medium is hostile
//
// The medium, .lock included, is in an attacker's hands (SPEC.md §8.1): .lock may be a
// symbolic link to anywhere, a FIFO or a device node. So the lock file is opened relative to
// the folder's descriptor, never through a symbolic link (O_NOFOLLOW), never waiting
// (O_NONBLOCK), and checked to be a regular file before it is used; anything else is refused
// with ErrUnsafe, and nothing outside the medium is ever created or opened.
//
// # Readers create nothing
//
// Exclusive (a writer) creates .lock as a regular file in the medium if it is missing, and
// records its holder in it (process, host, command, since), so that a second process can say
// who has the medium. Shared (a reader) creates, changes and writes nothing: it takes a shared
// lock on .lock if that exists, and reads without a lock otherwise (SPEC.md §8.3).
package medialock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// FileName is the name of the lock file.
const FileName = media.LockName

// ErrLocked means another process holds the lock.
var ErrLocked = errors.New("locked: another byok process is using it")

// ErrReadOnly means the folder cannot be written.
var ErrReadOnly = errors.New("media: read-only")

// ErrUnsafe means the medium's lock file is not a regular file (a symbolic link, a FIFO, a
// device node, a folder): it is neither followed nor opened.
var ErrUnsafe = errors.New("the lock file is not a regular file")

// maxRecord bounds what is read of a holder record: the lock file is on the medium.
const maxRecord = 1024

// Holder is who holds (or last held) the write lock, as recorded in the lock file.
type Holder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

// String reads "byok-offline package (pid 1234 on host, since 10:02:11)".
func (h Holder) String() string {
	since := h.Since.Local()
	when := since.Format(time.TimeOnly)
	if y, m, d := since.Date(); time.Now().Local().Format(time.DateOnly) != fmt.Sprintf("%04d-%02d-%02d", y, m, d) {
		when = since.Format(time.DateTime)
	}
	return fmt.Sprintf("%s (pid %d on %s, since %s)", printable(h.Command), h.PID, printable(h.Host), when)
}

// LockedError is ErrLocked with the holder the lock file names, if it names a live one.
type LockedError struct {
	Dir    string
	Holder *Holder
	Waited time.Duration // how long it waited for the holder (Options.Wait)
}

func (e *LockedError) Error() string {
	msg := e.Dir + ": " + ErrLocked.Error()
	if e.Holder != nil {
		msg = fmt.Sprintf("%s: locked by %s", e.Dir, e.Holder)
	}
	if e.Waited > 0 {
		msg += fmt.Sprintf("; still locked after waiting %s", e.Waited)
	}
	return msg
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Options say how to take a lock.
type Options struct {
	// Wait is how long to wait for a lock another process holds; 0 does not wait. The wait
	// polls, with a backoff from 10 ms to 500 ms, and ends early when the context given to
	// ExclusiveWith or SharedWith is done (an interrupted command).
	Wait time.Duration
	// Waiting, if set, is called once when the lock is held by another process and Wait is
	// not 0, before the wait begins: the caller tells the operator who it waits for.
	Waiting func(*LockedError)
	// Command names the holder in the lock file's record (Exclusive only), e.g.
	// "byok-offline package"; "" takes it from the process's arguments.
	Command string
}

// Lock is a held lock.
type Lock struct {
	f         *os.File
	exclusive bool
}

// Exclusive takes the write lock on the medium folder dir, creating .lock there if it is
// missing, and records the holder in it. It fails with ErrLocked (a *LockedError naming the
// holder) if another process holds any lock on it, with ErrReadOnly if the folder is
// read-only, and with ErrUnsafe if .lock is not a regular file.
func Exclusive(dir string) (*Lock, error) {
	return ExclusiveWith(context.Background(), dir, Options{})
}

// ExclusiveWith is Exclusive with options; ctx ends a wait (Options.Wait) early, with an error
// wrapping ctx.Err().
func ExclusiveWith(ctx context.Context, dir string, o Options) (*Lock, error) {
	d, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	defer unix.Close(d)
	fd, err := openLock(d, dir, true)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, FileName))
	if err := flock(ctx, f, dir, unix.LOCK_EX, o); err != nil {
		f.Close()
		return nil, err
	}
	l := &Lock{f: f, exclusive: true}
	// The record only helps a second process name this one: on a full stick it cannot be
	// written, and the command goes on to fail (or not) at its own writes.
	l.record(o.Command)
	return l, nil
}

// Shared takes a read lock on the medium folder dir: several readers may hold it, no writer.
// It creates and writes nothing: without a lock file (a medium no writer has used, or a
// read-only one) there is nothing to lock, and it returns a no-op lock. It fails with
// ErrLocked if a writer holds the lock, and with ErrUnsafe if .lock is not a regular file.
func Shared(dir string) (*Lock, error) { return SharedWith(context.Background(), dir, Options{}) }

// SharedWith is Shared with options; ctx ends a wait (Options.Wait) early, with an error
// wrapping ctx.Err().
func SharedWith(ctx context.Context, dir string, o Options) (*Lock, error) {
	d, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	defer unix.Close(d)
	fd, err := openLock(d, dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return &Lock{}, nil
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, FileName))
	if err := flock(ctx, f, dir, unix.LOCK_SH, o); err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{f: f}, nil
}

// openDir opens the medium folder without waiting: a FIFO or a device in its place fails
// at once instead of blocking the process in open(2).
func openDir(dir string) (int, error) {
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	switch {
	case errors.Is(err, unix.ENOENT):
		return -1, media.NotMedia(dir, "the folder does not exist")
	case errors.Is(err, unix.ENOTDIR):
		return -1, media.NotMedia(dir, "it is not a folder")
	case err != nil:
		return -1, fmt.Errorf("lock %s: %w", dir, &fs.PathError{Op: "open", Path: dir, Err: err})
	}
	return fd, nil
}

// openLock opens .lock in the folder d: a writer creates it if missing, as a regular file in
// the folder (O_CREAT|O_EXCL never follows a link); an existing one is first opened as a
// path only (O_PATH: no device is opened, no FIFO waited on) and checked to be a regular
// file, then opened for real, again without following a link or waiting, and checked again.
// A reader opens it read-only; it returns an error wrapping fs.ErrNotExist if it is missing.
func openLock(d int, dir string, write bool) (int, error) {
	const base = unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	mode := unix.O_RDONLY
	if write {
		mode = unix.O_RDWR
		var fd int
		err := retry(func() (err error) {
			fd, err = unix.Openat(d, FileName, mode|base|unix.O_CREAT|unix.O_EXCL, 0o644)
			return err
		})
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
			// Nobody can write here; an existing lock file would tell the same below.
			if _, serr := statPath(d, dir); serr != nil && errors.Is(serr, fs.ErrNotExist) {
				return -1, fmt.Errorf("%s: %w", dir, ErrReadOnly)
			}
		case !errors.Is(err, unix.EEXIST):
			return -1, fmt.Errorf("lock %s: %w", dir, &fs.PathError{Op: "create", Path: FileName, Err: err})
		}
	}
	st, err := statPath(d, dir)
	if err != nil {
		return -1, err
	}
	var fd int
	err = retry(func() (err error) {
		fd, err = unix.Openat(d, FileName, mode|base, 0)
		return err
	})
	switch {
	case errors.Is(err, unix.ENOENT):
		return -1, fmt.Errorf("lock %s: %w", dir, fs.ErrNotExist)
	case errors.Is(err, unix.ELOOP):
		return -1, unsafe(dir, "a symbolic link")
	case errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return -1, fmt.Errorf("%s: %w", dir, ErrReadOnly)
	case err != nil:
		return -1, fmt.Errorf("lock %s: %w", dir, &fs.PathError{Op: "open", Path: FileName, Err: err})
	}
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("lock %s: %w", dir, err)
	}
	if now.Mode&unix.S_IFMT != unix.S_IFREG || now.Dev != st.Dev || now.Ino != st.Ino {
		unix.Close(fd)
		return -1, unsafe(dir, "replaced while it was opened")
	}
	return fd, nil
}

// statPath stats .lock in d through an O_PATH descriptor, which opens neither a device nor a
// FIFO and does not follow a link, and requires a regular file.
func statPath(d int, dir string) (unix.Stat_t, error) {
	var st unix.Stat_t
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.Openat(d, FileName, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if errors.Is(err, unix.ENOENT) {
		return st, fmt.Errorf("lock %s: %w", dir, fs.ErrNotExist)
	}
	if err != nil {
		return st, fmt.Errorf("lock %s: %w", dir, &fs.PathError{Op: "open", Path: FileName, Err: err})
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return st, fmt.Errorf("lock %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return st, unsafe(dir, media.KindOf(st.Mode))
	}
	return st, nil
}

func unsafe(dir, what string) error {
	return fmt.Errorf("%s: %w (%s); refusing to use it", filepath.Join(dir, FileName), ErrUnsafe, what)
}

// flock takes the lock how on f, waiting up to o.Wait for another holder to let go, or until
// ctx is done.
func flock(ctx context.Context, f *os.File, dir string, how int, o Options) error {
	start := time.Now()
	deadline := start.Add(o.Wait)
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		err := retry(func() error { return unix.Flock(int(f.Fd()), how|unix.LOCK_NB) })
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("lock %s: %w", dir, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			le := &LockedError{Dir: dir, Holder: readHolder(f)}
			if o.Wait > 0 {
				le.Waited = o.Wait
			}
			return le
		}
		if delay == 10*time.Millisecond && o.Waiting != nil {
			o.Waiting(&LockedError{Dir: dir, Holder: readHolder(f)})
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for the lock on %s: %w", dir, ctx.Err())
		case <-t.C:
		}
	}
}

// record writes the holder into the lock file (which this process holds exclusively). A
// record that cannot be written whole is cleared.
func (l *Lock) record(command string) {
	if command == "" {
		command = commandName(os.Args)
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(Holder{PID: os.Getpid(), Host: host, Command: command, Since: time.Now().UTC().Truncate(time.Second)})
	if l.f.Truncate(0) != nil {
		return
	}
	if _, err := l.f.WriteAt(append(b, '\n'), 0); err != nil {
		_ = l.f.Truncate(0)
	}
}

// readHolder reads the holder record of f, or nil if it names none, or one that has ended
// (a process of this host that no longer runs: a killed writer's record).
func readHolder(f *os.File) *Holder {
	b := make([]byte, maxRecord+1)
	n, _ := f.ReadAt(b, 0)
	if n == 0 || n > maxRecord {
		return nil
	}
	var h Holder
	if json.Unmarshal(b[:n], &h) != nil || h.PID <= 0 {
		return nil
	}
	if host, _ := os.Hostname(); h.Host == host && unix.Kill(h.PID, 0) == unix.ESRCH {
		return nil
	}
	return &h
}

// commandName is the program and its command words ("byok-offline kek accept"), never a
// flag or a value, which might be secret.
func commandName(args []string) string {
	if len(args) == 0 {
		return "a byok process"
	}
	words := []string{filepath.Base(args[0])}
	for _, a := range args[1:] {
		if len(words) == 3 || a == "" || strings.Trim(a, "abcdefghijklmnopqrstuvwxyz-") != "" || strings.HasPrefix(a, "-") {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// printable keeps a record's text, which comes from the medium, short and free of control
// characters.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 64 {
		s = string(r[:64]) + "…"
	}
	return s
}

func retry(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// Release drops the lock, first clearing a writer's record. It is safe to call more than
// once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	if l.exclusive {
		_ = l.f.Truncate(0)
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}
