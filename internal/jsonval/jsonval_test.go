package jsonval

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestNumber(t *testing.T) {
	for _, tc := range []struct{ in, want any }{
		{int64(3), 3.0}, {int(-2), -2.0}, {uint8(7), 7.0}, {float32(0.5), 0.5}, {uint64(1 << 40), float64(1 << 40)},
		{json.Number("1.25"), 1.25}, {json.Number("1e999"), "1e999"},
		{"3", "3"}, {true, true}, {nil, nil},
	} {
		if got := Number(tc.in); got != tc.want {
			t.Errorf("Number(%#v) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestFloats(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	in := map[string]any{"a": int64(1), "b": []any{json.Number("2"), "x", map[string]any{"c": int32(3)}}, "t": at, "s": []string{"p"}}
	orig := map[string]any{"a": int64(1), "b": []any{json.Number("2"), "x", map[string]any{"c": int32(3)}}, "t": at, "s": []string{"p"}}
	want := map[string]any{"a": 1.0, "b": []any{2.0, "x", map[string]any{"c": 3.0}}, "t": at, "s": []string{"p"}}
	if got := Floats(in, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("Floats = %#v, want %#v", got, want)
	}
	if !reflect.DeepEqual(in, orig) {
		t.Errorf("Floats changed its argument: %#v", in)
	}
	var others []any
	Floats(in, func(v any) any { others = append(others, v); return "other" })
	if len(others) != 2 {
		t.Errorf("other was given %#v, want the time and the []string", others)
	}
}
