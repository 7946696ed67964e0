package media_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

func FuzzParseName(f *testing.F) {
	err := filepath.WalkDir(filepath.Join("..", "testdata", "vectors"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(d.Name(), ".bundle") {
			f.Add(d.Name())
		}
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(media.Name(bundle.MaxSeq, bundle.ID{0xff}))
	f.Add("0000000000000000-" + strings.Repeat("0", 64) + ".bundle")
	f.Fuzz(func(t *testing.T, name string) {
		seq, id, err := media.ParseName(name)
		if err != nil {
			return
		}
		if got := media.Name(seq, id); got != name {
			t.Fatalf("Name(ParseName(%q)) = %q", name, got)
		}
		if seq == 0 || seq > bundle.MaxSeq {
			t.Fatalf("ParseName(%q) = seq %d, out of range", name, seq)
		}
		if p := media.Path(bundle.ChainOnline, seq, id); filepath.Base(p) != name || !strings.HasPrefix(p, "online/"+name[:13]+"/") {
			t.Fatalf("Path(%d) = %s", seq, p)
		}
	})
}
