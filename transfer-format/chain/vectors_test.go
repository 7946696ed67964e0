package chain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// vectorFile is vector.json (see internal/vectorgen).
type vectorFile struct {
	Expect     string       `json:"expect"`
	Comment    string       `json:"comment"`
	Anchor     string       `json:"anchor"`
	Remembered *chain.Heads `json:"remembered"`
	At         *struct {
		Chain string `json:"chain"`
		Seq   uint64 `json:"seq"`
	} `json:"at"`
	Warnings int `json:"warnings"`
	Findings int `json:"findings"`
}

func readVector(t testing.TB, dir string) vectorFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "vector.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	if v.Expect == "" || v.Comment == "" {
		t.Fatalf("%s: vector.json without expect or comment", dir)
	}
	return v
}

// replayVector replays the medium of a vector as its vector.json says and checks the
// verdict class, where the first finding is, and the number of ignored files.
func replayVector(t *testing.T, dir string) {
	t.Helper()
	v := readVector(t, dir)
	var opts chain.Options
	if v.Anchor != "" {
		id, err := bundle.ParseID(v.Anchor)
		if err != nil {
			t.Fatalf("anchor: %v", err)
		}
		opts.Anchor = id
	}
	if v.Remembered != nil {
		opts.Remembered = *v.Remembered
	}
	m, err := media.Open(filepath.Join(dir, "medium"))
	if v.Expect == "not a medium" || err != nil {
		// A folder refused as a whole: the verdict is Open's, about no bundle.
		if got := chain.Verdict(err); got != v.Expect {
			t.Fatalf("media.Open: verdict %q (%v), want %q\n%s", got, err, v.Expect, v.Comment)
		}
		if v.At != nil || v.Warnings != 0 || v.Findings != 0 {
			t.Fatalf("vector.json of a folder that is not a medium names a bundle, warnings or findings")
		}
		if m != nil {
			m.Close()
		}
		return
	}
	defer m.Close()
	res, stopErr := chain.Replay(context.Background(), m, opts)
	first := res.Err()
	if first == nil {
		first = stopErr
	}
	t.Logf("first finding: %v", first)
	if got := chain.Verdict(first); got != v.Expect {
		t.Fatalf("verdict %q (%v), want %q\n%s", got, first, v.Expect, v.Comment)
	}
	if v.Expect == "success" {
		if !res.Complete {
			t.Errorf("Complete = false for a successful replay")
		}
		if got, want := res.TrustedOnFirstUse, v.Anchor == "" && res.State.Current() != nil; got != want {
			t.Errorf("TrustedOnFirstUse = %v, want %v", got, want)
		}
	} else {
		f := res.Findings[0]
		if v.At == nil {
			t.Fatalf("vector.json does not say where the %s finding is", v.Expect)
		}
		if f.Chain.String() != v.At.Chain || f.Seq != v.At.Seq {
			t.Errorf("first finding at %s seq %d (%v), want %s seq %d", f.Chain, f.Seq, f, v.At.Chain, v.At.Seq)
		}
	}
	if v.Findings != 0 && len(res.Findings) != v.Findings {
		t.Errorf("%d findings (%v), want %d", len(res.Findings), res.Findings, v.Findings)
	}
	if res.WarningCount != v.Warnings {
		t.Errorf("WarningCount = %d (%v), want %d", res.WarningCount, res.Warnings, v.Warnings)
	}
}

// TestVectors replays every vector of testdata/vectors.
func TestVectors(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "testdata", "vectors", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no vectors in testdata/vectors; run go generate ./...")
	}
	seen := map[string]bool{}
	for _, dir := range dirs {
		t.Run(filepath.Base(filepath.Dir(dir))+"/"+filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			replayVector(t, dir)
		})
		seen[readVector(t, dir).Expect] = true
	}
	// Every verdict class has at least one vector.
	for _, want := range []string{"success", "not a medium", "malformed", "unsupported version", "bad signature",
		"hash mismatch", "chain break", "fork", "rollback", "replay", "expired", "clock skew",
		"unknown signer", "untrusted", "missing approval", "policy violation", "key mismatch", "too large"} {
		if !seen[want] {
			t.Errorf("no vector expects %q", want)
		}
	}
}

// TestCompat replays the frozen media of each format version: a medium written by a release
// must verify with every later one.
func TestCompat(t *testing.T) {
	var dirs []string
	for _, v := range []string{"v1", "v2"} {
		d, err := filepath.Glob(filepath.Join("..", "testdata", "compat", v, "*"))
		if err != nil {
			t.Fatal(err)
		}
		if len(d) == 0 {
			t.Fatalf("no frozen media in testdata/compat/%s", v)
		}
		dirs = append(dirs, d...)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(filepath.Dir(dir))+"/"+filepath.Base(dir), func(t *testing.T) {
			if v := readVector(t, dir); v.Expect != "success" {
				t.Fatalf("a compat medium must be valid, vector.json expects %q", v.Expect)
			}
			replayVector(t, dir)
		})
	}
}
