package audit

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// spool keeps the key inventory in a temporary file without a name (see newTempFile), so that an audit of a long medium holds
// no more keys in memory than are awaiting upload, plus an index entry (24 bytes) per key
// that puts the inventory in order. The file is private to the process and read back once
// or twice (the HTML report, the JSON or text output), so it holds each Key in a compact
// binary record (see appendKey) rather than JSON, whose decoding cost more than the rest of
// an audit's work per key.
type spool struct {
	t     *tempFile
	n     int
	off   int64
	index []spoolEntry
	buf   []byte
}

// spoolEntry places a record in the file and in the inventory's order.
type spoolEntry struct {
	seq uint64 // the key package's offline seq; for a receipt of no package, the receipt's online seq
	off int64  // the record's first byte
	n   uint32 // the record's length
	grp uint8  // 0 key packages, 1 receipts of no key package
}

// tempFile is a file in the temporary folder without a name: what the audit spools (key
// names and fingerprints, file paths) must not outlive it, and an audit killed with SIGKILL
// runs no cleanup. It is an O_TMPFILE file where the file system has them, else a file
// removed as soon as it is made.
type tempFile struct {
	f  *os.File
	w  *bufio.Writer
	rm bool
}

func newTempFile(prefix string) (*tempFile, error) {
	dir := os.TempDir()
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	var f *os.File
	if err == nil {
		f = os.NewFile(uintptr(fd), filepath.Join(dir, prefix+" (unnamed)"))
	} else {
		if f, err = os.CreateTemp(dir, prefix+"-*.bin"); err != nil {
			return nil, err
		}
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &tempFile{f: f, w: bufio.NewWriter(f)}, nil
}

func (t *tempFile) close() error {
	if t.rm {
		return nil
	}
	t.rm = true
	return t.f.Close()
}

func newSpool() (*spool, error) {
	t, err := newTempFile("byok-audit-keys")
	if err != nil {
		return nil, fmt.Errorf("key inventory: %w", err)
	}
	return &spool{t: t}, nil
}

func (s *spool) add(k Key) error {
	s.buf = appendKey(s.buf[:0], &k)
	if len(s.buf) > maxRecord {
		return fmt.Errorf("key inventory: a record of %d bytes", len(s.buf))
	}
	e := spoolEntry{seq: k.PackageSeq, off: s.off, n: uint32(len(s.buf))}
	if k.PackageSeq == 0 && k.Name == "" && k.Receipt != nil {
		e.grp, e.seq = 1, k.Receipt.Seq
	}
	if _, err := s.t.w.Write(s.buf); err != nil {
		return fmt.Errorf("key inventory: %w", err)
	}
	s.off += int64(len(s.buf))
	s.index = append(s.index, e)
	s.n++
	return nil
}

// maxRecord bounds a key's record.
const maxRecord = 16 << 20

// flush writes what is buffered and puts the index in the inventory's order: key packages
// by their offline sequence number, then receipts that match no key package by theirs
// (stable: equal places keep the order they were added in).
func (s *spool) flush() error {
	if err := s.t.w.Flush(); err != nil {
		return fmt.Errorf("key inventory: %w", err)
	}
	slices.SortStableFunc(s.index, func(a, b spoolEntry) int {
		return cmp.Or(cmp.Compare(a.grp, b.grp), cmp.Compare(a.seq, b.seq))
	})
	return nil
}

// all yields the keys in the inventory's order (see flush). The spool must have been
// flushed.
func (s *spool) all() iter.Seq2[Key, error] {
	return func(yield func(Key, error) bool) {
		if s.t.rm {
			yield(Key{}, fmt.Errorf("key inventory: the report is closed"))
			return
		}
		var rec []byte
		for _, e := range s.index {
			rec = slices.Grow(rec[:0], int(e.n))[:e.n]
			_, err := s.t.f.ReadAt(rec, e.off)
			var k Key
			if err == nil {
				k, err = readKey(rec)
			}
			if err != nil {
				yield(Key{}, fmt.Errorf("key inventory: %w", err))
				return
			}
			if !yield(k, nil) {
				return
			}
		}
	}
}

func (s *spool) close() error { return s.t.close() }

// appendKey appends the record of k: its fields in declaration order, strings and counts as
// uvarint lengths, Receipt and PublicKeyMatch with a presence byte, Approvals with its count
// plus one (zero for nil), the receipt's Versions with its count (nil for none), so that
// readKey returns a value equal to k.
func appendKey(b []byte, k *Key) []byte {
	for _, s := range []string{k.Package, k.PackageFingerprint} {
		b = appendStr(b, s)
	}
	b = binary.AppendUvarint(b, k.PackageSeq)
	for _, s := range []string{k.Name, k.KeyType, k.Vault, k.Region, k.PublicKeySHA256, k.KCV} {
		b = appendStr(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(k.Residency)))
	for _, r := range k.Residency {
		b = appendStr(b, r)
	}
	if k.Approvals == nil {
		b = binary.AppendUvarint(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(k.Approvals))+1)
		for _, a := range k.Approvals {
			b = appendStr(appendStr(appendStr(b, a.Name), a.Fingerprint), a.Key)
		}
	}
	b = appendStr(b, k.Status)
	b = binary.AppendVarint(b, int64(k.Rejected))
	r := k.Receipt
	if r == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = appendStr(appendStr(b, r.ID), r.Fingerprint)
	b = binary.AppendUvarint(b, r.Seq)
	for _, s := range []string{r.Outcome, r.Vault, r.KID, r.Version, r.PublicKeySHA256} {
		b = appendStr(b, s)
	}
	switch {
	case r.PublicKeyMatch == nil:
		b = append(b, 0)
	case *r.PublicKeyMatch:
		b = append(b, 2)
	default:
		b = append(b, 1)
	}
	b = appendStr(b, r.Error)
	b = binary.AppendUvarint(b, uint64(len(r.Versions)))
	for _, v := range r.Versions {
		b = appendStr(b, v)
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// readKey decodes a record of appendKey.
func readKey(b []byte) (Key, error) {
	d := recDecoder{b: b}
	var k Key
	k.Package, k.PackageFingerprint = d.str(), d.str()
	k.PackageSeq = d.uvarint()
	for _, s := range []*string{&k.Name, &k.KeyType, &k.Vault, &k.Region, &k.PublicKeySHA256, &k.KCV} {
		*s = d.str()
	}
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) {
			return Key{}, errors.New("bad record")
		}
		k.Residency = make([]string, n)
		for i := range k.Residency {
			k.Residency[i] = d.str()
		}
	}
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n-1 > uint64(len(d.b))/3 { // an approver is three strings, a length byte each at least
			return Key{}, errors.New("bad record")
		}
		k.Approvals = make([]Approver, n-1)
		for i := range k.Approvals {
			k.Approvals[i] = Approver{Name: d.str(), Fingerprint: d.str(), Key: d.str()}
		}
	}
	k.Status = d.str()
	k.Rejected = int(d.varint())
	switch d.byte() {
	case 0:
	case 1:
		r := &Receipt{ID: d.str(), Fingerprint: d.str(), Seq: d.uvarint()}
		for _, s := range []*string{&r.Outcome, &r.Vault, &r.KID, &r.Version, &r.PublicKeySHA256} {
			*s = d.str()
		}
		switch m := d.byte(); m {
		case 0:
		case 1, 2:
			match := m == 2
			r.PublicKeyMatch = &match
		default:
			d.err = errors.New("bad record")
		}
		r.Error = d.str()
		if n := d.uvarint(); n > 0 && d.err == nil {
			if n > uint64(len(d.b)) { // a version is a string, a length byte at least
				return Key{}, errors.New("bad record")
			}
			r.Versions = make([]string, n)
			for i := range r.Versions {
				r.Versions[i] = d.str()
			}
		}
		k.Receipt = r
	default:
		d.err = errors.New("bad record")
	}
	if d.err != nil || len(d.b) != 0 {
		return Key{}, errors.New("bad record")
	}
	return k, nil
}

// recDecoder reads a record; after a failure every read returns zero and err is set.
type recDecoder struct {
	b   []byte
	err error
}

func (d *recDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad record")
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads what binary.AppendVarint wrote: a zigzag-encoded uvarint.
func (d *recDecoder) varint() int64 {
	u := d.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

func (d *recDecoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errors.New("bad record")
		d.b = nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *recDecoder) byte() byte {
	if len(d.b) == 0 {
		d.err = errors.New("bad record")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}
