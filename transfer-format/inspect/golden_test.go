package inspect_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/inspect"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden pins the JSON of every bundle of the fixture ceremony, verified with all keys:
// field names, order, and the rendering of every value. The ceremony is deterministic, so a
// difference is a change of the output, which tools depend on (fields may be added, never
// renamed or removed). Run with -update after an intended change and review the diff.
func TestGolden(t *testing.T) {
	f := newFixture(t)
	for i, b := range f.c.Written {
		h := b.Header
		name := fmt.Sprintf("%02d-%s-%d-%s.json", i+1, h.Chain, h.Seq, h.Kind)
		t.Run(name, func(t *testing.T) {
			r, err := inspect.Bundle(chaintest.Bytes(b), inspect.Options{Keys: f.all})
			if err != nil {
				t.Fatal(err)
			}
			got := r.JSON()
			path := filepath.Join("testdata", "golden", name)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("JSON() differs from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}
