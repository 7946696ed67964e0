package station

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/medialock"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// LedgerFile is the name of the ledger in a state folder.
const LedgerFile = "ledger.db"

// OpenOptions say what to open.
type OpenOptions struct {
	Chain    bundle.Chain
	StateDir string
	MediaDir string // "" opens no medium
	Schema   ledger.Schema
	// Write takes the medium's write lock; otherwise a read lock is taken if the medium has
	// a lock file, and nothing on the medium is created or changed (SPEC.md §8.3).
	Write bool
	// InitMedium, with Write, is for the commands that start a ceremony: an existing, empty
	// folder becomes a medium. Every other open needs a medium there already and fails with
	// media.ErrNotMedia (a missing folder is an unmounted stick), creating nothing.
	InitMedium bool
	// LedgerOnly, with Write, is for a command that writes only its ledger: it takes the
	// write lock to finish an interrupted write, but on a read-only medium with nothing
	// pending it opens the medium for reading instead of refusing.
	LedgerOnly bool
	// Create allows creating a new ledger; otherwise the state folder must hold one.
	Create bool
	Log    *slog.Logger
	// Wait is how long to wait for another process that holds the medium's lock or the state
	// folder's ledger (the --wait flag), telling the operator on Log whom it waits for; 0
	// fails at once with medialock.ErrLocked or ledger.ErrLocked. Context, if set, ends the
	// wait early (an interrupted command).
	Wait    time.Duration
	Context context.Context
}

// LockOptions are the lock options of a command that waits up to wait for another process
// holding the medium, and says on log whom it waits for.
func LockOptions(log *slog.Logger, wait time.Duration) medialock.Options {
	return medialock.Options{Wait: wait, Waiting: func(e *medialock.LockedError) {
		if log == nil {
			return
		}
		holder := "another byok process"
		if e.Holder != nil {
			holder = e.Holder.String()
		}
		log.Warn("the medium is locked; waiting for it", "dir", e.Dir, "holder", holder, "up_to", wait.String())
	}}
}

// Open opens the ledger and the medium, takes the locks, and finishes any interrupted write
// with recover (which may be nil). The returned function releases everything.
func Open(o OpenOptions, recoverApply Apply) (*Station, func() error, error) {
	if o.StateDir == "" {
		return nil, nil, fmt.Errorf("%w: --state-dir is required", ErrOptions)
	}
	lp := filepath.Join(o.StateDir, LedgerFile)
	if !o.Create {
		if _, err := os.Stat(lp); errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w in %s", ErrNoLedger, o.StateDir)
		}
	}
	// A stick that is not there, or not a medium, is told before anything is created, in the
	// state folder either.
	var m *media.Media
	if o.MediaDir != "" {
		var err error
		if o.Write && o.InitMedium {
			err = media.CheckFolder(o.MediaDir)
		} else {
			m, err = media.Open(o.MediaDir)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	closeMedium := func() {
		if m != nil {
			m.Close()
		}
	}
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	db, err := ledger.OpenWait(ctx, lp, o.Schema, ledger.WaitOptions{Wait: o.Wait, Waiting: func() {
		if o.Log != nil {
			o.Log.Warn("the state folder's ledger is in use by another byok command; waiting for it", "dir", o.StateDir, "up_to", o.Wait.String())
		}
	}})
	if err != nil {
		closeMedium()
		return nil, nil, err
	}
	closers := []func() error{db.Close}
	release := func() error {
		var first error
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	s := &Station{Chain: o.Chain, DB: db, Log: o.Log, LockWait: o.Wait}
	pending := false
	_ = db.View(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketStation)
		pending = sb != nil && sb.Get(keyPending) != nil
		return nil
	})
	write := o.Write
	if o.Write {
		// A writer takes the write lock, which records its holder in the lock file: an older
		// copy, another ceremony's stick or a forked one is refused before that, so that a
		// refused stick is not touched at all. (Checked again under the lock below.) init
		// opens the medium under the lock; a folder that is a medium already is checked here.
		pre := m
		if pre == nil {
			if pm, err := media.Open(o.MediaDir); err == nil {
				defer pm.Close()
				pre = pm
			}
		}
		if pre != nil {
			s.Media = pre
			err := s.Identity()
			s.Media = nil
			if err != nil {
				closeMedium()
				release()
				return nil, nil, err
			}
		}
	}
	if o.MediaDir != "" {
		m, lock, w, err := openMedium(o, m, pending)
		if err != nil {
			release()
			return nil, nil, err
		}
		write = w
		closers = append(closers, lock.Release, m.Close)
		s.Media = m
	}
	if s.Media != nil {
		// Before anything is written: an older copy, another ceremony's stick or a forked
		// one is refused here, and an interrupted write is never finished onto it.
		if err := s.Identity(); err != nil {
			release()
			return nil, nil, err
		}
	}
	if s.Media != nil && write {
		if err := s.Recover(recoverApply); err != nil {
			release()
			return nil, nil, err
		}
	} else {
		if pending {
			s.Log.Warn("an interrupted write is pending; it completes at the next command that writes to the medium")
		}
	}
	return s, release, nil
}

// openMedium takes the lock of the medium of o, which Open opened as m (nil for
// o.InitMedium: it opens it here, under the write lock). A writer's open (o.Write) takes the
// write lock, unless the medium is read-only and o.LedgerOnly has nothing pending on it:
// then it opens for reading and returns write false. Nothing is created or written on the
// medium before the write lock is held, and nothing at all unless o.Write: a reader creates
// no lock file, and only o.InitMedium writes a marker.
func openMedium(o OpenOptions, m *media.Media, pending bool) (_ *media.Media, _ *medialock.Lock, write bool, err error) {
	write = o.Write
	defer func() {
		if err != nil && m != nil {
			m.Close()
		}
	}()
	var lock *medialock.Lock
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	lo := LockOptions(o.Log, o.Wait)
	if write {
		lock, err = medialock.ExclusiveWith(ctx, o.MediaDir, lo)
		if errors.Is(err, medialock.ErrReadOnly) && o.LedgerOnly && !pending && m != nil {
			// Nothing to finish on the medium, and nobody can write to it either.
			write = false
			lock, err = medialock.SharedWith(ctx, o.MediaDir, lo)
		}
		if errors.Is(err, medialock.ErrReadOnly) && pending {
			err = &PendingError{Err: err}
		}
	} else {
		lock, err = medialock.SharedWith(ctx, o.MediaDir, lo)
	}
	if err != nil {
		return nil, nil, false, err
	}
	if m == nil {
		if m, err = media.Init(o.MediaDir); err != nil {
			lock.Release()
			m = nil
			if errors.Is(err, media.ErrNotMedia) {
				return nil, nil, false, err
			}
			return nil, nil, false, &UnwritableError{Err: err}
		}
	}
	return m, lock, write, nil
}
