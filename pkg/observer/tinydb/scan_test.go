package tinydb

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzScanIndex checks the scanner against encoding/json: a document that
// encoding/json finds valid is accepted, and one the scanner accepts is
// valid JSON unless it uses Python's NaN and Infinity tokens.
func FuzzScanIndex(f *testing.F) {
	for _, s := range []string{
		`{"a": "b"}`, `[1, 2.5e-3, -0, true, false, null]`, `"x\"y\\z\u00e9\n"`, `{"_id": "abc", "x": [{}]}`,
		`NaN`, `-Infinity`, `"0123456789abcdef0123456789abcdef"`, `"a\tb"`, "\"a\x01b\"", `01`, `1.`, `"\u12g4"`,
		`{"a" 1}`, `[1,]`, `{"x": "12345678\"12345678\\12345678"}`, "\"\xe9\xff\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		wrapped := `{"runs": {"1": ` + doc + `}}`
		ix, err := scanIndex([]byte(wrapped))
		valid := json.Valid([]byte(wrapped))
		if valid && err != nil {
			t.Fatalf("valid JSON refused: %q: %v", doc, err)
		}
		if err == nil && !valid && !strings.Contains(doc, "NaN") && !strings.Contains(doc, "Infinity") {
			t.Fatalf("invalid JSON accepted: %q", doc)
		}
		if err == nil {
			d := ix.runs.docs[0]
			if got := wrapped[d.start:d.end]; strings.TrimSpace(got) != strings.TrimSpace(doc) {
				t.Fatalf("document span %q, want %q", got, doc)
			}
		}
	})
}

// TestEscapedKeys: names written with escapes are the names Python reads.
func TestEscapedKeys(t *testing.T) {
	ix, err := scanIndex([]byte(`{"\u0072uns": {"\u0031": {"\u005fid": "a\u0062"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ix.runs == nil || len(ix.runs.docs) != 1 || ix.runs.docs[0].key != "1" || ix.runs.maxID != 1 || ix.runs.docs[0].runID != "ab" {
		t.Errorf("index %+v", ix.runs)
	}
}
