package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestHardening36DocsNameOnlyRealCommands: the docs named a `sacred show`
// that did not exist (item 36). Every `sacred COMMAND` the docs and the
// README show as code must be a command of the binary.
func TestHardening36DocsNameOnlyRealCommands(t *testing.T) {
	r := sacred(t, t.TempDir(), nil, "--help")
	if r.code != 0 {
		t.Fatalf("sacred --help: exit %d: %s", r.code, r.stderr)
	}
	commands := map[string]bool{"help": true}
	inList := false
	for l := range strings.Lines(r.stdout) {
		switch {
		case strings.HasPrefix(l, "Available Commands:"):
			inList = true
		case inList && strings.TrimSpace(l) == "":
			inList = false
		case inList:
			commands[strings.Fields(l)[0]] = true
		}
	}
	if len(commands) < 5 {
		t.Fatalf("commands read from --help: %v\n%s", commands, r.stdout)
	}
	root := filepath.Join("..", "..")
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	more, _ := filepath.Glob(filepath.Join(root, "docs", "observers", "*.md"))
	files = append(append(files, more...), filepath.Join(root, "README.md"))
	// As code: in backticks, or on an indented code line (maybe after $).
	inline := regexp.MustCompile("`sacred ([a-z][a-z-]*)")
	block := regexp.MustCompile(`^(?:    |\t)\s*(?:\$ )?sacred ([a-z][a-z-]*)`)
	unknown := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for l := range strings.Lines(string(b)) {
			var names []string
			for _, m := range inline.FindAllStringSubmatch(l, -1) {
				names = append(names, m[1])
			}
			if m := block.FindStringSubmatch(l); m != nil {
				names = append(names, m[1])
			}
			for _, n := range names {
				if !commands[n] {
					rel, _ := filepath.Rel(root, f)
					unknown[n] = append(unknown[n], rel)
				}
			}
		}
	}
	var names []string
	for n := range unknown {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Errorf("the docs show `sacred %s`, which is no command of the binary (in %v)", n, unknown[n])
	}
}

// TestHardening36MongoDocsPairForm: docs/observers/mongo.md claimed the
// {"0","1"} pair form was how Sacred's records look on FerretDB, where
// Python Sacred cannot write at all.
func TestHardening36MongoDocsPairForm(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "observers", "mongo.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(b)), " ")
	if !strings.Contains(doc, "That form is ours, not Sacred's (Python Sacred cannot write to FerretDB at all)") {
		t.Error("docs/observers/mongo.md does not say that the {\"0\", \"1\"} pair form is ours and that Python Sacred cannot write to FerretDB")
	}
}
