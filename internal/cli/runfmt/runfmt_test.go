package runfmt

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

func TestCell(t *testing.T) {
	ts := time.Date(2026, 11, 27, 3, 7, 12, 269319000, time.UTC)
	for _, tc := range []struct {
		v           any
		ok          bool
		human, pipe string
	}{
		{nil, false, "-", ""},
		{nil, true, "null", "null"},
		{0.9833333333333333, true, "0.983333", "0.9833333333333333"},
		{math.NaN(), true, "NaN", "NaN"},
		{int64(816200523), true, "816200523", "816200523"},
		{ts, true, "2026-11-27 03:07:12", "2026-11-27T03:07:12.269319Z"},
		{map[string]any{"b": 1.5, "a": []any{"x", true}}, true, `{"a":["x",true],"b":1.5}`, `{"a":["x",true],"b":1.5}`},
	} {
		if got := Cell(tc.v, tc.ok, true); got != tc.human {
			t.Errorf("Cell(%v) on a terminal = %q, want %q", tc.v, got, tc.human)
		}
		if got := Cell(tc.v, tc.ok, false); got != tc.pipe {
			t.Errorf("Cell(%v) in a pipe = %q, want %q", tc.v, got, tc.pipe)
		}
	}
	for s, want := range map[float64]string{0.5: "500ms", 42.25: "42.2s", 125: "2m05s", 3723: "1h02m03s"} {
		if got := Duration(s, true); got != want {
			t.Errorf("Duration(%v) = %q, want %q", s, got, want)
		}
	}
}

func TestJSON(t *testing.T) {
	var o Object
	o.Set("z", math.Inf(1))
	o.Set("a", []string{"x"})
	o.Set("s", "é\n")
	o.Set("z", math.NaN()) // replaces, keeps the place
	o.Set("r", observer.Repository{URL: "u", Commit: "c", Dirty: true})
	want := `{"z":NaN,"a":["x"],"s":"\u00e9\n","r":{"commit":"c","dirty":true,"url":"u"}}`
	if got := string(JSON(o)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestTable(t *testing.T) {
	tb := &Table{Keep: map[int]bool{0: true}}
	tb.Add("ID", "NAME", "NOTE")
	tb.Add("1", "a very long experiment name", "tab\there")
	var b bytes.Buffer
	if err := tb.WriteAligned(&b, 30); err != nil {
		t.Fatal(err)
	}
	want := "ID  NAME              NOTE\n1   a very long exp…  tab here\n" // 30 columns
	if b.String() != want {
		t.Errorf("aligned:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	tb.WriteTSV(&b)
	if !strings.HasSuffix(b.String(), "1\ta very long experiment name\ttab\\there\n") {
		t.Errorf("tsv: %q", b.String())
	}
}

// TestRecordMetaRerunOf: sacred show --json gives a rerun's original as
// the stores record it (meta.rerun_of).
func TestRecordMetaRerunOf(t *testing.T) {
	r := &observer.Run{ID: "4", Status: observer.StatusCompleted,
		Meta: observer.Meta{Command: "main", RerunOf: &observer.RunRef{Kind: "file_storage", Store: "runs", ID: "1"}}}
	got := string(JSON(Record(r, r.Status, false)))
	if want := `"rerun_of":{"id":"1","kind":"file_storage","store":"runs"}`; !strings.Contains(got, want) {
		t.Errorf("record %s\nlacks %s", got, want)
	}
}
