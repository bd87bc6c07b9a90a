package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

// TestNoObserverNameInTheCLI holds issue 9's rule: everything the CLI says
// about an observer comes from its registered kind, so no kind's option
// name (file_storage, mongo_db, tiny_db, ...) appears in a string or a
// comment of the CLI's code outside its tests and its blank imports.
func TestNoObserverNameInTheCLI(t *testing.T) {
	var names []string
	for _, k := range observer.Kinds() {
		if k.Option != extraKind.Option {
			names = append(names, regexp.QuoteMeta(k.Option))
		}
	}
	if len(names) < 3 {
		t.Fatalf("only %d kinds registered: %v", len(names), names)
	}
	re := regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\b`)
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		files++
		imports := map[ast.Node]bool{}
		for _, im := range f.Imports {
			imports[im.Path] = true
		}
		for _, cg := range f.Comments {
			if m := re.FindString(cg.Text()); m != "" {
				t.Errorf("%s: a comment names the observer %q", fset.Position(cg.Pos()), m)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && !imports[lit] {
				if m := re.FindString(lit.Value); m != "" {
					t.Errorf("%s: a string names the observer %q", fset.Position(lit.Pos()), m)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("only %d files of the CLI read", files)
	}
}
