package chain_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// memSource is a medium in memory: a chain.Source without file system calls, so the fuzzer
// spends its time in the replay.
type memSource struct {
	entries [3][]media.Entry // by chain, in sequence order
	data    map[string][]byte
}

func (s *memSource) Entries(c bundle.Chain, from uint64, _ func(media.Warning)) iter.Seq2[media.Entry, error] {
	return func(yield func(media.Entry, error) bool) {
		for _, e := range s.entries[c] {
			if e.Seq >= from && !yield(e, nil) {
				return
			}
		}
	}
}

func (s *memSource) Read(e media.Entry) ([]byte, error) {
	b, ok := s.data[e.Path]
	if !ok {
		return nil, fs.ErrNotExist
	}
	if len(b) > bundle.MaxFileSize {
		return nil, &bundle.ParseError{What: "bundle", Err: bundle.ErrTooLarge}
	}
	return bytes.Clone(b), nil
}

func (s *memSource) Find(c bundle.Chain, seq uint64) (media.Entry, error) {
	for _, e := range s.entries[c] {
		if e.Seq == seq {
			return e, nil
		}
	}
	return media.Entry{}, fmt.Errorf("%s seq %d: %w", c, seq, media.ErrNotFound)
}

// loadMedium reads a medium into memory.
func loadMedium(tb testing.TB, dir string) *memSource {
	tb.Helper()
	m, err := media.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer m.Close()
	s := &memSource{data: map[string][]byte{}}
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		for e, err := range m.Entries(c, 1, nil) {
			if err != nil {
				tb.Fatal(err)
			}
			b, err := m.Read(e)
			if err != nil {
				tb.Fatal(err)
			}
			s.entries[c] = append(s.entries[c], e)
			s.data[e.Path] = b
		}
	}
	return s
}

// all returns the entries of both chains, offline first.
func (s *memSource) all() []media.Entry {
	return slices.Concat(s.entries[bundle.ChainOffline], s.entries[bundle.ChainOnline])
}

// with returns a copy of s in which the file of entry i holds data; if rename, the entry
// is named by the ID of data's header, as if the file had been renamed to match it.
func (s *memSource) with(i int, data []byte, rename bool) *memSource {
	out := &memSource{data: map[string][]byte{}}
	for k, v := range s.data {
		out.data[k] = v
	}
	all := s.all()
	target := all[i%len(all)]
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		out.entries[c] = slices.Clone(s.entries[c])
		for j, e := range out.entries[c] {
			if e != target {
				continue
			}
			if rename && len(data) >= bundle.HeaderSize {
				e.ID = bundle.IDOfHeader(data[:bundle.HeaderSize])
				e.Path = media.Path(e.Chain, e.Seq, e.ID)
				delete(out.data, target.Path)
				out.entries[c][j] = e
			}
			out.data[e.Path] = data
		}
	}
	return out
}

// FuzzReplay replays the valid-one-key vector with one bundle file replaced by fuzz bytes:
// the replay must never panic and must always end in a verdict.
func FuzzReplay(f *testing.F) { fuzzReplay(f, "valid-one-key") }

// FuzzReplayVersion2 does the same with the ceremony that moves from format version 1 to 2
// midway, whose version 2 payloads record their toolset: the fuzzer rewrites versions,
// domain-separated IDs and signatures, and toolset members.
func FuzzReplayVersion2(f *testing.F) { fuzzReplay(f, "valid-version-1-to-2") }

func fuzzReplay(f *testing.F, baseName string) {
	vectors := filepath.Join("..", "testdata", "vectors")
	baseDir := filepath.Join(vectors, baseName)
	base := loadMedium(f, filepath.Join(baseDir, "medium"))
	anchor, err := bundle.ParseID(readVector(f, baseDir).Anchor)
	if err != nil {
		f.Fatal(err)
	}
	all := base.all()
	for i, e := range all {
		f.Add(uint8(i), base.data[e.Path], false)
	}
	// The negative vectors made from the same ceremony: their changed files, in place or
	// under a new name.
	dirs, _ := filepath.Glob(filepath.Join(vectors, "*", "medium"))
	for _, dir := range dirs {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			rel = filepath.ToSlash(rel)
			seq, _, err := media.ParseName(d.Name())
			if err != nil {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil || len(b) > 64<<10 {
				return nil
			}
			for i, e := range all {
				if orig, ok := base.data[rel]; ok && e.Path == rel && !bytes.Equal(orig, b) {
					f.Add(uint8(i), b, false)
				} else if !ok && e.Seq == seq && filepath.Dir(e.Path) == filepath.Dir(rel) {
					f.Add(uint8(i), b, true)
				}
			}
			return nil
		})
	}
	f.Fuzz(func(t *testing.T, i uint8, data []byte, rename bool) {
		src := base.with(int(i), data, rename)
		res, err := chain.Replay(context.Background(), src, chain.Options{Anchor: anchor, Workers: 2})
		if res == nil {
			t.Fatalf("Replay() returned no result (%v)", err)
		}
		first := res.Err()
		if first == nil {
			first = err
		}
		v := chain.Verdict(first)
		if v == "error" {
			t.Fatalf("Replay() ended without a verdict: %v", first)
		}
		if v == "success" && !res.Complete {
			t.Fatalf("Replay() succeeded without replaying both chains to the end")
		}
	})
}
