package s3

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

func TestParseConfig(t *testing.T) {
	for in, want := range map[string]Config{
		"s3://lab-runs/team/runs": {Bucket: "lab-runs", Prefix: "team/runs/"},
		"s3://lab-runs":           {Bucket: "lab-runs"},
		"s3://lab-runs/":          {Bucket: "lab-runs"},
		"S3://lab.runs-2//a/./b/": {Bucket: "lab.runs-2", Prefix: "a/b/"},
		"lab-runs/basedir":        {Bucket: "lab-runs", Prefix: "basedir/"}, // Sacred's bucket/basedir
	} {
		got, err := ParseConfig(in)
		if err != nil || *got != want {
			t.Errorf("ParseConfig(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

// TestParseConfigRefuses: each bad value is one line that says what to
// do, and a secret in it is not repeated.
func TestParseConfigRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"https://lab-runs.s3.amazonaws.com/x":     "must start with s3://",
		"s3://":                                   "has no bucket",
		"s3:///runs":                              "has no bucket",
		"s3://Lab_Runs/x":                         "not a valid bucket name",
		"s3://ab/x":                               "not a valid bucket name",
		"s3://192.168.1.1/x":                      "not a valid bucket name",
		"s3://AKIAXYZ:hunter2@lab-runs/x":         "must not hold credentials",
		"s3://lab-runs/x?X-Amz-Signature=hunter2": "must not have a query",
		"s3://lab-runs/a/../b":                    `must not contain ".."`,
	} {
		_, err := ParseConfig(in)
		if err == nil {
			t.Errorf("ParseConfig(%q) accepted", in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, want) || strings.Contains(msg, "\n") || strings.Contains(msg, "hunter2") || strings.Contains(msg, "AKIAXYZ") {
			t.Errorf("ParseConfig(%q) = %q, want one line with %q and no secret", in, msg, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"s3://lab-runs/x":                         "s3://lab-runs/x",
		"s3://AKIAXYZ:hunter2@lab-runs/x":         "s3://lab-runs/x",
		"s3://lab-runs/x?X-Amz-Signature=hunter2": "s3://lab-runs/x",
		"lab-runs/x#frag":                         "lab-runs/x",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBadInput: what New says about each problem, before a run starts:
// one line that says what to do, never a key or token.
func TestBadInput(t *testing.T) {
	srv := server(t)
	const token = "FQoGZXIvYXdzEXAMPLEtoken"
	cases := []struct {
		name  string
		value string
		env   map[string]string
		flags map[string]string
		want  string
	}{
		{"missing bucket", "s3://no-such-bucket/x", nil, nil, `bucket "no-such-bucket" does not exist at http://127.0.0.1`},
		{"no credentials", "s3://lab-runs/x", map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, nil, "no AWS credentials found"},
		{"unknown key", "s3://lab-runs/x", map[string]string{"AWS_ACCESS_KEY_ID": "AKIAOTHERKEY00000000", "AWS_SESSION_TOKEN": token}, nil, "does not know the access key"},
		{"wrong region", "s3://lab-runs/x", nil, map[string]string{FlagRegion: "us-east-1"}, "is in region eu-west-3, not us-east-1: give --s3-region eu-west-3"},
		{"no region", "s3://lab-runs/x", map[string]string{"AWS_REGION": ""}, map[string]string{FlagEndpoint: ""}, "no region"},
		{"unreachable", "s3://lab-runs/x", nil, map[string]string{FlagEndpoint: "http://127.0.0.1:1"}, "cannot reach http://127.0.0.1:1"},
		{"bad endpoint", "s3://lab-runs/x", nil, map[string]string{FlagEndpoint: "ftp://x"}, "must be an http:// or https:// URL"},
		{"endpoint with credentials", "s3://lab-runs/x", nil, map[string]string{FlagEndpoint: "http://u:hunter2@127.0.0.1:9000"}, "must not hold credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			fl := flags(srv)
			for k, v := range c.flags {
				fl[k] = v
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := New(ctx, mustParse(t, c.value), observer.Settings{Flags: fl})
			if err == nil {
				t.Fatal("New accepted it")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Fatalf("New: %q, want one line with %q", msg, c.want)
			}
			for _, secret := range []string{srv.SecretKey, srv.AccessKey, token, "hunter2"} {
				if strings.Contains(msg, secret) {
					t.Fatalf("New's error holds a secret: %q", msg)
				}
			}
		})
	}
}

// TestCreateBucket: --s3-create-bucket creates a missing bucket, and
// only then.
func TestCreateBucket(t *testing.T) {
	srv := server(t)
	fl := flags(srv)
	fl[FlagCreateBucket] = "true"
	ctx := context.Background()
	o, err := New(ctx, mustParse(t, "s3://new-bucket/runs"), observer.Settings{Flags: fl})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Started(ctx, observertestStart()); err != nil {
		t.Fatal(err)
	}
	if keys, err := srv.Keys("new-bucket", "runs/1/"); err != nil || len(keys) == 0 {
		t.Fatalf("nothing in the new bucket: %v, %v", keys, err)
	}
}

// TestEndpointFromEnvironment: AWS_ENDPOINT_URL_S3 names an S3-compatible
// store as --s3-endpoint does, path style implied.
func TestEndpointFromEnvironment(t *testing.T) {
	srv := server(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL())
	o, err := New(context.Background(), mustParse(t, "s3://lab-runs/env"), observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Started(context.Background(), observertestStart()); err != nil {
		t.Fatal(err)
	}
}
