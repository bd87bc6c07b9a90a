package query

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// show prints a syntax tree in a fully parenthesised form.
func show(n node) string {
	switch x := n.(type) {
	case *litNode:
		if s, ok := x.v.(string); ok {
			return fmt.Sprintf("%q", s)
		}
		if x.v == nil {
			return "null"
		}
		return fmt.Sprint(x.v)
	case *listNode:
		var p []string
		for _, e := range x.elems {
			p = append(p, show(&litNode{v: e}))
		}
		return "[" + strings.Join(p, " ") + "]"
	case *pathNode:
		return strings.Join(x.segs, "/")
	case *callNode:
		return x.fn + "(" + show(x.path) + ")"
	case *notNode:
		return "!" + show(x.x)
	case *andNode:
		return "(" + show(x.l) + " && " + show(x.r) + ")"
	case *orNode:
		return "(" + show(x.l) + " || " + show(x.r) + ")"
	case *cmpNode:
		return "(" + show(x.l) + " " + x.op + " " + show(x.r) + ")"
	}
	return "?"
}

func TestParseValid(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`config.lr > 0.01 && status == "COMPLETED"`, `((config/lr > 0.01) && (status == "COMPLETED"))`},
		{`name =~ "^mnist"`, `(name =~ "^mnist")`},
		{`result >= 0.9 || info.tag in ["a","b"]`, `((result >= 0.9) || (info/tag in ["a" "b"]))`},
		{`!(config.opt == "sgd")`, `!(config/opt == "sgd")`},
		{`metrics.loss.last < 0.2`, `(metrics/loss/last < 0.2)`},
		{`duration > 3600`, `(duration > 3600)`},
		{`start_time >= "2026-11-01"`, `(start_time >= "2026-11-01")`},
		// not binds looser than a comparison, as in Python
		{`!config.x == 1`, `!(config/x == 1)`},
		{`not config.debug`, `!config/debug`},
		{`a || b && c`, `(a || (b && c))`},
		{`a and b or not c`, `((a && b) || !c)`},
		{`(a || b) && c`, `((a || b) && c)`},
		{`config.layers.0.size == 3`, `(config/layers/0/size == 3)`},
		{`config["learning-rate"] < 1e-3`, `(config/learning-rate < 0.001)`},
		{`config.x == -2.5`, `(config/x == -2.5)`},
		{`0.5 < result`, `(0.5 < result)`},
		{`status not in ['FAILED', "DIED?"]`, `(status not in ["FAILED" "DIED?"])`},
		{`exists(info.tag) && info.tag != null`, `(exists(info/tag) && (info/tag != null))`},
		{`config.flag == TRUE`, `(config/flag == true)`},
		{`config.in == 1`, `(config/in == 1)`},
		{"config.s == \"a\\\"b\\u00e9\\n\"", `(config/s == "a\"bé\n")`},
		{"config.a == 1\n  && config.b == 2", `((config/a == 1) && (config/b == 2))`},
		{`config.é == 1`, `(config/é == 1)`},
		{`x in []`, `(x in [])`},
	} {
		n, err := parseExpr(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := show(n); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	for _, tc := range []struct {
		in        string
		line, col int
		msg       string
	}{
		{`config.lr >> 3`, 1, 12, `unexpected ">"; expected a value or a field`},
		{`config.lr = 3`, 1, 11, `unexpected character '=' ; compare with ==`},
		{`config.lr > `, 1, 13, `unexpected end of expression`},
		{``, 1, 1, `empty expression`},
		{`   `, 1, 1, `empty expression`},
		{`status == "COMPLETED`, 1, 11, `unterminated string`},
		{`(a == 1`, 1, 8, `expected ")" to close the "(" at column 1, found end of expression`},
		{`a == 1)`, 1, 7, `unexpected ")" after a complete condition`},
		{`a == 1 b == 2`, 1, 8, `unexpected "b" after a complete condition; join conditions with && or ||`},
		{`1 < a < 3`, 1, 7, `comparisons cannot be chained`},
		{`name =~ 3`, 1, 9, `=~ needs a regular expression in quotes`},
		{`name =~ "(unclosed"`, 1, 9, `invalid regular expression: missing closing )`},
		{`status in "FAILED"`, 1, 11, `in needs a list on its right`},
		{`x in [1, a]`, 1, 10, `a list holds only literal values`},
		{`x in [1 2]`, 1, 9, `expected "," or "]" in the list, found "2"`},
		{`system("rm -rf /")`, 1, 1, `unknown function "system"`},
		{`exists(1)`, 1, 8, `exists() takes a field`},
		{`config. == 1`, 1, 9, `expected a key after "."`},
		{`config[1] == 1`, 1, 8, `expected a key in quotes after "["`},
		{`a & b`, 1, 3, `write && or and`},
		{`- a`, 1, 1, `only a number can be negative`},
		{`config.x == 1.2.3`, 1, 13, `malformed number "1.2.3"`},
		{`"a\q" == x`, 1, 3, `unknown escape \q`},
		{"a == 1 &&\n  b === 2", 2, 7, `unexpected character '='`},
		{`config.é $ 2`, 1, 10, `unexpected character '$'`},
		{`&& a`, 1, 1, `unexpected "&&"; expected a value or a field`},
		{`a == and`, 1, 6, `unexpected "and"`},
	} {
		_, err := parseExpr(tc.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: got %v, want a syntax error", tc.in, err)
			continue
		}
		if se.Line != tc.line || se.Column != tc.col || !strings.Contains(strings.ReplaceAll(se.Msg, "' ;", "';"), strings.ReplaceAll(tc.msg, "' ;", "';")) {
			t.Errorf("%q:\n got line %d, column %d: %s\nwant line %d, column %d: ...%s...", tc.in, se.Line, se.Column, se.Msg, tc.line, tc.col, tc.msg)
		}
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	_, err := Compile(Options{Where: `config.lr > 0.01 && status = "COMPLETED"`})
	if err == nil {
		t.Fatal("no error")
	}
	want := `--where: line 1, column 28: unexpected character '='; compare with ==`
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Error("the error is more than one line")
	}
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatal("not a *SyntaxError")
	}
	wantCtx := "  config.lr > 0.01 && status = \"COMPLETED\"\n" +
		"                             ^"
	if se.Context() != wantCtx {
		t.Errorf("context:\n%s\nwant:\n%s", se.Context(), wantCtx)
	}
}

func TestParsePath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"result", "result"},
		{"config.lr", "config/lr"},
		{`metrics["val.loss"].last`, "metrics/val.loss/last"},
		{"config.layers.1", "config/layers/1"},
	} {
		p, err := parsePath(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := show(p); got != tc.want {
			t.Errorf("%s: got %s want %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "1", "config.lr > 1", "config..x", `"x"`} {
		if _, err := parsePath(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`config.lr > 0.01 && status == "COMPLETED"`, `name =~ "^mnist"`, `!(config.opt == "sgd")`,
		`result >= 0.9 || info.tag in ["a","b"]`, `exists(config["a b"])`, `"\u00e9" == x.0.y`, `-1e-5 < a`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseExpr(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%q: error of type %T", s, err)
			}
			if se.Line < 1 || se.Column < 1 {
				t.Fatalf("%q: position %d:%d", s, se.Line, se.Column)
			}
			_ = se.Context()
			return
		}
		// Whatever parses must compile and evaluate without panicking.
		q := &Query{where: n, deadAfter: DefaultDeadAfter}
		q.Match(sampleRun(), fixedNow)
		q.SQL(PostgreSQL, true, fixedNow)
		q.SQL(MySQL, true, fixedNow)
		q.SQL(SQLite, false, fixedNow)
		q.Mongo(fixedNow)
	})
}
