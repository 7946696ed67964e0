package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// tree returns every file, folder and link under root, by slash path relative to root: file
// contents, "dir" for folders, "-> target" for links.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + target
		case d.IsDir():
			out[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVectorsUpToDate regenerates the vectors and compares them with the committed ones: the
// generator is deterministic and the committed vectors are its output.
func TestVectorsUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerates every vector")
	}
	out := filepath.Join(t.TempDir(), "vectors")
	if err := Generate(out); err != nil {
		t.Fatalf("Generate() = %v", err)
	}
	got := tree(t, out)
	want := tree(t, filepath.Join("..", "..", "testdata", "vectors"))
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s is committed but no longer generated", p)
		case g != w:
			t.Errorf("%s differs from what the generator writes (%d bytes, want %d)", p, len(g), len(w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s is generated but not committed", p)
		}
	}
	if t.Failed() {
		t.Log("run go generate ./... in transfer-format and commit testdata/vectors")
	}
}

// TestGenerateTwiceIdentical checks determinism directly, independently of the committed
// vectors.
func TestGenerateTwiceIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("generates every vector twice")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := Generate(a); err != nil {
		t.Fatal(err)
	}
	if err := Generate(b); err != nil {
		t.Fatal(err)
	}
	ta, tb := tree(t, a), tree(t, b)
	if len(ta) != len(tb) {
		t.Fatalf("two runs wrote %d and %d entries", len(ta), len(tb))
	}
	for p, x := range ta {
		if y, ok := tb[p]; !ok || !bytes.Equal([]byte(x), []byte(y)) {
			t.Errorf("%s differs between two runs", p)
		}
	}
}

func TestRunReplacesStaleVectors(t *testing.T) {
	if testing.Short() {
		t.Skip("generates every vector")
	}
	out := filepath.Join(t.TempDir(), "vectors")
	stale := filepath.Join(out, "stale-vector")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := run(out); err != nil {
		t.Fatalf("run() = %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a stale vector survived regeneration: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "valid-one-key", "vector.json")); err != nil {
		t.Errorf("no vectors written: %v", err)
	}
	if _, err := os.Stat(out + ".new"); !os.IsNotExist(err) {
		t.Errorf("the temporary folder was left behind: %v", err)
	}
}
