package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The command line parses flags, prompts and prints; what the ceremony does is decided and
// written by the ceremony package (offline/internal/ceremony). TestCommandLineDecidesNothing
// keeps it so: no file of this package (tests aside) opens the ledger's database, hits a
// crash point, replays the medium, or calls anything that writes a bundle or a ledger record.
func TestCommandLineDecidesNothing(t *testing.T) {
	forbiddenImports := []string{
		"go.etcd.io/bbolt",
		"github.com/airgap-byok/airgap-byok/shared/crashpoint",
		"github.com/airgap-byok/airgap-byok/shared/ledger",
	}
	// Methods that write the ledger or the medium, or replay it.
	forbiddenCalls := regexp.MustCompile(`^(Put[A-Z]\w*|Update[A-Z]\w*|Delete[A-Z]\w*|Append|AppendBatch|Record|RecordOwn|Replay|ReplayState|Hit)$`)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbiddenImports {
				if p == bad {
					t.Errorf("%s imports %s: that belongs in the ceremony package", fset.Position(imp.Pos()), p)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && forbiddenCalls.MatchString(sel.Sel.Name) {
				t.Errorf("%s calls %s: the ceremony package writes and replays, the command line prints", fset.Position(call.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
	if checked < 10 {
		t.Fatalf("checked %d files, want the whole package", checked)
	}
}
