package audit_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
)

// vectorsDir holds the transfer format's test vectors (transfer-format/internal/vectorgen):
// one medium per verdict class and per way of breaking one.
const vectorsDir = "../../transfer-format/testdata/vectors"

// The audit reaches every vector's verdict, at the bundle it names, with the exit code of its
// class. Remembered heads, where a vector has them, come from a checkpoint written by an
// earlier audit that had no policy in force yet, so the replay runs from genesis against them.
func TestAuditVectors(t *testing.T) {
	dirs, err := os.ReadDir(vectorsDir)
	if err != nil {
		t.Fatalf("the transfer format's vectors: %v", err)
	}
	if len(dirs) < 50 {
		t.Fatalf("only %d vectors in %s", len(dirs), vectorsDir)
	}
	for _, d := range dirs {
		t.Run(d.Name(), func(t *testing.T) {
			t.Parallel()
			var v struct {
				Expect     string       `json:"expect"`
				Anchor     string       `json:"anchor"`
				Remembered *chain.Heads `json:"remembered"`
				Warnings   int          `json:"warnings"`
				Findings   int          `json:"findings"`
				At         *struct {
					Chain string `json:"chain"`
					Seq   uint64 `json:"seq"`
				} `json:"at"`
			}
			check(t, json.Unmarshal(must[[]byte](t)(os.ReadFile(filepath.Join(vectorsDir, d.Name(), "vector.json"))), &v))
			// A copy: the audit's shared lock creates .lock, and the vectors are not ours.
			medium := filepath.Join(t.TempDir(), "medium")
			copyTree(t, filepath.Join(vectorsDir, d.Name(), "medium"), medium)
			args := []string{"audit", "--json", "--media", medium}
			if v.Anchor != "" {
				args = append(args, "--policy", v.Anchor)
			}
			if v.Remembered != nil {
				cp := filepath.Join(t.TempDir(), "cp.json")
				b := must[[]byte](t)(json.Marshal(map[string]any{
					"format": "airgap-byok audit checkpoint v1", "created": "2026-01-01T00:00:00Z", "medium": "elsewhere",
					"anchor": "0000000000000000000000000000000000000000000000000000000000000000", "pinned": false,
					"trusted_on_first_use": false, "heads": v.Remembered, "remembered": v.Remembered, "verdict": "PASS",
					"findings": []any{}, "counts": map[string]any{}, "order": 0, "stations": map[string]string{},
					"pending": map[string]any{}, "state": nil,
				}))
				check(t, os.WriteFile(cp, b, 0o644))
				args = append(args, "--since", cp)
			}
			code, out, errs := cliRun(t, args...)
			want := exitcode.Verify
			switch v.Expect {
			case "success":
				want = exitcode.OK
			case "malformed", "unsupported version", "too large", "error", "not a medium":
				want = exitcode.Bundle
			}
			if code != want {
				t.Fatalf("exit code %d, want %d for %q\nstderr: %s", code, want, v.Expect, errs)
			}
			if v.Expect == "not a medium" {
				// Refused before any bundle is read: an error, and no report.
				if strings.TrimSpace(out) != "" {
					t.Fatalf("a report for a folder that is not a medium:\n%s", out)
				}
				return
			}
			r := parseJSON(t, out)
			if v.Warnings > 0 && (r.WarningCount != v.Warnings || len(r.Warnings) != v.Warnings) {
				t.Errorf("warnings %d %q, want %d", r.WarningCount, r.Warnings, v.Warnings)
			}
			if v.Expect == "success" {
				if len(r.Findings) != 0 {
					t.Fatalf("findings %+v on a valid vector", r.Findings)
				}
				return
			}
			if len(r.Findings) == 0 {
				t.Fatalf("no finding, want %q", v.Expect)
			}
			if v.Findings > 0 && len(r.Findings) != v.Findings {
				t.Errorf("%d findings %+v, want %d", len(r.Findings), r.Findings, v.Findings)
			}
			f := r.Findings[0]
			if f.Verdict != v.Expect {
				t.Errorf("first finding [%s] %s, want %q", f.Verdict, f.Message, v.Expect)
			}
			if v.At != nil && (f.Chain != v.At.Chain || f.Seq != v.At.Seq) {
				t.Errorf("first finding at %s seq %d, want %s seq %d", f.Chain, f.Seq, v.At.Chain, v.At.Seq)
			}
		})
	}
}

// copyTree copies a folder with its files and symbolic links.
func copyTree(t testing.TB, from, to string) {
	t.Helper()
	check(t, filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o444)
	}))
}
