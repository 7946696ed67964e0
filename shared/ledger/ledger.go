// Package ledger opens the bbolt state files of both stations with the rules they share: a
// lock timeout reported as "state locked", a schema version in a meta bucket, and ordered
// migrations.
//
// Each station's store package owns its bucket tree and documents it; this package only
// owns the top-level "meta" bucket:
//
//	meta/
//	  schema        the store's name, e.g. "byok-offline"
//	  version       8-byte big-endian count of migrations applied
//
// Rules for callers: wrap every access in db.View or db.Update; never let a *bolt.Tx or a
// value slice escape a transaction (copy out); never do media writes or network calls inside a
// transaction.
package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketMeta = []byte("meta")
	keySchema  = []byte("schema")
	keyVersion = []byte("version")
)

// ErrLocked means another process has the state file open.
var ErrLocked = errors.New("locked: state ledger is in use by another byok process")

// ErrStateFolder means the state folder cannot be created.
var ErrStateFolder = errors.New("media: create state folder")

// SchemaError means the state file belongs to another store (the other station's ledger).
type SchemaError struct {
	Found, Want string // the store names
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("usage: state ledger belongs to %q, not %q", e.Found, e.Want)
}

// ErrNewer means the file was written by a newer version of the tool.
var ErrNewer = errors.New("state ledger was written by a newer version of this tool")

// Migration changes the bucket tree from one schema version to the next.
type Migration struct {
	Name  string
	Apply func(tx *bolt.Tx) error
}

// Schema names a store and lists its migrations; its version is len(Migrations).
type Schema struct {
	Name       string
	Migrations []Migration
}

// LockTimeout is how long Open waits for another process to release the file.
var LockTimeout = 500 * time.Millisecond

// Open opens (creating if needed, mode 0600) the state file at path and brings it to the
// schema's version. A file another process holds is ErrLocked after LockTimeout.
func Open(path string, s Schema) (*bolt.DB, error) {
	return OpenWait(context.Background(), path, s, WaitOptions{})
}

// WaitOptions say how long OpenWait waits for another process to release the state file.
type WaitOptions struct {
	// Wait is how long to go on trying after the first LockTimeout; 0 gives up then.
	Wait time.Duration
	// Waiting, if set, is called once, when the first try finds the file held and Wait is
	// not 0 (to tell the operator).
	Waiting func()
}

// OpenWait is Open for a command that may wait for the file: it tries for LockTimeout, then
// for up to w.Wait more, in tries of LockTimeout each, until the holder lets go (ErrLocked
// once the time is up). ctx ends the wait early with its error.
func OpenWait(ctx context.Context, path string, s Schema, w WaitOptions) (*bolt.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateFolder, err)
	}
	deadline := time.Now().Add(LockTimeout + w.Wait)
	var db *bolt.DB
	for first := true; ; first = false {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: LockTimeout})
		if err == nil {
			break
		}
		if !errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open state ledger %s: %w", path, err)
		}
		// bbolt gives up a little before its timeout: without a wait, the first try is all.
		if w.Wait <= 0 {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("%s: %w; still locked after waiting %s", path, ErrLocked, w.Wait)
		}
		if first && w.Waiting != nil {
			w.Waiting()
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if err := migrate(db, s); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Version returns the schema version stored in db.
func Version(db *bolt.DB) (uint64, error) {
	var v uint64
	err := db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			v = U64(b.Get(keyVersion))
		}
		return nil
	})
	return v, err
}

func migrate(db *bolt.DB, s Schema) error {
	// Most opens find the ledger current: check in a read transaction, so that reading the
	// state never rewrites the file.
	current := false
	if err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		current = meta != nil && string(meta.Get(keySchema)) == s.Name && U64(meta.Get(keyVersion)) == uint64(len(s.Migrations))
		return nil
	}); err != nil {
		return err
	}
	if current {
		return nil
	}
	for {
		done := false
		err := db.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			name := meta.Get(keySchema)
			if name == nil {
				if err := meta.Put(keySchema, []byte(s.Name)); err != nil {
					return err
				}
			} else if string(name) != s.Name {
				return &SchemaError{Found: string(name), Want: s.Name}
			}
			v := U64(meta.Get(keyVersion))
			switch {
			case v > uint64(len(s.Migrations)):
				return fmt.Errorf("%w: schema version %d, this build knows %d", ErrNewer, v, len(s.Migrations))
			case v == uint64(len(s.Migrations)):
				done = true
				return nil
			}
			m := s.Migrations[v]
			if err := m.Apply(tx); err != nil {
				return fmt.Errorf("migration %d (%s): %w", v+1, m.Name, err)
			}
			return meta.Put(keyVersion, PutU64(v+1))
		})
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// PutU64 encodes v as 8 bytes big-endian (keys sort numerically).
func PutU64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// U64 decodes 8 bytes big-endian; anything else is 0.
func U64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
