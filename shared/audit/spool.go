package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"os"
)

// spool keeps the key inventory in a temporary file, one JSON object per line, so that an
// audit of a long medium holds no more keys in memory than are awaiting upload.
type spool struct {
	f  *os.File
	w  *bufio.Writer
	n  int
	rm bool
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "byok-audit-keys-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("key inventory: %w", err)
	}
	return &spool{f: f, w: bufio.NewWriter(f)}, nil
}

func (s *spool) add(k Key) error {
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	s.n++
	if _, err := s.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("key inventory: %w", err)
	}
	return nil
}

func (s *spool) flush() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("key inventory: %w", err)
	}
	return nil
}

// all yields the keys in the order they were added. The spool must have been flushed.
func (s *spool) all() iter.Seq2[Key, error] {
	return func(yield func(Key, error) bool) {
		if s.rm {
			yield(Key{}, fmt.Errorf("key inventory: the report is closed"))
			return
		}
		r := io.NewSectionReader(s.f, 0, 1<<62)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for i := 0; i < s.n && sc.Scan(); i++ {
			var k Key
			if err := json.Unmarshal(sc.Bytes(), &k); err != nil {
				yield(Key{}, fmt.Errorf("key inventory: %w", err))
				return
			}
			if !yield(k, nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield(Key{}, fmt.Errorf("key inventory: %w", err))
		}
	}
}

func (s *spool) close() error {
	if s.rm {
		return nil
	}
	s.rm = true
	err := s.f.Close()
	if rerr := os.Remove(s.f.Name()); err == nil {
		err = rerr
	}
	return err
}
