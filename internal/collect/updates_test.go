package collect

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParseUpdatesValues(t *testing.T) {
	tests := []struct {
		tok  string
		want map[string]any
	}{
		{"a.b=1", map[string]any{"a": map[string]any{"b": int64(1)}}},
		{"c=text", map[string]any{"c": "text"}},
		{"d=[1,2]", map[string]any{"d": []any{int64(1), int64(2)}}},
		{"d=[1, [2, x], 'y']", map[string]any{"d": []any{int64(1), []any{int64(2), "x"}, "y"}}},
		{"lr=0.1", map[string]any{"lr": 0.1}},
		{`name="x y"`, map[string]any{"name": "x y"}},
		{`name='x y'`, map[string]any{"name": "x y"}},
		{"flag=true", map[string]any{"flag": true}},
		{"flag=False", map[string]any{"flag": false}},
		{"x=null", map[string]any{"x": nil}},
		{"x=None", map[string]any{"x": nil}},
		{"e=1e-3", map[string]any{"e": 0.001}},
		{"e=-2.5E3", map[string]any{"e": -2500.0}},
		{"n=-7", map[string]any{"n": int64(-7)}},
		{"n=0x10", map[string]any{"n": int64(16)}},
		{"n=1_000", map[string]any{"n": int64(1000)}},
		{"zip=007", map[string]any{"zip": "007"}},
		{"big=99999999999999999999", map[string]any{"big": "99999999999999999999"}},
		{"m={a: 1, b: [true, null]}", map[string]any{"m": map[string]any{"a": int64(1), "b": []any{true, nil}}}},
		{`m={"a": "1"}`, map[string]any{"m": map[string]any{"a": "1"}}},
		{"  p . q  =  5  ", map[string]any{"p": map[string]any{"q": int64(5)}}},
		{"s=", map[string]any{"s": ""}},
		{"s=a=b", map[string]any{"s": "a=b"}},
		{"s=text # not a comment", map[string]any{"s": "text # not a comment"}},
		{`s='"[1, 2"'`, map[string]any{"s": `"[1, 2"`}},
		{`s="[1, 2"`, map[string]any{"s": "[1, 2"}},
		{"s=it's", map[string]any{"s": "it's"}},
		{`s='it\'s "q"'`, map[string]any{"s": `it's "q"`}},
		{`s="tab\there"`, map[string]any{"s": "tab\there"}},
		{"n=007.5", map[string]any{"n": 7.5}},
		{"s=inf", map[string]any{"s": "inf"}},
		{"s=yes", map[string]any{"s": "yes"}},
		{"s=1.2.3", map[string]any{"s": "1.2.3"}},
		{"λ=1", map[string]any{"λ": int64(1)}},
		{"with-dash=1", map[string]any{"with-dash": int64(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.tok, func(t *testing.T) {
			cfg, upd, files, err := ParseUpdates([]string{tt.tok})
			if err != nil {
				t.Fatalf("ParseUpdates(%q): %v", tt.tok, err)
			}
			if !reflect.DeepEqual(upd, tt.want) {
				t.Errorf("updates = %#v, want %#v", upd, tt.want)
			}
			if !reflect.DeepEqual(cfg, tt.want) {
				t.Errorf("config = %#v, want %#v", cfg, tt.want)
			}
			if len(files) != 0 {
				t.Errorf("files = %v, want none", files)
			}
		})
	}
}

func TestParseUpdatesNestedMerge(t *testing.T) {
	cfg, upd, _, err := ParseUpdates([]string{"a.b=1", "a.c=2", "a.d.e=x", "f={g: 1}", "f.h=2", "z=1", "z=2"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"a": map[string]any{"b": int64(1), "c": int64(2), "d": map[string]any{"e": "x"}},
		"f": map[string]any{"g": int64(1), "h": int64(2)},
		"z": int64(2),
	}
	if !reflect.DeepEqual(upd, want) || !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got updates %#v config %#v, want %#v", upd, cfg, want)
	}
	// config must not share maps with updates: the runner adds the seed
	// and may change config without touching meta.config_updates.
	cfg["a"].(map[string]any)["b"] = "changed"
	if upd["a"].(map[string]any)["b"] != int64(1) {
		t.Fatal("config and updates share a nested map")
	}
	// Mappings merge whatever the order.
	_, upd, _, err = ParseUpdates([]string{"f.h=2", "f={g: 1}"})
	if err != nil || !reflect.DeepEqual(upd, map[string]any{"f": map[string]any{"g": int64(1), "h": int64(2)}}) {
		t.Fatalf("f.h=2 f={g: 1}: got %#v, %v", upd, err)
	}
}

// TestHardening23UpdateValueAndMappingConflict: a key set both to a value
// and to a mapping is refused in either order
// (issue 8 item 23: `a.b.c=1 a=2` was accepted and its reverse refused).
func TestHardening23UpdateValueAndMappingConflict(t *testing.T) {
	for _, toks := range [][]string{
		{"a.b.c=1", "a=2"},
		{"a=2", "a.b.c=1"},
		{"a.b=1", "a=3"},
		{"a={b: 1}", "a=3"},
		{"a=3", "a={b: 1}"},
		{"a.b=1", "a.b.c=2"},
		{"a=null", "a.b=1"},
	} {
		_, _, _, err := ParseUpdates(toks)
		if err == nil || !strings.Contains(err.Error(), "both to a value and to a mapping") || !strings.Contains(err.Error(), strconv.Quote(toks[1])) {
			t.Errorf("ParseUpdates(%q): error %v, want a conflict naming %q", toks, err, toks[1])
		}
	}
}

func TestParseUpdatesNone(t *testing.T) {
	cfg, upd, files, err := ParseUpdates(nil)
	if err != nil || cfg == nil || upd == nil || len(cfg) != 0 || len(upd) != 0 || files != nil {
		t.Fatalf("got %v %v %v %v", cfg, upd, files, err)
	}
}

func TestParseUpdatesErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		toks    []string
		mention string
	}{
		{[]string{"=1"}, `"=1"`},
		{[]string{"a..b=1"}, `"a..b=1"`},
		{[]string{"a.=1"}, `"a.=1"`},
		{[]string{".a=1"}, `".a=1"`},
		{[]string{"$a=1"}, `"$a=1"`},
		{[]string{"./x=1"}, `"./x=1"`},
		{[]string{"--lr=1"}, `"--lr=1"`},
		{[]string{"a b=1"}, `"a b=1"`},
		{[]string{"debug"}, `"debug"`},
		{[]string{filepath.Join(dir, "missing.json")}, "missing.json"},
		{[]string{"a=1", "a.b=2"}, `"a.b=2"`},
		{[]string{"nonexist.yaml"}, "nonexist.yaml does not exist"},
		{[]string{"s=[1, 2"}, "not a complete list or mapping"},
		{[]string{"a=[1,"}, `"a=[1,"`},
		{[]string{`s="a" b`}, "not one quoted string"},
		{[]string{"s=[1] x"}, "not a complete list"},
		{[]string{"s={a: 1} b"}, "not a complete list"},
		{[]string{"s=[1] # c"}, "not a complete list"},
		{[]string{`s='a'b'`}, "not one quoted string"},
		{[]string{"s=[*a]"}, "not a complete list"},
		{[]string{".=1"}, `".=1"`},
	}
	for _, tt := range tests {
		_, _, _, err := ParseUpdates(tt.toks)
		if err == nil {
			t.Errorf("ParseUpdates(%q): no error", tt.toks)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseUpdates(%q): error %q should be one line naming %s", tt.toks, err, tt.mention)
		}
	}
}

func writeFile(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseUpdatesConfigFiles(t *testing.T) {
	dir := t.TempDir()
	js := writeFile(t, filepath.Join(dir, "base.json"), `{"lr": 0.5, "layers": 3, "opt": {"name": "sgd", "momentum": 0.9}, "tags": ["a", 1]}`)
	ym := writeFile(t, filepath.Join(dir, "over.yaml"), "layers: 4\nopt:\n  name: adam\n  beta: [0.9, 0.999]\nbig: 18446744073709551615\n")
	yml := writeFile(t, filepath.Join(dir, "empty.yml"), "")

	cfg, upd, files, err := ParseUpdates([]string{js, "opt.name=rmsprop", ym, "lr=0.1", yml})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files, []string{js, ym, yml}) {
		t.Errorf("files = %v", files)
	}
	wantUpd := map[string]any{"opt": map[string]any{"name": "rmsprop"}, "lr": 0.1}
	if !reflect.DeepEqual(upd, wantUpd) {
		t.Errorf("updates = %#v, want %#v", upd, wantUpd)
	}
	// Files merge in order, then updates win whatever their position.
	wantCfg := map[string]any{
		"lr":     0.1,
		"layers": int64(4),
		"opt":    map[string]any{"name": "rmsprop", "momentum": 0.9, "beta": []any{0.9, 0.999}},
		"tags":   []any{"a", int64(1)},
		"big":    float64(18446744073709551615),
	}
	if !reflect.DeepEqual(cfg, wantCfg) {
		t.Errorf("config = %#v\nwant %#v", cfg, wantCfg)
	}
}

func TestParseUpdatesBadConfigFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"list.json":   `[1, 2]`,
		"broken.json": `{"a": `,
		"broken.yaml": "a: [1,\n",
		"dotted.yaml": "a.b: 1\n",
		"dollar.json": `{"x": {"$set": 1}}`,
	} {
		p := writeFile(t, filepath.Join(dir, name), content)
		_, _, _, err := ParseUpdates([]string{p})
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
}

func TestLooksLikeUpdate(t *testing.T) {
	dir := t.TempDir()
	cfgFile := writeFile(t, filepath.Join(dir, "c.yaml"), "a: 1\n")
	script := writeFile(t, filepath.Join(dir, "train.py"), "print(1)\n")
	for tok, want := range map[string]bool{
		"a=1":                         true,
		"a.b.c=[1,2]":                 true,
		" a = 1":                      true,
		cfgFile:                       true,
		"a..b=1":                      true, // malformed: refused by ParseUpdates, never run
		"=x":                          true,
		".=1":                         true,
		"a b=1":                       true,
		filepath.Join(dir, "no.yaml"): true,
		"nonexist.yml":                true,
		script:                        false,
		"python3":                     false,
		"--":                          false,
		"--opt=1":                     false,
		"./run.sh":                    false,
		"./x=1":                       false,
		"bin/tool=1":                  false,
		"":                            false,
	} {
		if got := LooksLikeUpdate(tok); got != want {
			t.Errorf("LooksLikeUpdate(%q) = %v, want %v", tok, got, want)
		}
	}
}

func FuzzParseUpdates(f *testing.F) {
	for _, s := range []string{"a.b=1", "c=text", "d=[1,2]", "m={a: 1}", `n="x"`, "=1", "a..b=1", "x={&a 1: *a}", "l=[[[[", "y='a''b'", "z=0x"} {
		f.Add(s, "b=2")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		cfg, upd, _, err := ParseUpdates([]string{a, b})
		if err != nil {
			return
		}
		if cfg == nil || upd == nil {
			t.Fatal("nil maps without an error")
		}
		if !LooksLikeUpdate(a) {
			t.Fatalf("ParseUpdates accepted %q but LooksLikeUpdate refuses it", a)
		}
	})
}
