package pyfmt

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// pyCases are templates with their variables as JSON; Python's
// str.format(**json.loads(vars)) is the reference.
var pyCases = []struct{ tmpl, vars string }{
	{":white_check_mark: *{experiment[name]}* completed after _{elapsed_time}_ with result=`{result}`",
		`{"experiment": {"name": "train"}, "elapsed_time": "1 minute, 5 seconds", "result": 0.93}`},
	{"{result}", `{"result": null}`},
	{"{result}", `{"result": true}`},
	{"{result}", `{"result": [1, 2.5, "a'b", {"k": null}]}`},
	{"{result}", `{"result": {"a": "x", "b": 1}}`},
	{"{result}", `{"result": 1e-05}`},
	{"{result}", `{"result": 1e16}`},
	{"{result}", `{"result": 123456789012345678901234567890}`},
	{"{result!r} {result!s} {result!a}", `{"result": "héllo\n\"q\""}`},
	{"{result!r}", `{"result": "it's"}`},
	{"{result!r}", `{"result": "it's \"x\""}`},
	{"{config[lr]:.3f} {config[lr]:e} {config[lr]:g} {config[lr]:%}", `{"config": {"lr": 0.0012345}}`},
	{"{config[n]:05d} {config[n]:,} {config[n]:_} {config[n]:x} {config[n]:#x} {config[n]:#b} {config[n]:o}", `{"config": {"n": 1234567}}`},
	{"{config[n]:+d} {config[n]: d} {config[m]:+d} {config[m]:=+8d}", `{"config": {"n": 42, "m": -42}}`},
	{"[{x:>10}] [{x:<10}] [{x:^10}] [{x:*^9}] [{x:.2}] [{x:010}]", `{"x": "abc"}`},
	{"[{f:10.2f}] [{f:<10.2f}] [{f:^+12.3e}] [{f:010.3f}] [{f:,.2f}]", `{"f": -12345.678}`},
	{"{f:.3} {g:.3} {h:.3} {i:.3} {j:.1} {k:.5}", `{"f": 1234.5, "g": 123.0, "h": 12.0, "i": 0.5, "j": 0.0001, "k": 1e-07}`},
	{"{f:g} {g:g} {h:g} {i:G} {j:.2g} {k:.10g}", `{"f": 100000.0, "g": 1000000.0, "h": 0.0001, "i": 1.5e-10, "j": 0.000123, "k": 3.14159}`},
	{"{f:f} {f:%} {f:e} {f:>8}", `{"f": 1}`},
	{"{a:.1} {a:.3} {a:.5} {b:.1} {b:.2} {c:.2} {c:.3} {d:.3} {e:.1} {e:.2} {z:.1} {z:.2} {y:.1}", `{"a": 99.96, "b": 1.0, "c": 10.0, "d": 9.99, "e": 123456.0, "z": 0.0, "y": 0.0001}`},
	{"{b:d} {b:>6} {b}", `{"b": true}`},
	{"{l[0]} {l[2][x]} {s[1]}", `{"l": ["a", "b", {"x": 3}], "s": "xyz"}`},
	{"{{literal}} {x} }}", `{"x": 1}`},
	{"{x:ü>5}", `{"x": 1}`},
	{"{config[seed]}", `{"config": {"seed": 987654321}}`},
	{"{n:.2f}", `{"n": null}`},
	{"{x:d}", `{"x": 1.5}`},
	{"{x:+}", `{"x": "s"}`},
	{"{x[k]}", `{"x": {"j": 1}}`},
	{"{x[5]}", `{"x": [1]}`},
}

// TestAgainstPython formats every case here and with python3 and wants the
// same text (or an error on both sides).
func TestAgainstPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required under CI")
		}
		t.Skip("python3 not found: the reference formatter is Python's")
	}
	type pyCase struct {
		Tmpl string `json:"tmpl"`
		Vars string `json:"vars"`
	}
	var in []pyCase
	for _, c := range pyCases {
		in = append(in, pyCase{c.tmpl, c.vars})
	}
	input, _ := json.Marshal(in)
	script := `
import json, sys
out = []
for c in json.load(sys.stdin):
    try:
        out.append({"ok": True, "text": c["tmpl"].format(**json.loads(c["vars"]))})
    except Exception as e:
        out.append({"ok": False, "text": type(e).__name__ + ": " + str(e)})
json.dump(out, sys.stdout)
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(string(input))
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var want []struct {
		OK   bool   `json:"ok"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("python3's answer: %v", err)
	}
	for i, c := range pyCases {
		v, err := sacredjson.Unmarshal([]byte(c.vars))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		got, gerr := format(c.tmpl, v.(map[string]any))
		w := want[i]
		switch {
		case w.OK && gerr != nil:
			t.Errorf("%q with %s: error %v, Python gives %q", c.tmpl, c.vars, gerr, w.Text)
		case !w.OK && gerr == nil:
			t.Errorf("%q with %s: %q, Python fails: %s", c.tmpl, c.vars, got, w.Text)
		case w.OK && got != w.Text:
			t.Errorf("%q with %s:\n got %q\nwant %q", c.tmpl, c.vars, got, w.Text)
		case !w.OK:
			t.Logf("%q: both fail; ours: %v; Python: %s", c.tmpl, gerr, w.Text)
		}
	}
}

func format(tmpl string, vars map[string]any) (string, error) {
	t, err := Parse(tmpl)
	if err != nil {
		return "", err
	}
	return t.Format(vars)
}

func TestParseErrors(t *testing.T) {
	for _, tmpl := range []string{
		"{ex_info[name] completed",       // the seed docs' example: unclosed
		"a } b",                          // single }
		"{}", "{0}", "{experiment.name}", // positional, attribute
		"{x!q}", "{x:{w}}", "{x[]}", "{1x}",
	} {
		if _, err := Parse(tmpl); err == nil {
			t.Errorf("Parse(%q) = nil error", tmpl)
		} else {
			t.Logf("Parse(%q): %v", tmpl, err)
		}
	}
}

func TestCheckSpec(t *testing.T) {
	for _, s := range []string{".", "zz", ">5.2fx", "5.2q"} {
		if err := CheckSpec(s, false); err == nil {
			t.Errorf("CheckSpec(%q) = nil", s)
		}
	}
	for _, s := range []string{"", ">10", ".3f", "%Y"} {
		if err := CheckSpec(s, s == "%Y"); err != nil {
			t.Errorf("CheckSpec(%q): %v", s, err)
		}
	}
	if err := CheckSpec("%Q", true); err == nil {
		t.Error("CheckSpec(%Q) for a datetime = nil")
	}
}

func TestFieldsAndLookupErrors(t *testing.T) {
	tm, err := Parse("{experiment[name]} {config[lr]:.2f} {a[b][0]!r}")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range tm.Fields() {
		names = append(names, f.Name+"/"+strings.Join(f.Keys, "/"))
	}
	if got := strings.Join(names, " "); got != "experiment/name config/lr a/b/0" {
		t.Errorf("fields: %s", got)
	}
	_, err = tm.Format(map[string]any{"experiment": map[string]any{"name": "x"}, "config": map[string]any{}, "a": nil})
	if err == nil || !strings.Contains(err.Error(), "{config[lr]:.2f}: config has no key 'lr'") {
		t.Errorf("missing key: %v", err)
	}
}

func TestDateTime(t *testing.T) {
	ts := time.Date(2026, 11, 27, 3, 7, 12, 269319_123, time.UTC)
	whole := time.Date(2026, 11, 27, 3, 7, 0, 0, time.UTC)
	for _, c := range []struct {
		tmpl string
		want string
	}{
		{"{t}", "2026-11-27 03:07:12.269319"},
		{"{w}", "2026-11-27 03:07:00"},
		{"{t!r}", "datetime.datetime(2026, 11, 27, 3, 7, 12, 269319)"},
		{"{w!r}", "datetime.datetime(2026, 11, 27, 3, 7)"},
		{"{t:%Y-%m-%d %H:%M:%S.%f %a %b %j %p %I%%}", "2026-11-27 03:07:12.269319 Fri Nov 331 AM 03%"},
		{"{s}", "[('train.py', 'abc'), ('x',)]"},
	} {
		got, err := format(c.tmpl, map[string]any{"t": ts, "w": whole, "s": []any{Tuple{"train.py", "abc"}, Tuple{"x"}}})
		if err != nil || got != c.want {
			t.Errorf("%s = %q, %v; want %q", c.tmpl, got, err, c.want)
		}
	}
}

func TestElapsed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 500_000, time.UTC)
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "less than a second"},
		{999_999 * time.Microsecond, "less than a second"},
		{time.Second, "1 second"},
		{60 * time.Second, "1 minute"},
		{time.Hour + 2*time.Minute + 5*time.Second, "1 hour, 2 minutes, 5 seconds"},
		{31*24*time.Hour + 5*time.Second, "1 month, 1 day, 5 seconds"},
		{2 * 365 * 24 * time.Hour, "2 years"},
		{-2 * time.Second, ""},
		{-500 * time.Millisecond, "less than a second"},
	} {
		if got := Elapsed(t0, t0.Add(c.d)); got != c.want {
			t.Errorf("Elapsed(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestElapsedAgainstPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	// Sacred's td_format, as in sacred/observers/base.py.
	script := `
import datetime, sys
def td_format(td_object):
    seconds = int(td_object.total_seconds())
    if seconds == 0:
        return "less than a second"
    periods = [("year", 60 * 60 * 24 * 365), ("month", 60 * 60 * 24 * 30), ("day", 60 * 60 * 24), ("hour", 60 * 60), ("minute", 60), ("second", 1)]
    strings = []
    for period_name, period_seconds in periods:
        if seconds >= period_seconds:
            period_value, seconds = divmod(seconds, period_seconds)
            strings.append("%s %s%s" % (period_value, period_name, "" if period_value == 1 else "s"))
    return ", ".join(strings)
for line in sys.stdin:
    print(td_format(datetime.timedelta(microseconds=int(line))))
`
	micros := []int64{0, 1, 999999, 1000000, 59999999, 3600000000, 3661000001, 2678405000000, 34128000000000, 31536000000000, 94694400123456}
	var in strings.Builder
	for _, m := range micros {
		in.WriteString(jsonInt(m) + "\n")
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, m := range micros {
		if got := Elapsed(t0, t0.Add(time.Duration(m)*time.Microsecond)); got != lines[i] {
			t.Errorf("%d µs: %q, Sacred says %q", m, got, lines[i])
		}
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
