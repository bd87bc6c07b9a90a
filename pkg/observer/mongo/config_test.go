package mongo

import (
	"errors"
	"strings"
	"testing"
)

func TestParseConfigSacredForms(t *testing.T) {
	type want struct {
		uri, db, runs, metrics string
		overwrite              int64
		priority               int
		hostOnly               bool
	}
	def := "mongodb://localhost:27017/"
	for _, tc := range []struct {
		in string
		want
	}{
		// Sacred's table (record-format.md §5.5).
		{"mydb", want{def, "mydb", "runs", "metrics", 0, 30, false}},
		{"localhost:27017", want{"mongodb://localhost:27017/", "sacred", "runs", "metrics", 0, 30, true}},
		{"localhost:27017:mydb", want{"mongodb://localhost:27017/", "mydb", "runs", "metrics", 0, 30, false}},
		{"mydb.mycoll", want{def, "mydb", "mycoll", "metrics", 0, 30, false}},
		{"mydb.coll:7!-3", want{def, "mydb", "coll", "metrics", 7, -3, false}},
		// The ambiguity: Sacred's host-only alternative wins.
		{"mydb.mycoll:5", want{"mongodb://mydb.mycoll:5/", "sacred", "runs", "metrics", 0, 30, true}},
		// Not a hostname (underscore), so the full form: an overwrite.
		{"my_db.coll:5", want{def, "my_db", "coll", "metrics", 5, 30, false}},
		{"mydb!50", want{def, "mydb", "runs", "metrics", 0, 50, false}},
		{"mydb!", want{def, "mydb", "runs", "metrics", 0, 30, false}},
		{"localhost", want{def, "localhost", "runs", "metrics", 0, 30, false}},
		{"db-host.example.com:27018:exp_1.runs2:123456789012!0", want{"mongodb://db-host.example.com:27018/", "exp_1", "runs2", "metrics", 123456789012, 0, false}},
		{"_x#%&'()+-;=@[]^_{}", want{def, "_x#%&'()+-;=@[]^_{}", "runs", "metrics", 0, 30, false}},
		{"mydb?collection_prefix=exp", want{def, "mydb", "exp_runs", "exp_metrics", 0, 30, false}},
		{"h:1:mydb?priority=7&overwrite=3", want{"mongodb://h:1/", "mydb", "runs", "metrics", 3, 7, false}},
		// URIs.
		{"mongodb://localhost", want{"mongodb://localhost/", "sacred", "runs", "metrics", 0, 30, false}},
		{"mongodb://h1:27017,h2:27017/lab?replicaSet=rs0&tls=true", want{"mongodb://h1:27017,h2:27017/?replicaSet=rs0&tls=true", "lab", "runs", "metrics", 0, 30, false}},
		{"mongodb://user:pw@host:27017/lab?authSource=admin", want{"mongodb://user:pw@host:27017/?authSource=admin", "lab", "runs", "metrics", 0, 30, false}},
		{"mongodb://user:pw@host/lab", want{"mongodb://user:pw@host/?authSource=lab", "lab", "runs", "metrics", 0, 30, false}},
		{"mongodb+srv://u:p%40ss@cluster0.example.net/exp?retryWrites=true&w=majority&collection_prefix=p1&priority=40", want{"mongodb+srv://u:p%40ss@cluster0.example.net/?retryWrites=true&w=majority&authSource=exp", "exp", "p1_runs", "p1_metrics", 0, 40, false}},
		{"mongodb://h/?tlsCAFile=/etc/ca.pem&tlsCertificateKeyFile=/etc/me.pem", want{"mongodb://h/?tlsCAFile=/etc/ca.pem&tlsCertificateKeyFile=/etc/me.pem", "sacred", "runs", "metrics", 0, 30, false}},
		{"mongodb://h/lab?overwrite=12", want{"mongodb://h/", "lab", "runs", "metrics", 12, 30, false}},
	} {
		c, err := ParseConfig(tc.in)
		if err != nil {
			t.Errorf("ParseConfig(%q): %v", tc.in, err)
			continue
		}
		got := want{c.URI, c.DB, c.Runs, c.Metrics, c.Overwrite, c.Priority, c.HostOnly}
		if got != tc.want {
			t.Errorf("ParseConfig(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "empty -m value"},
		{"1db", "cannot read -m value \"1db\""},
		{"my db", "space or control character"},
		{"mydb.", "cannot read"},
		{"host:99999", "not between 1 and 65535"},
		{"h:0:db", "not between 1 and 65535"},
		{"mydb.coll:1234567890123", "cannot read"},
		{"mydb!x", "cannot read"},
		{"a234567890123456789012345678901234567890123456789012345678901234567890", "at most 64 characters"},
		{"mydb?foo=1", `unknown option "foo"`},
		{"mydb?collection_prefix=1x", "collection_prefix \"1x\""},
		{"mydb.fs.files", "cannot read"},
		{"mydb.omniboard_settings", "belongs to Omniboard"},
		{"mydb?priority=high", "priority \"high\""},
		{"mongodb://", "no host"},
		{"mongodb://user:@h/db", "empty password"},
		{"mongodb://h/a.b", "not valid for MongoDB"},
		{"mongodb://u:p%zz@h/db", "not percent-encoded"},
		{"mongodb://h/db?overwrite=-1", "positive run id"},
	} {
		_, err := ParseConfig(tc.in)
		if err == nil {
			t.Errorf("ParseConfig(%q) succeeded, want an error with %q", tc.in, tc.msg)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseConfig(%q) = %q, want it to contain %q", tc.in, err, tc.msg)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseConfig(%q): error spans lines: %q", tc.in, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"mydb", "mydb"},
		{"localhost:27017:db", "localhost:27017:db"},
		{"mongodb://host/db", "mongodb://host/db"},
		{"mongodb://alice:s3cret@host/db", "mongodb://alice:xxxxx@host/db"},
		{"mongodb://alice:p@ss:w@rd@h1,h2/db?authSource=admin", "mongodb://alice:xxxxx@h1,h2/db?authSource=admin"},
		{"mongodb://h/?tlsCertificateKeyFilePassword=kpw&tls=true", "mongodb://h/?tlsCertificateKeyFilePassword=xxxxx&tls=true"},
		{"mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok", "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=xxxxx"},
		{"mongodb+srv://bob@cluster/db", "mongodb+srv://bob@cluster/db"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestParseConfigKeepsSecretsOutOfErrors checks every error path that sees a
// URI with a password.
func TestParseConfigKeepsSecretsOutOfErrors(t *testing.T) {
	for _, in := range []string{
		"mongodb://alice:TopSecret1@/db",
		"mongodb://alice:TopSecret1@h/bad.db",
		"mongodb://alice:TopSecret1@h/db?collection_prefix=9",
		"mongodb://alice:TopSecret1@h/db?priority=x",
		"mongodb://alice:TopSecret1%zz@h/db",
	} {
		_, err := ParseConfig(in)
		if err == nil {
			t.Fatalf("ParseConfig(%q) succeeded", in)
		}
		if strings.Contains(err.Error(), "TopSecret1") {
			t.Errorf("ParseConfig error leaks the password: %v", err)
		}
	}
	c, err := ParseConfig("mongodb://alice:Top%2FSecret@h/db?tlsCertificateKeyFilePassword=KeyPass9")
	if err != nil {
		t.Fatal(err)
	}
	inner := errors.New("auth failed for Top/Secret and Top%2FSecret with KeyPass9")
	got := c.scrub(inner)
	for _, s := range []string{"Top/Secret", "Top%2FSecret", "KeyPass9"} {
		if strings.Contains(got.Error(), s) {
			t.Errorf("scrub left %q in %q", s, got)
		}
	}
	if !errors.Is(got, inner) {
		t.Error("scrub lost the error chain")
	}
	if strings.Contains(c.Display, "Secret") || strings.Contains(c.Display, "KeyPass9") {
		t.Errorf("Display leaks a secret: %s", c.Display)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"mydb", "localhost:27017", "h:1:db.c:5!-3", "mydb.mycoll:5", "mongodb://u:pw@h/db?x=y", "mongodb+srv://h", "db?collection_prefix=p", "1db", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseConfig(in)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.ContainsAny(in, "\n") {
				t.Errorf("multi-line error for %q: %q", in, err)
			}
			return
		}
		if c.DB == "" || c.Runs == "" || c.Metrics == "" {
			t.Fatalf("ParseConfig(%q) gave empty names: %+v", in, c)
		}
		if !strings.HasPrefix(c.URI, "mongodb://") && !strings.HasPrefix(c.URI, "mongodb+srv://") {
			t.Fatalf("ParseConfig(%q) gave URI %q", in, c.URI)
		}
		if strings.ContainsAny(c.DB, "/\\. \"$\x00") {
			t.Fatalf("ParseConfig(%q) accepted database %q", in, c.DB)
		}
		// The redacted form of an accepted URI with a password hides it.
		if isURI(in) {
			if _, pw, ok := strings.Cut(strings.SplitN(strings.SplitN(in, "://", 2)[1], "@", 2)[0], ":"); ok && strings.Contains(in, "@") && len(pw) > 2 {
				if strings.Contains(c.Display, ":"+pw+"@") {
					t.Fatalf("Display %q shows the password of %q", c.Display, in)
				}
			}
		}
		// Parsing is deterministic.
		c2, err := ParseConfig(in)
		if err != nil || c2.URI != c.URI || c2.DB != c.DB || c2.Runs != c.Runs {
			t.Fatalf("ParseConfig(%q) not deterministic", in)
		}
	})
}
