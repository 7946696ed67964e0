// Package media reads and writes the transfer medium: one folder, typically on a USB stick,
// holding both chains of bundles (SPEC.md §8).
//
// # Layout
//
//	<folder>/
//	  AIRGAP-BYOK                           marker: "airgap-byok media v1\n"
//	  offline/<shard>/<seq>-<id>.bundle     the offline chain
//	  online/<shard>/<seq>-<id>.bundle      the online chain
//	  byok/<key name>-<short id>.byok       plain copies of .byok files, for people using az
//
// <seq> is the sequence number in 16 decimal digits, <id> the bundle ID in 64 hex digits, and
// <shard> the first 13 digits of <seq>, so a shard holds at most 1000 bundles: FAT file
// systems slow down and then fail with many entries in one folder, and a reader lists one
// shard at a time, in constant memory.
//
// # Guarantees
//
// Bundles are immutable: Write refuses to replace a file, and nothing here deletes one. A
// write goes to a temporary file in the same folder, is synced, renamed into place, the
// folder is synced, and the file is read back and compared. A crash at any point leaves
// either no bundle or the whole bundle, plus perhaps a temporary file that readers report as
// a leftover and otherwise ignore. Every path is opened through an os.Root, so names read from
// the medium can never reach outside the folder; symbolic links and other non-regular files
// are refused.
//
// The package does not lock the medium against a second writer; callers hold the lock (the
// shared medialock package).
package media

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// Marker is the file that identifies a medium, and its content.
const (
	MarkerName    = "AIRGAP-BYOK"
	MarkerContent = "airgap-byok media v1\n"
	// LockName is the lock file writers hold (the shared medialock package).
	LockName = ".lock"
	// ByokDir holds plain copies of .byok files.
	ByokDir = "byok"
	// tmpPrefix starts the name of every temporary file.
	tmpPrefix = ".tmp-"
	// seqDigits is the width of the sequence number in file names.
	seqDigits = 16
	// shardDigits is the width of a shard folder name: 1000 bundles per shard.
	shardDigits = 13
)

var (
	// ErrExists means the file to write is already on the medium.
	ErrExists = errors.New("already on the medium")
	// ErrNotMedia means the folder is not a medium: it does not exist, is not a folder, is
	// empty, or has no marker file or a marker with other content (SPEC.md §8.1). Errors
	// wrapping it are *NotMediaError values.
	ErrNotMedia = errors.New("not an airgap-byok medium")
	// ErrNotFound means no bundle has the requested position.
	ErrNotFound = errors.New("no such bundle on the medium")
	// ErrBadType means a path of the medium is not the kind of file the layout puts there: a
	// symbolic link, a FIFO, a device node, or a file where a folder belongs. It is neither
	// followed nor read. Errors wrapping it are *TypeError values.
	ErrBadType = errors.New("not a regular file or folder")
)

// NotMediaError reports a folder that is not a medium, and why.
type NotMediaError struct {
	Dir    string
	Reason string
}

func (e *NotMediaError) Error() string {
	return fmt.Sprintf("no medium at %s: is the stick mounted? (%s)", e.Dir, e.Reason)
}

// Is makes a *NotMediaError match ErrNotMedia.
func (e *NotMediaError) Is(t error) bool { return t == ErrNotMedia }

// NotMedia returns a *NotMediaError for dir.
func NotMedia(dir, reason string) error { return &NotMediaError{Dir: dir, Reason: reason} }

// TypeError reports a path of the medium that is not what the layout puts there.
type TypeError struct {
	Path string
	Dir  bool   // a folder was expected, else a regular file
	Got  string // what is there: "a symbolic link", "a FIFO", ...
}

func (e *TypeError) Error() string {
	want := "a regular file"
	if e.Dir {
		want = "a folder"
	}
	return fmt.Sprintf("%s: not %s (%s); refusing to open it", e.Path, want, e.Got)
}

// Is makes a *TypeError match ErrBadType.
func (e *TypeError) Is(t error) bool { return t == ErrBadType }

// ReadBackError means a written file did not read back as written: the medium is faulty.
type ReadBackError struct{ Path string }

func (e *ReadBackError) Error() string {
	return "read-back of " + e.Path + " differs from what was written: the medium may be faulty"
}

// Hook, when set, is called at named points of a write ("tmp-written", "renamed", "synced").
// Crash tests use it to stop the process at exactly those points.
var Hook func(point string)

func hook(point string) {
	if Hook != nil {
		Hook(point)
	}
}

// Media is an open medium.
type Media struct {
	dir  string
	top  *os.File // the medium folder, through which every read opens (openIn)
	root *os.Root // the same folder, for writes

	// dirs keeps a few folders of the medium open, so that reading the bundles of a shard
	// one after the other resolves one name per file rather than every folder of its path
	// (three fewer system calls per read, which is most of the cost of reading a small file).
	mu   sync.Mutex
	dirs map[string]*dirRef
}

// dirRef is a folder kept open by ReadFile, and how many reads are using it.
type dirRef struct {
	dir   *os.File
	users int
}

// maxOpenDirs bounds the folders kept open: a replay reads one shard of each chain at a
// time.
const maxOpenDirs = 8

// Open opens an existing medium for reading and writing. It fails with a *NotMediaError
// (ErrNotMedia) if dir does not exist, is not a folder, is empty, or has no marker file or
// one with other content. It opens nothing but dir and the marker, and never blocks: a FIFO
// or a device in the place of either is refused.
func Open(dir string) (*Media, error) {
	m, empty, err := open(dir)
	if err != nil {
		return nil, err
	}
	if empty {
		m.Close()
		return nil, NotMedia(dir, "the folder is empty")
	}
	return m, nil
}

// open opens dir as a medium; a folder without a marker is opened only if it is empty
// (holding at most a lock file and leftovers of an interrupted write of the marker), and
// empty says so.
func open(dir string) (_ *Media, empty bool, err error) {
	top, err := openTop(dir)
	if err != nil {
		return nil, false, err
	}
	m := &Media{dir: dir, top: top}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	b, err := m.readTop(MarkerName, int64(len(MarkerContent)))
	switch {
	case err == nil:
		if string(b) != MarkerContent {
			return nil, false, NotMedia(dir, fmt.Sprintf("its %s file holds %q, not this format's marker", MarkerName, truncate(string(b), 40)))
		}
	case errors.Is(err, bundle.ErrTooLarge):
		return nil, false, NotMedia(dir, fmt.Sprintf("its %s file is not this format's marker (too large)", MarkerName))
	case errors.Is(err, ErrBadType):
		return nil, false, NotMedia(dir, err.Error())
	case errors.Is(err, fs.ErrNotExist):
		ents, rerr := m.readDir(".")
		if rerr != nil {
			return nil, false, fmt.Errorf("open medium: %w", rerr)
		}
		for _, e := range ents {
			// The lock file, and a marker whose write was interrupted, do not make a
			// folder a foreign one.
			if n := e.Name(); n == LockName || strings.HasPrefix(n, tmpPrefix) {
				continue
			}
			return nil, false, NotMedia(dir, fmt.Sprintf("no %s file, and the folder is not empty", MarkerName))
		}
		empty = true
	default:
		return nil, false, fmt.Errorf("open medium: %w", err)
	}
	// Writes go through an os.Root of the same folder. (OpenRoot would wait on a FIFO put in
	// the folder's place since openTop; that needs a hand on this machine, not on the
	// medium.)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, false, fmt.Errorf("open medium: %w", err)
	}
	m.root = root
	a, aerr := top.Stat()
	b2, berr := root.Stat(".")
	if aerr != nil || berr != nil || !os.SameFile(a, b2) {
		return nil, false, fmt.Errorf("open medium: %s was replaced while it was opened", dir)
	}
	return m, empty, nil
}

// Init opens dir as a medium, writing the marker first if dir is an existing, empty folder
// (or holds only a lock file and leftovers of an interrupted Init). It never creates dir:
// only a ceremony's start initialises a medium, and a missing folder is an unmounted stick
// (a *NotMediaError). Callers hold the medium's write lock.
func Init(dir string) (*Media, error) {
	m, empty, err := open(dir)
	if err != nil {
		return nil, err
	}
	if empty {
		if err := m.writeAtomic(".", MarkerName, []byte(MarkerContent)); err != nil && !errors.Is(err, ErrExists) {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

// CheckFolder returns a *NotMediaError (ErrNotMedia) if Init would refuse dir: if it does
// not exist, is not a folder, or is neither a medium nor an empty folder. It creates nothing.
func CheckFolder(dir string) error {
	m, _, err := open(dir)
	if err != nil {
		return err
	}
	return m.Close()
}

// Dir returns the folder of the medium.
func (m *Media) Dir() string { return m.dir }

// Close closes the medium.
func (m *Media) Close() error {
	m.mu.Lock()
	for k, d := range m.dirs {
		d.dir.Close()
		delete(m.dirs, k)
	}
	m.mu.Unlock()
	var err error
	if m.root != nil {
		err = m.root.Close()
	}
	if m.top != nil {
		if cerr := m.top.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// openDir returns folder p of the medium for ReadFile, and the function to call when done
// with it. Folders stay open for the next read until more than maxOpenDirs are open; then
// the unused ones are closed.
func (m *Media) openDir(p string) (*dirRef, func(), error) {
	if p == "." {
		return &dirRef{dir: m.top}, func() {}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.dirs[p]
	if !ok {
		f, err := openFolder(m.top, p)
		if err != nil {
			return nil, nil, err
		}
		if m.dirs == nil {
			m.dirs = map[string]*dirRef{}
		}
		if len(m.dirs) >= maxOpenDirs {
			for k, o := range m.dirs {
				if o.users == 0 {
					o.dir.Close()
					delete(m.dirs, k)
				}
			}
		}
		d = &dirRef{dir: f}
		m.dirs[p] = d
	}
	d.users++
	return d, func() {
		m.mu.Lock()
		d.users--
		m.mu.Unlock()
	}, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Name returns the file name of a bundle (§8.2).
func Name(seq uint64, id bundle.ID) string {
	return fmt.Sprintf("%0*d-%s.bundle", seqDigits, seq, id)
}

// Path returns the path of a bundle relative to the medium folder.
func Path(c bundle.Chain, seq uint64, id bundle.ID) string {
	return path.Join(chainDir(c), shardOf(seq), Name(seq, id))
}

func chainDir(c bundle.Chain) string { return c.String() }

func shardOf(seq uint64) string { return fmt.Sprintf("%0*d", seqDigits, seq)[:shardDigits] }

// ParseName parses a bundle file name strictly: 16 digits, a dash, 64 lowercase hex digits,
// ".bundle".
func ParseName(name string) (uint64, bundle.ID, error) {
	const n = seqDigits + 1 + 64 + len(".bundle")
	if len(name) != n || name[seqDigits] != '-' || !strings.HasSuffix(name, ".bundle") {
		return 0, bundle.ID{}, &bundle.ParseError{What: "file name", Err: fmt.Errorf("%q is not <16 digits>-<64 hex>.bundle", truncate(name, 100))}
	}
	for _, c := range name[:seqDigits] {
		if c < '0' || c > '9' {
			return 0, bundle.ID{}, &bundle.ParseError{What: "file name", Err: fmt.Errorf("%q: sequence number is not 16 digits", name)}
		}
	}
	seq, err := strconv.ParseUint(name[:seqDigits], 10, 64)
	if err != nil || seq == 0 {
		return 0, bundle.ID{}, &bundle.ParseError{What: "file name", Err: fmt.Errorf("%q: sequence number out of range", name)}
	}
	id, err := bundle.ParseID(name[seqDigits+1 : seqDigits+1+64])
	if err != nil {
		return 0, bundle.ID{}, &bundle.ParseError{What: "file name", Err: fmt.Errorf("%q: %v", name, err)}
	}
	return seq, id, nil
}

// Entry is a bundle file found on the medium. Its sequence number and ID come from the file
// name and are only claims until the bundle is read and checked.
type Entry struct {
	Chain bundle.Chain
	Seq   uint64
	ID    bundle.ID
	Path  string // relative to the medium folder
}

// Warning is something on the medium that readers ignore but people should know about.
type Warning struct {
	Path     string
	Leftover bool // a temporary file left by an interrupted write
	Reason   string
}

func (w Warning) String() string { return w.Path + ": " + w.Reason }

// Entries yields the bundle files of a chain from sequence number from on, in sequence order,
// one shard in memory at a time. Files that are not bundles are passed to warn (which may be
// nil) and skipped. Two files with the same sequence number are both yielded; checking that
// is the reader's job.
func (m *Media) Entries(c bundle.Chain, from uint64, warn func(Warning)) iter.Seq2[Entry, error] {
	return m.entriesFrom(c, from, warn)
}

func (m *Media) entriesFrom(c bundle.Chain, from uint64, warn func(Warning)) iter.Seq2[Entry, error] {
	if warn == nil {
		warn = func(Warning) {}
	}
	return func(yield func(Entry, error) bool) {
		dir := chainDir(c)
		shards, err := m.readDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			yield(Entry{}, err)
			return
		}
		firstShard := shardOf(from)
		for _, s := range shards {
			p := path.Join(dir, s.Name())
			if !s.IsDir() || !isShardName(s.Name()) {
				warn(classify(p, s))
				continue
			}
			if s.Name() < firstShard {
				continue
			}
			files, err := m.readDir(p)
			if err != nil {
				yield(Entry{}, err)
				return
			}
			for _, f := range files {
				fp := path.Join(p, f.Name())
				seq, id, err := ParseName(f.Name())
				if err != nil || !f.Type().IsRegular() || shardOf(seq) != s.Name() {
					warn(classify(fp, f))
					continue
				}
				if seq < from {
					continue
				}
				if !yield(Entry{Chain: c, Seq: seq, ID: id, Path: fp}, nil) {
					return
				}
			}
		}
	}
}

func classify(p string, d fs.DirEntry) Warning {
	if strings.HasPrefix(d.Name(), tmpPrefix) {
		return Warning{Path: p, Leftover: true, Reason: "left over from an interrupted write; ignored (safe to delete)"}
	}
	if !d.Type().IsRegular() && !d.IsDir() {
		return Warning{Path: p, Reason: "not a regular file; ignored"}
	}
	return Warning{Path: p, Reason: "not part of the transfer format; ignored"}
}

func isShardName(s string) bool {
	if len(s) != shardDigits {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// readDir lists a folder sorted by name.
func (m *Media) readDir(p string) ([]fs.DirEntry, error) {
	ents, err := listFolder(m.top, p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrBadType) {
			return nil, err
		}
		return nil, fmt.Errorf("list %s: %w", p, err)
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, nil
}

// Read returns the bytes of a bundle file. It refuses non-regular files (a *TypeError),
// never following a link or waiting on a FIFO, and files larger than bundle.MaxFileSize
// before reading them.
func (m *Media) Read(e Entry) ([]byte, error) {
	return m.ReadFile(e.Path, bundle.MaxFileSize)
}

// ReadFile reads a regular file of at most limit bytes from the medium. It refuses anything
// else, and a symbolic link at any component of p, with a *TypeError, and a file larger than
// limit with an error wrapping bundle.ErrTooLarge.
func (m *Media) ReadFile(p string, limit int64) ([]byte, error) {
	dir, name := path.Split(p)
	if name == "" || name == "." || name == ".." {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fs.ErrInvalid}
	}
	d, done, err := m.openDir(path.Clean(dir))
	if err != nil {
		return nil, err
	}
	defer done()
	return readFile(d.dir, name, p, limit)
}

// IsFile reports whether p is a regular file of the medium: false if it does not exist, a
// *TypeError (ErrBadType) if it, or a folder of its path, is something else (a symbolic
// link, a FIFO, ...). Like every read, it follows no link and never waits.
func (m *Media) IsFile(p string) (bool, error) {
	dir, name := path.Split(p)
	if name == "" || name == "." || name == ".." {
		return false, &fs.PathError{Op: "open", Path: p, Err: fs.ErrInvalid}
	}
	d, done, err := m.openDir(path.Clean(dir))
	if err == nil {
		defer done()
		err = checkFile(d.dir, name, p)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// readTop reads a regular file at the top of the medium (the marker).
func (m *Media) readTop(name string, limit int64) ([]byte, error) {
	return readFile(m.top, name, name, limit)
}

func tooLarge(p string, size, limit int64) error {
	return &bundle.ParseError{What: "bundle", Err: fmt.Errorf("%w: %s has %d bytes, at most %d", bundle.ErrTooLarge, p, size, limit)}
}

func grewTooLarge(p string, limit int64) error {
	return &bundle.ParseError{What: "bundle", Err: fmt.Errorf("%w: %s grew beyond %d bytes", bundle.ErrTooLarge, p, limit)}
}

// Find returns the entry of a chain at seq, or ErrNotFound. If several files claim seq, it
// returns the first and a *ForkError.
func (m *Media) Find(c bundle.Chain, seq uint64) (Entry, error) {
	var found []Entry
	for e, err := range m.entriesFrom(c, seq, nil) {
		if err != nil {
			return Entry{}, err
		}
		if e.Seq != seq {
			break
		}
		found = append(found, e)
	}
	switch len(found) {
	case 0:
		return Entry{}, fmt.Errorf("%s chain seq %d: %w", c, seq, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return found[0], &DuplicateError{Chain: c, Seq: seq, IDs: []bundle.ID{found[0].ID, found[1].ID}}
}

// DuplicateError reports two bundle files with the same chain and sequence number.
type DuplicateError struct {
	Chain bundle.Chain
	Seq   uint64
	IDs   []bundle.ID
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("%s chain has two bundles at seq %d: %s and %s", e.Chain, e.Seq, e.IDs[0].Short(), e.IDs[1].Short())
}

// Head returns the entry with the highest sequence number of a chain, or ok=false if the
// chain is empty.
func (m *Media) Head(c bundle.Chain) (Entry, bool, error) {
	dir := chainDir(c)
	shards, err := m.readDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, err
	}
	for i := len(shards) - 1; i >= 0; i-- {
		s := shards[i]
		if !s.IsDir() || !isShardName(s.Name()) {
			continue
		}
		p := path.Join(dir, s.Name())
		files, err := m.readDir(p)
		if err != nil {
			return Entry{}, false, err
		}
		for j := len(files) - 1; j >= 0; j-- {
			seq, id, err := ParseName(files[j].Name())
			if err != nil || !files[j].Type().IsRegular() || shardOf(seq) != s.Name() {
				continue
			}
			return Entry{Chain: c, Seq: seq, ID: id, Path: path.Join(p, files[j].Name())}, true, nil
		}
	}
	return Entry{}, false, nil
}

// Write puts a sealed bundle on the medium at its place in its chain (§8.3). It refuses
// with ErrExists if the file is already there, and returns a *ReadBackError if the file does
// not read back as written.
func (m *Media) Write(b *bundle.Bundle) (Entry, error) {
	h := b.Header
	e := Entry{Chain: h.Chain, Seq: h.Seq, ID: b.ID(), Path: Path(h.Chain, h.Seq, b.ID())}
	dir := path.Dir(e.Path)
	if err := m.mkdirAll(dir); err != nil {
		return Entry{}, err
	}
	if err := m.writeAtomic(dir, path.Base(e.Path), b.Marshal()); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// WriteByok writes a plain copy of a .byok file as byok/<name>, refusing to replace one.
func (m *Media) WriteByok(name string, data []byte) (string, error) {
	if err := checkByokName(name); err != nil {
		return "", err
	}
	if err := m.mkdirAll(ByokDir); err != nil {
		return "", err
	}
	p := path.Join(ByokDir, name)
	return p, m.writeAtomic(ByokDir, name, data)
}

// ByokFile is a plain .byok copy for WriteByoks: its name in byok/ and its bytes.
type ByokFile struct {
	Name string
	Data []byte
}

// WriteByoks writes several plain .byok copies as WriteByok does, syncing the folder once
// for all of them (see WriteAll, whose hooks and crash behaviour it shares). It returns their
// paths. It refuses with ErrExists if a file is already there, before writing any.
func (m *Media) WriteByoks(files []ByokFile) ([]string, error) {
	for _, f := range files {
		if err := checkByokName(f.Name); err != nil {
			return nil, err
		}
		if _, err := m.root.Lstat(path.Join(ByokDir, f.Name)); err == nil {
			return nil, fmt.Errorf("%s: %w", path.Join(ByokDir, f.Name), ErrExists)
		}
	}
	if len(files) == 0 {
		return nil, nil
	}
	if err := m.mkdirAll(ByokDir); err != nil {
		return nil, err
	}
	paths := make([]string, len(files))
	for i, f := range files {
		if err := m.writeRenamed(ByokDir, f.Name, f.Data); err != nil {
			return nil, err
		}
		paths[i] = path.Join(ByokDir, f.Name)
	}
	if err := m.syncDir(ByokDir); err != nil {
		return nil, err
	}
	for range files {
		hook("synced")
	}
	for i, f := range files {
		if err := m.readBack(paths[i], f.Data); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

func checkByokName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".byok") {
		return fmt.Errorf("bad .byok file name %q", name)
	}
	return nil
}

func (m *Media) mkdirAll(dir string) error {
	// Create each missing component and sync its parent, so a new folder survives a power cut.
	parts := strings.Split(dir, "/")
	for i := range parts {
		p := path.Join(parts[:i+1]...)
		if fi, err := m.root.Lstat(p); err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s on the medium is not a folder", p)
			}
			continue
		}
		if err := m.root.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s on the medium: %w", p, err)
		}
		if err := m.syncDir(path.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}

func (m *Media) syncDir(p string) error {
	d, err := m.root.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errSyncUnsupported) {
		return fmt.Errorf("sync folder %s: %w", p, err)
	}
	return nil
}

// WriteAll puts several sealed bundles on the medium as Write does, but syncs each folder
// once for all of them instead of once per bundle: each bundle is written to a temporary
// file, synced and renamed into place, in order; then every folder that received one is
// synced; then every file is read back. The hooks run per file, in Write's order
// ("tmp-written" and "renamed" for each file, then "synced" for each file once its folder
// is synced), so one bundle is written exactly as by Write.
//
// A crash before the folder sync can leave any subset of the renamed files on the medium;
// a caller that needs all or none journals the batch first (see shared/station). It
// refuses with ErrExists if a file is already there, and returns a *ReadBackError if one does
// not read back as written.
func (m *Media) WriteAll(bs []*bundle.Bundle) ([]Entry, error) {
	entries := make([]Entry, len(bs))
	data := make([][]byte, len(bs))
	var dirs []string
	for i, b := range bs {
		h := b.Header
		e := Entry{Chain: h.Chain, Seq: h.Seq, ID: b.ID(), Path: Path(h.Chain, h.Seq, b.ID())}
		dir := path.Dir(e.Path)
		if err := m.mkdirAll(dir); err != nil {
			return nil, err
		}
		data[i] = b.Marshal()
		if err := m.writeRenamed(dir, path.Base(e.Path), data[i]); err != nil {
			return nil, err
		}
		if !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
		entries[i] = e
	}
	for _, dir := range dirs {
		if err := m.syncDir(dir); err != nil {
			return nil, err
		}
	}
	for range bs {
		hook("synced")
	}
	for i, e := range entries {
		if err := m.readBack(e.Path, data[i]); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// writeAtomic writes data to dir/name through a synced temporary file and a rename, then
// reads it back.
func (m *Media) writeAtomic(dir, name string, data []byte) error {
	if err := m.writeRenamed(dir, name, data); err != nil {
		return err
	}
	if err := m.syncDir(dir); err != nil {
		return err
	}
	hook("synced")
	return m.readBack(path.Join(dir, name), data)
}

// readBack reads file p back and compares it with data.
func (m *Media) readBack(p string, data []byte) error {
	back, err := m.ReadFile(p, int64(len(data)))
	if err != nil || !bytes.Equal(back, data) {
		return &ReadBackError{Path: p}
	}
	return nil
}

// writeRenamed writes data to dir/name through a synced temporary file and a rename; the
// caller syncs the folder.
func (m *Media) writeRenamed(dir, name string, data []byte) (err error) {
	final := path.Join(dir, name)
	if _, err := m.root.Lstat(final); err == nil {
		return fmt.Errorf("%s: %w", final, ErrExists)
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := path.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:])+"-"+name)
	f, err := m.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = m.root.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	hook("tmp-written")
	// The caller holds the medium lock, so nobody can create final between this check and
	// the rename. (A no-replace rename would close that gap but FAT file systems lack it.)
	if _, err := m.root.Lstat(final); err == nil {
		return fmt.Errorf("%s: %w", final, ErrExists)
	}
	if err := m.root.Rename(tmp, final); err != nil {
		return fmt.Errorf("rename into %s: %w", final, err)
	}
	renamed = true
	hook("renamed")
	return nil
}

// Scan walks the whole medium and returns everything readers ignore: leftovers of
// interrupted writes and unknown files.
func (m *Media) Scan() ([]Warning, error) {
	var ws []Warning
	warn := func(w Warning) { ws = append(ws, w) }
	if err := m.Unknown(warn); err != nil {
		return ws, err
	}
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		for _, err := range m.Entries(c, 1, warn) {
			if err != nil {
				return ws, err
			}
		}
	}
	return ws, nil
}

// ByokCopies returns the names of the plain .byok copies in byok/ (regular files whose name
// ends in .byok and is not a leftover of an interrupted write), sorted; none if byok/ does
// not exist. It lists the folder confined as every read is; what else byok/ holds, Unknown
// reports.
func (m *Media) ByokCopies() ([]string, error) {
	ents, err := m.readDir(ByokDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range ents {
		if n := d.Name(); d.Type().IsRegular() && strings.HasSuffix(n, ".byok") && !strings.HasPrefix(n, tmpPrefix) {
			names = append(names, n)
		}
	}
	return names, nil
}

// Unknown reports to warn what readers ignore outside the chains' folders (whose files
// Entries reports): unknown names at the top of the medium, and in byok/ leftovers of
// interrupted writes and anything that is not a plain .byok file (SPEC.md §8.3).
func (m *Media) Unknown(warn func(Warning)) error {
	top, err := m.readDir(".")
	if err != nil {
		return err
	}
	for _, d := range top {
		switch n := d.Name(); {
		case n == MarkerName && d.Type().IsRegular():
		case (n == "offline" || n == "online" || n == ByokDir) && d.IsDir():
		case n == LockName && d.Type().IsRegular():
		default:
			warn(classify(n, d))
		}
	}
	byok, err := m.readDir(ByokDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, d := range byok {
		if strings.HasPrefix(d.Name(), tmpPrefix) || !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), ".byok") {
			warn(classify(path.Join(ByokDir, d.Name()), d))
		}
	}
	return nil
}
