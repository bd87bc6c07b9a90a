package gcs

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

func TestParseConfig(t *testing.T) {
	for in, want := range map[string]Config{
		"gs://lab-runs/team/runs": {Bucket: "lab-runs", Prefix: "team/runs/"},
		"gs://lab_runs":           {Bucket: "lab_runs"},
		"GS://lab.runs//a/./b/":   {Bucket: "lab.runs", Prefix: "a/b/"},
		"lab-runs/basedir":        {Bucket: "lab-runs", Prefix: "basedir/"},
	} {
		got, err := ParseConfig(in)
		if err != nil || *got != want {
			t.Errorf("ParseConfig(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"s3://lab-runs/x":                          "must start with gs://",
		"gs://":                                    "has no bucket",
		"gs://Lab-Runs/x":                          "not a valid bucket name",
		"gs://my-google-runs/x":                    "not a valid bucket name",
		"gs://goog-runs/x":                         "not a valid bucket name",
		"gs://user:hunter2@lab-runs/x":             "must not hold credentials",
		"gs://lab-runs/x?X-Goog-Signature=hunter2": "must not have a query",
		"gs://lab-runs/../x":                       `must not contain ".."`,
	} {
		_, err := ParseConfig(in)
		if want == "" {
			if err != nil {
				t.Errorf("ParseConfig(%q): %v", in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseConfig(%q) = %v, want one line with %q and no secret", in, err, want)
		}
	}
	if got := Redact("gs://user:hunter2@lab-runs/x?sig=hunter2"); got != "gs://lab-runs/x" {
		t.Errorf("Redact = %q", got)
	}
}

// closedPort is a local port nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestBadInput: what New says about each problem before a run starts:
// one line that says what to do, never a secret.
func TestBadInput(t *testing.T) {
	srv := server(t)
	keyFile := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(keyFile, []byte(`{"type": "service_account", "private_key": "hunter2", "client_email": "x@y"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		value string
		env   map[string]string
		want  string
	}{
		{"missing bucket", "gs://no-such-bucket/x", nil, `bucket "no-such-bucket" does not exist at ` + srv.Host()},
		{"unreachable", "gs://lab-runs/x", map[string]string{EnvEmulator: closedPort(t)}, "cannot reach 127.0.0.1:"},
		{"broken key file", "gs://lab-runs/x", map[string]string{EnvEmulator: "", "GOOGLE_APPLICATION_CREDENTIALS": keyFile}, "GOOGLE_APPLICATION_CREDENTIALS"},
		{"missing key file", "gs://lab-runs/x", map[string]string{EnvEmulator: "", "GOOGLE_APPLICATION_CREDENTIALS": keyFile + ".gone"}, "GOOGLE_APPLICATION_CREDENTIALS"},
		// No credentials anywhere; the metadata server that would be
		// asked on Google's machines is a closed local port here.
		{"no credentials", "gs://lab-runs/x", map[string]string{EnvEmulator: "", "GOOGLE_APPLICATION_CREDENTIALS": "", "HOME": t.TempDir(), "CLOUDSDK_CONFIG": t.TempDir(), "GCE_METADATA_HOST": closedPort(t)}, "credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := New(ctx, mustParse(t, c.value), observer.Settings{})
			if err == nil {
				t.Fatal("New accepted it")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") || strings.Contains(msg, "hunter2") {
				t.Fatalf("New: %q, want one line with %q and no secret", msg, c.want)
			}
		})
	}
}
