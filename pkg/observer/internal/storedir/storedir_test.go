package storedir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAbs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ notDir, value, want string }{
		{"", " ", "store: the directory is empty (use -x DIR)"},
		{"", "a\x00b", `store: the directory "a\x00b" contains a NUL byte`},
		{"", file, "store: " + file + " exists and is not a directory"},
		{"(hint)", file, "store: " + file + " exists and is not a directory (hint)"},
		{"", filepath.Join(file, "sub"), "store: checking directory " + filepath.Join(file, "sub") + ": "},
	} {
		_, err := Abs("store", "-x DIR", tc.notDir, tc.value)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Abs(%q): %v, want %q", tc.value, err, tc.want)
		}
	}
	for _, v := range []string{dir, filepath.Join(dir, "new", "store")} {
		if abs, err := Abs("store", "-x DIR", "", v); err != nil || abs != v {
			t.Errorf("Abs(%q) = %q, %v", v, abs, err)
		}
	}
	wd, _ := os.Getwd()
	if abs, err := Abs("store", "-x DIR", "", "runs"); err != nil || abs != filepath.Join(wd, "runs") {
		t.Errorf("Abs(runs) = %q, %v", abs, err)
	}
}
