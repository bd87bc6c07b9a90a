package sacredjson

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

func TestMarshalTable(t *testing.T) {
	big1, _ := new(big.Int).SetString("100000000000000000000", 10)
	type tagged struct {
		URL    string `json:"url"`
		Commit string `json:"commit"`
		Dirty  bool   `json:"dirty"`
	}
	type named string
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"null", nil, `null`},
		{"true", true, `true`},
		{"false", false, `false`},
		{"int", 42, `42`},
		{"negative int", int64(-7), `-7`},
		{"uint64 max", uint64(math.MaxUint64), `18446744073709551615`},
		{"int8", int8(-3), `-3`},
		{"big int", big1, `100000000000000000000`},
		{"json.Number big int", json.Number("123456789012345678901234567890"), `123456789012345678901234567890`},
		{"json.Number float", json.Number("0.10"), `0.1`},
		{"json.Number exp", json.Number("1E5"), `100000.0`},
		{"float whole", 1.0, `1.0`},
		{"float zero", 0.0, `0.0`},
		{"float neg zero", math.Copysign(0, -1), `-0.0`},
		{"float tenth", 0.1, `0.1`},
		{"float third", 1.0 / 3, `0.3333333333333333`},
		{"float 1e-4", 1e-4, `0.0001`},
		{"float 1e-5", 1e-5, `1e-05`},
		{"float 2.5e-7", 2.5e-7, `2.5e-07`},
		{"float 1e15", 1e15, `1000000000000000.0`},
		{"float 1e16", 1e16, `1e+16`},
		{"float 1.2345678901234568e17", 123456789012345678.0, `1.2345678901234568e+17`},
		{"float 1e100", 1e100, `1e+100`},
		{"float 1.5e300", 1.5e300, `1.5e+300`},
		{"float max", math.MaxFloat64, `1.7976931348623157e+308`},
		{"float smallest", 5e-324, `5e-324`},
		{"float -123.456", -123.456, `-123.456`},
		{"float 0.001", 0.001, `0.001`},
		{"float 12345.678", 12345.678, `12345.678`},
		{"float32", float32(0.1), `0.10000000149011612`},
		{"NaN", math.NaN(), `NaN`},
		{"inf", math.Inf(1), `Infinity`},
		{"-inf", math.Inf(-1), `-Infinity`},
		{"string plain", "hello world", `"hello world"`},
		{"string slash", "a/b", `"a/b"`},
		{"string quotes", `say "hi" \ ok`, `"say \"hi\" \\ ok"`},
		{"string short escapes", "\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"string control", "\x00\x01\x1f\x7f", `"\u0000\u0001\u001f\u007f"`},
		{"string latin", "héllo", `"h\u00e9llo"`},
		{"string bmp", "✓ €", `"\u2713 \u20ac"`},
		{"string astral", "😀", `"\ud83d\ude00"`},
		{"string invalid utf8", "a\xffb\xc3", `"a\ufffdb\ufffd"`},
		{"string surrogate bytes", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"named string", named("x"), `"x"`},
		{"empty map", map[string]any{}, `{}`},
		{"nil map", map[string]any(nil), `{}`},
		{"empty list", []any{}, `[]`},
		{"nil string slice", []string(nil), `[]`},
		{"list", []any{1, "a", nil}, "[\n  1,\n  \"a\",\n  null\n]"},
		{"sorted keys", map[string]any{"b": 1, "a": 2, "B": 3, "é": 4, "😀": 5, "\uffff": 6},
			"{\n  \"B\": 3,\n  \"a\": 2,\n  \"b\": 1,\n  \"\\u00e9\": 4,\n  \"\\uffff\": 6,\n  \"\\ud83d\\ude00\": 5\n}"},
		{"nested", map[string]any{"a": map[string]any{"b": []any{}, "c": map[string]any{}}, "d": []any{[]any{1.5}}},
			"{\n  \"a\": {\n    \"b\": [],\n    \"c\": {}\n  },\n  \"d\": [\n    [\n      1.5\n    ]\n  ]\n}"},
		{"map string string", map[string]string{"Z": "1", "A": "2"}, "{\n  \"A\": \"2\",\n  \"Z\": \"1\"\n}"},
		{"map int keys", map[int]string{10: "a", 2: "b"}, "{\n  \"10\": \"a\",\n  \"2\": \"b\"\n}"},
		{"float slice", []float64{1, 0.5}, "[\n  1.0,\n  0.5\n]"},
		{"array", [2]string{"Linux", "x"}, "[\n  \"Linux\",\n  \"x\"\n]"},
		{"pointer", new(3.0), `3.0`},
		{"nil pointer", (*float64)(nil), `null`},
		{"struct via tags", tagged{"u", "c", true}, "{\n  \"commit\": \"c\",\n  \"dirty\": true,\n  \"url\": \"u\"\n}"},
		{"raw message", json.RawMessage(`{"b":[1,2.50],"a":null}`), "{\n  \"a\": null,\n  \"b\": [\n    1,\n    2.5\n  ]\n}"},
		{"time", time.Date(2026, 11, 27, 3, 7, 12, 269319999, time.UTC), `"2026-11-27T03:07:12.269319"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("Marshal(%#v)\n got: %s\nwant: %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	for _, v := range []any{make(chan int), map[float64]int{1: 1}, func() {}} {
		if _, err := Marshal(v); err == nil {
			t.Errorf("Marshal(%T) succeeded", v)
		}
	}
	// A cycle is reported, not a stack overflow.
	m := map[string]any{}
	m["self"] = m
	if _, err := Marshal(m); err == nil {
		t.Error("Marshal of a cyclic map succeeded")
	}
}

func TestAppendValueDepth(t *testing.T) {
	got, err := AppendValue([]byte("x: "), []any{1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := "x: [\n      1\n    ]"; string(got) != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestFormatTime(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 27, 3, 7, 12, 269319000, time.UTC), "2026-11-27T03:07:12.269319"},
		// Deviation: microseconds are written also when they are 0.
		{time.Date(2026, 11, 27, 3, 7, 12, 0, time.UTC), "2026-11-27T03:07:12.000000"},
		// Truncated, not rounded, like utcnow() has no more digits.
		{time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC), "2026-01-02T03:04:05.999999"},
		// Converted to UTC.
		{time.Date(2026, 1, 2, 3, 4, 5, 1000, time.FixedZone("x", 3600)), "2026-01-02T02:04:05.000001"},
		{time.Date(33, 1, 2, 3, 4, 5, 0, time.UTC), "0033-01-02T03:04:05.000000"},
	}
	for _, tc := range tests {
		if got := FormatTime(tc.in); got != tc.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 11, 27, 3, 7, 12, 269319000, time.UTC)
	for _, s := range []string{
		"2026-11-27T03:07:12.269319",
		"2026-11-27 03:07:12.269319",
		"2026-11-27T03:07:12.269319Z",
		"2026-11-27T04:07:12.269319+01:00",
	} {
		got, err := ParseTime(s)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", s, err)
			continue
		}
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, want %v in UTC", s, got, want)
		}
	}
	got, err := ParseTime("2026-11-27T03:07:12")
	if err != nil || !got.Equal(want.Truncate(time.Second)) {
		t.Errorf("ParseTime without fraction = %v, %v", got, err)
	}
	if _, err := ParseTime("yesterday"); err == nil {
		t.Error("ParseTime accepted garbage")
	}
	// Round trip.
	now := time.Now()
	back, err := ParseTime(FormatTime(now))
	if err != nil || !back.Equal(now.UTC().Truncate(time.Microsecond)) {
		t.Errorf("round trip of %v gave %v, %v", now, back, err)
	}
}

func TestUnmarshal(t *testing.T) {
	v, err := Unmarshal([]byte(` {"a": [1, -2, 1.5, 1e-05, 100000000000000000000, NaN, Infinity, -Infinity, true, false, null],
		"s": "x\u00e9\ud83d\ude00\n\/\"", "lone": "\ud800x", "a": "dup"} `))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["a"] != "dup" {
		t.Errorf("duplicate key: got %v, want the last value", m["a"])
	}
	if got, want := m["s"], "xé😀\n/\""; got != want {
		t.Errorf("s = %q, want %q", got, want)
	}
	if got, want := m["lone"], "\ufffdx"; got != want {
		t.Errorf("lone = %q, want %q", got, want)
	}
	v, _ = Unmarshal([]byte(`[1, -2, 1.5, 1e-05, 100000000000000000000, NaN, Infinity, -Infinity, 1e999]`))
	l := v.([]any)
	if l[0] != int64(1) || l[1] != int64(-2) || l[2] != 1.5 || l[3] != 1e-05 {
		t.Errorf("numbers: %#v", l[:4])
	}
	if l[4] != json.Number("100000000000000000000") {
		t.Errorf("big int: %#v", l[4])
	}
	if f := l[5].(float64); !math.IsNaN(f) {
		t.Errorf("NaN: %v", f)
	}
	if !math.IsInf(l[6].(float64), 1) || !math.IsInf(l[7].(float64), -1) || !math.IsInf(l[8].(float64), 1) {
		t.Errorf("infinities: %#v", l[6:])
	}
	for _, bad := range []string{``, `{`, `[1,]`, `{"a" 1}`, `"abc`, `01x`, `-`, `1.`, `1e`, `tru`, `[1] 2`, `"\x"`, `"\u12"`, `{1: 2}`} {
		if _, err := Unmarshal([]byte(bad)); err == nil {
			t.Errorf("Unmarshal(%q) succeeded", bad)
		}
	}
}

// findGolden returns the file-storage records Python Sacred wrote.
func findGolden(t testing.TB) []string {
	root := observertest.Golden(t)
	return []string{filepath.Join(root, "fs"), filepath.Join(root, "fs-extra")}
}

// TestGoldenBytes decodes every JSON file Python wrote and encodes it again:
// the bytes must be identical.
func TestGoldenBytes(t *testing.T) {
	n := 0
	for _, dir := range findGolden(t) {
		files, _ := filepath.Glob(filepath.Join(dir, "*", "*.json"))
		for _, f := range files {
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			v, err := Unmarshal(want)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			got, err := Marshal(v)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: re-encoded bytes differ\n got: %.300s\nwant: %.300s", f, got, want)
			}
			// The same through encoding/json with UseNumber.
			dec := json.NewDecoder(bytes.NewReader(want))
			dec.UseNumber()
			var w any
			if err := dec.Decode(&w); err == nil {
				got2, err := Marshal(w)
				if err != nil || !bytes.Equal(got2, want) {
					t.Errorf("%s: re-encoded (UseNumber) bytes differ: %v", f, err)
				}
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no golden JSON files found")
	}
	t.Logf("%d golden files re-encoded byte for byte", n)
}

// TestAgainstPython compares with the real json.dump when python3 is there.
func TestAgainstPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	// Python generates values, dumps them with sort_keys/indent=2 and also
	// emits a repr-free transport form (floats as hex) so Go can rebuild the
	// exact same values.
	script := `
import json, random, sys, math, struct
random.seed(12345)
def rfloat():
    k = random.random()
    if k < 0.3:
        return struct.unpack('<d', struct.pack('<Q', random.getrandbits(64)))[0]
    if k < 0.6:
        return random.uniform(-1, 1) * 10 ** random.randint(-30, 30)
    if k < 0.8:
        return float(random.randint(-10**17, 10**17))
    return round(random.uniform(-1000, 1000), random.randint(0, 8))
def rstr():
    n = random.randint(0, 8)
    return ''.join(chr(random.choice([random.randint(0, 0x7f), random.randint(0x80, 0xd7ff), random.randint(0xe000, 0x10ffff)])) for _ in range(n))
out = []
for i in range(3000):
    f = rfloat()
    if math.isnan(f) or math.isinf(f):
        continue
    s = rstr()
    n = random.randint(-2**70, 2**70)
    v = {"f": f, "s": s, "n": n, s: [f, n]}
    dumped = json.dumps(v, sort_keys=True, indent=2)
    out.append({"hex": f.hex(), "s": s, "n": str(n), "dumped": dumped})
json.dump(out, sys.stdout)
`
	cmd := exec.Command(py, "-c", script)
	raw, err := cmd.Output()
	if err != nil {
		t.Skipf("python3 failed: %v", err)
	}
	var cases []struct {
		Hex, S, N, Dumped string
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		f, err := parseHexFloat(c.Hex)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		n, _ := new(big.Int).SetString(c.N, 10)
		v := map[string]any{"f": f, "s": c.S, "n": n, c.S: []any{f, n}}
		got, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.Dumped {
			t.Fatalf("case %d (%s): got\n%s\nwant\n%s", i, c.Hex, got, c.Dumped)
		}
	}
	t.Logf("%d random values identical to Python's json.dumps", len(cases))
}

// parseHexFloat reads Python's float.hex() form, e.g. "-0x1.8p+1".
func parseHexFloat(s string) (float64, error) {
	switch s {
	case "inf":
		return math.Inf(1), nil
	case "-inf":
		return math.Inf(-1), nil
	case "nan":
		return math.NaN(), nil
	}
	var f big.Float
	f.SetPrec(200)
	if _, _, err := f.Parse(s, 0); err != nil {
		return 0, err
	}
	v, _ := f.Float64()
	if strings.HasPrefix(s, "-") && v == 0 {
		return math.Copysign(0, -1), nil
	}
	return v, nil
}

// FuzzRoundTrip checks that what Marshal writes is JSON that encoding/json
// reads back to the same value (when there are no NaN/Inf), and that
// Unmarshal reads it back exactly.
func FuzzRoundTrip(f *testing.F) {
	f.Add("hello", 1.5, int64(3), []byte("x"))
	f.Add("\xff\x00é😀\"\\/", math.Copysign(0, -1), int64(-1), []byte("\n\r\t"))
	f.Add("", 1e16, int64(math.MaxInt64), []byte{})
	f.Add("k", 1e-05, int64(0), []byte("\x7f"))
	f.Fuzz(func(t *testing.T, s string, x float64, n int64, b []byte) {
		v := map[string]any{
			"s":      s,
			"k_" + s: []any{x, n, string(b)},
			"n":      n,
			"x":      x,
			"kv":     map[string]any{string(b): s},
		}
		out, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range out {
			if c >= 0x80 {
				t.Fatalf("non-ASCII byte in output: %q", out)
			}
		}
		if bytes.HasSuffix(out, []byte("\n")) {
			t.Fatal("trailing newline")
		}
		back, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("Unmarshal of our own output: %v\n%s", err, out)
		}
		again, err := Marshal(back)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not stable under Unmarshal/Marshal: %v\n%s\n%s", err, out, again)
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return
		}
		var std any
		if err := json.Unmarshal(out, &std); err != nil {
			t.Fatalf("encoding/json rejects our output: %v\n%s", err, out)
		}
		// What encoding/json gives for the original value, with strings
		// made valid the way we document.
		want := map[string]any{
			"s":  validUTF8(s),
			"n":  float64(n),
			"x":  x,
			"kv": map[string]any{validUTF8(string(b)): validUTF8(s)},
		}
		want["k_"+validUTF8(s)] = []any{x, float64(n), validUTF8(string(b))}
		if !reflect.DeepEqual(normalizeNegZero(std), normalizeNegZero(want)) {
			t.Fatalf("round trip differs:\n got %#v\nwant %#v", std, want)
		}
	})
}

func normalizeNegZero(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNegZero(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeNegZero(e)
		}
	case float64:
		if x == 0 {
			return 0.0
		}
	}
	return v
}
