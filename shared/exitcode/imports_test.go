package exitcode_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const exitcodePath = "github.com/airgap-byok/airgap-byok/shared/exitcode"

// cliLayers are the folders and files that may import this package: the command lines (each
// binary's cli package and main, the frame they share, the media commands) and the command
// files of packages that offer a command. Everything else is a domain package: it returns its
// own sentinel and typed errors, and the command line maps them to exit codes and hints.
var cliLayers = []string{
	"shared/exitcode/",
	"shared/clirun/",
	"shared/mediacmd/",
	"shared/audit/command.go",
	"shared/release/command.go",
	"offline/internal/cli/",
	"online/internal/cli/",
	"offline/cmd/",
	"online/cmd/",
	"integration/cmd/",
}

func isCLILayer(rel string) bool {
	for _, l := range cliLayers {
		if rel == l || (strings.HasSuffix(l, "/") && strings.HasPrefix(rel, l)) {
			return true
		}
	}
	return false
}

// TestOnlyCLILayersImportExitcode parses the imports of every non-test Go file of the
// workspace and fails on a domain package that imports shared/exitcode.
func TestOnlyCLILayersImportExitcode(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("no go.work at %s: %v", root, err)
	}
	allowed := map[string]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (n == "testdata" || n == "vendor" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); path != exitcodePath {
				continue
			}
			if !isCLILayer(rel) {
				t.Errorf("%s imports shared/exitcode: a domain package returns its own errors, and the command line (e.g. shared/clirun) maps them to exit codes", rel)
				continue
			}
			allowed[filepath.ToSlash(filepath.Dir(rel))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk must have seen the command lines that do import it.
	for _, dir := range []string{"shared/clirun", "offline/internal/cli", "online/internal/cli"} {
		if !allowed[dir] {
			t.Errorf("no file of %s imports shared/exitcode: the walk of %s missed it", dir, root)
		}
	}
}

func TestIsCLILayer(t *testing.T) {
	tests := []struct {
		rel  string
		want bool
	}{
		{"offline/internal/cli/cmd_init.go", true},
		{"shared/audit/command.go", true},
		{"shared/audit/audit.go", false},
		{"shared/station/station.go", false},
		{"offline/internal/hsm/errors.go", false},
		{"offline/internal/ceremony/package.go", false},
		{"online/internal/vault/auth.go", false},
		{"shared/clirun/rules.go", true},
	}
	for _, tt := range tests {
		if got := isCLILayer(tt.rel); got != tt.want {
			t.Errorf("isCLILayer(%q) = %t, want %t", tt.rel, got, tt.want)
		}
	}
}
