// Package keyfile keeps the online station's Ed25519 signing key in a file.
//
// The online station has no HSM (DESIGN.md §4): its key lives in a PEM file ("PRIVATE KEY",
// PKCS#8) with mode 0600 in the state folder. The file is created exclusively and synced, so
// an existing key is never overwritten, and it is refused when it can be read by anyone but
// its owner: a key that others could have copied can no longer vouch for the online chain.
package keyfile

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Name is the file name of the station key in a state folder.
const Name = "station.key"

// Mode is the permission of a key file. Load refuses any file that grants more.
const Mode fs.FileMode = 0o600

const pemType = "PRIVATE KEY"

// maxSize bounds what Load reads: an Ed25519 PKCS#8 PEM is about 120 bytes.
const maxSize = 4096

// ErrExists means a key file is already there; it is never overwritten.
var ErrExists = errors.New("a station key already exists")

// ErrPermissions means the key file can be read or written by others than its owner.
var ErrPermissions = errors.New("station key file is accessible to others")

// WriteError reports a key file (or its folder) that cannot be created or written.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// Generate creates a new Ed25519 key from rand (crypto/rand if nil), writes it to path with
// mode 0600, creating the file exclusively, and syncs the file and its folder. It returns an
// error wrapping ErrExists if path exists, a *WriteError if it cannot be written.
func Generate(path string, rnd io.Reader) (ed25519.PrivateKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	_, key, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("generate station key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode station key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, &WriteError{Err: fmt.Errorf("create state folder: %w", err)}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, Mode)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrExists)
	}
	if err != nil {
		return nil, &WriteError{Err: fmt.Errorf("create station key: %w", err)}
	}
	werr := pem.Encode(f, &pem.Block{Type: pemType, Bytes: der})
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return nil, &WriteError{Err: fmt.Errorf("write station key: %w", werr)}
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, &WriteError{Err: err}
	}
	return key, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync state folder: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state folder: %w", err)
	}
	return nil
}

// Load reads the key at path. It refuses, with an error wrapping ErrPermissions, a
// file whose mode grants any permission to group or others, and a file that is not a
// regular file. A missing file wraps fs.ErrNotExist.
func Load(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open station key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat station key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("station key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&^Mode != 0 {
		return nil, fmt.Errorf("%s has mode %04o: %w", path, perm, ErrPermissions)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read station key: %w", err)
	}
	if len(b) > maxSize {
		return nil, fmt.Errorf("station key %s is larger than %d bytes", path, maxSize)
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != pemType || len(rest) != 0 {
		return nil, fmt.Errorf("station key %s: want one PEM block of type %q", path, pemType)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		// The parser's message names the structure, never key bytes.
		return nil, fmt.Errorf("station key %s: %v", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("station key %s holds a %T, want an Ed25519 key", path, k)
	}
	return key, nil
}
