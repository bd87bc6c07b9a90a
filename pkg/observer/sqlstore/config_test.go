package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

func TestParseConfig(t *testing.T) {
	wd, _ := os.Getwd()
	good := []struct {
		url                string
		dialect            string
		user, pw, host, db string
		port               int
		query              string
	}{
		{"postgresql://user:pw@host:5432/db", "postgresql", "user", "pw", "host", "db", 5432, ""},
		{"postgresql+psycopg2://user:pw@host/db?sslmode=require", "postgresql", "user", "pw", "host", "db", 0, "sslmode=require"},
		{"postgres://u@127.0.0.1/test", "postgresql", "u", "", "127.0.0.1", "test", 0, ""},
		{"postgresql://u:p%40ss%3Aw%2Fd@h/db", "postgresql", "u", "p@ss:w/d", "h", "db", 0, ""},
		{"postgresql://u:p@ss@h/db", "postgresql", "u", "p@ss", "h", "db", 0, ""},
		{"postgresql://u@[::1]:5433/db", "postgresql", "u", "", "::1", "db", 5433, ""},
		{"mysql://root@127.0.0.1:3306/test", "mysql", "root", "", "127.0.0.1", "test", 3306, ""},
		{"mysql+pymysql://a:b@h/d?charset=utf8mb4", "mysql", "a", "b", "h", "d", 0, "charset=utf8mb4"},
		{"mariadb://a:b@h:1/d", "mysql", "a", "b", "h", "d", 1, ""},
		{"MySQL+MySQLdb://a@h/d", "mysql", "a", "", "h", "d", 0, ""},
		{"sqlite:///relative.db", "sqlite", "", "", "", filepath.Join(wd, "relative.db"), 0, ""},
		{"sqlite:////abs/path.db", "sqlite", "", "", "", "/abs/path.db", 0, ""},
		{"sqlite+pysqlite:///a%20b.db", "sqlite", "", "", "", filepath.Join(wd, "a b.db"), 0, ""},
	}
	for _, g := range good {
		c, err := ParseConfig(g.url)
		if err != nil {
			t.Errorf("%s: %v", g.url, err)
			continue
		}
		if c.Dialect() != g.dialect || c.User != g.user || c.Password != g.pw || c.Host != g.host ||
			c.Database != g.db || c.Port != g.port || c.Query.Encode() != g.query {
			t.Errorf("%s: got %s %q %q %q %q %d %q", g.url, c.Dialect(), c.User, c.Password, c.Host, c.Database, c.Port, c.Query.Encode())
		}
	}

	bad := []struct{ url, msg string }{
		{"", "the URL is empty"},
		{"runs.db", `missing "://"`},
		{"oracle://scott:tiger@h/db", `unknown dialect "oracle"`},
		{"sqlite://", "in-memory SQLite database"},
		{"sqlite:///:memory:", "in-memory SQLite database"},
		{"sqlite://host/x.db", "a host is not allowed"},
		{"sqlite:///dir/", "names a directory"},
		{"sqlite:///x.db?mode=ro", `unsupported option "mode" (sqlite takes no options)`},
		{"postgresql://u:tiger@h", "no database name"},
		{"postgresql://u:tiger@h/", "no database name"},
		{"postgresql://u:tiger@h:99999/db", `the port "99999"`},
		{"postgresql://u:tiger@h:abc/db", `the port "abc"`},
		{"postgresql://u:ti%zzger@h/db", "bad %-escape in the password"},
		{"postgresql://u%zz:tiger@h/db", "bad %-escape in the user name"},
		{"postgresql://u:tiger@[::1/db", `unclosed "["`},
		{"postgresql://u:tiger@h/db?frobnicate=1", `unsupported option "frobnicate" for postgresql`},
		{"postgresql://u:tiger@h/a/b", `contains "/"`},
		{"mysql://u:tiger@h/db?charset=latin1", `charset "latin1" is not supported`},
		{"mysql://u:tiger@h/db\n", "control characters"},
	}
	for _, b := range bad {
		_, err := ParseConfig(b.url)
		if err == nil {
			t.Errorf("%q: no error", b.url)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, b.msg) {
			t.Errorf("%q: error %q does not say %q", b.url, msg, b.msg)
		}
		if strings.Contains(msg, "tiger") {
			t.Errorf("%q: error shows the password: %s", b.url, msg)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("%q: error is not one line: %q", b.url, msg)
		}
		if !errors.Is(err, errURL) {
			t.Errorf("%q: not an URL error", b.url)
		}
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"postgresql://u:secret@h/db":                      "postgresql://u:***@h/db",
		"postgresql://u@h/db":                             "postgresql://u@h/db",
		"mysql://u:se@cret@h/db":                          "mysql://u:***@h/db",
		"postgresql://h/db?password=secret&sslmode=x":     "postgresql://h/db?password=***&sslmode=x",
		"postgresql://u:secret@h/db?sslpassword=secret":   "postgresql://u:***@h/db?sslpassword=***",
		"sqlite:///runs.db":                               "sqlite:///runs.db",
		"not a url":                                       "not a url",
		"postgresql://u:secret@h/db?application_name=a@b": "postgresql://u:***@b",
	}
	for in, want := range cases {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	if got := observer.RedactValue("sql", "mysql://a:secret@h/d"); strings.Contains(got, "secret") {
		t.Errorf("registry redaction: %s", got)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"postgresql://u:pw@h:1/db?sslmode=x", "mysql://a@b/c", "sqlite:///x.db", "sqlite://", "x://", "postgresql://u:p@[::1]:5/d", "mysql://u:p%41@h/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		red := Redact(s)
		// The raw password segment, as both the parser and Redact see it.
		seg := ""
		if _, rest, ok := strings.Cut(s, "://"); ok {
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
					seg = pw
				}
			}
		}
		secret := len(seg) >= 4 && strings.Count(s, seg) == 1 && !strings.Contains("***", seg)
		if secret && strings.Contains(red, seg) {
			t.Fatalf("Redact(%q) = %q keeps the password %q", s, red, seg)
		}
		c, err := ParseConfig(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error for %q: %q", s, err)
			}
			if secret && strings.Contains(err.Error(), seg) {
				t.Fatalf("error for %q shows the password: %v", s, err)
			}
			return
		}
		if c.Password != "" && !strings.Contains(red, ":***@") {
			t.Fatalf("Redact(%q) = %q does not mask the password", s, red)
		}
		if c.Database == "" {
			t.Fatalf("%q parsed without a database", s)
		}
	})
}

// TestConnectErrors: unreachable servers and wrong passwords give one line
// without the password.
func TestConnectErrors(t *testing.T) {
	ctx := context.Background()
	urls := []string{
		"postgresql://u:Sup3rSecret@127.0.0.1:1/db",
		"mysql://u:Sup3rSecret@127.0.0.1:1/db",
		"sqlite:///" + filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"),
	}
	if os.Getenv("SACRED_TEST_MYSQL_URL") == "" {
		// Root has an empty password on the test server: any other is wrong.
		urls = append(urls, "mysql://root:Sup3rSecret@127.0.0.1:3306/test")
	}
	for _, u := range urls {
		_, err := newURL(ctx, u)
		if err == nil {
			t.Errorf("%s: no error", Redact(u))
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "Sup3rSecret") || strings.Contains(msg, "\n") {
			t.Errorf("%s: bad error %q", Redact(u), msg)
		}
		t.Logf("%s", msg)
	}
}

// TestPasswordNotStored connects with a password (PostgreSQL trusts any)
// and checks that no stored value and no message carries it.
func TestPasswordNotStored(t *testing.T) {
	url := backends()[1].url(t)
	withPW := strings.Replace(url, "postgresql://postgres@", "postgresql://postgres:Sup3rSecret@", 1)
	if withPW == url {
		t.Skip("the PostgreSQL URL has a form this test does not rewrite")
	}
	o := newObs(t, withPW)
	if strings.Contains(o.Name(), "Sup3rSecret") {
		t.Errorf("name %q", o.Name())
	}
	ev := startEvent(t)
	ev.Meta.Options = map[string]any{"--sql": Redact(withPW)}
	id, err := o.Started(ctx, ev)
	must(t, err)
	must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: t0}))
	for _, tb := range []string{"run", "run_extra", "experiment", "host"} {
		rows, err := o.db.Query("SELECT * FROM " + tb)
		must(t, err)
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			must(t, rows.Scan(ptrs...))
			for i, v := range vals {
				if strings.Contains(string(v), "Sup3rSecret") {
					t.Errorf("%s.%s holds the password", tb, cols[i])
				}
			}
		}
		rows.Close()
	}
	run, err := newReader(t, withPW).Run(ctx, id)
	must(t, err)
	if strings.Contains(run.Meta.Options["--sql"].(string), "Sup3rSecret") {
		t.Error("meta options hold the password")
	}
}
