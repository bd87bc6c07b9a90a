package gcs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"cloud.google.com/go/auth/credentials"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout/blob"
)

// EnvEmulator is the variable that points the client at an emulator, as
// Google's client libraries and gcloud read it; requests then carry no
// credentials.
const EnvEmulator = "STORAGE_EMULATOR_HOST"

// DefaultEndpoint is Cloud Storage's JSON API.
const DefaultEndpoint = "https://storage.googleapis.com"

// scopeReadWrite is the OAuth scope the observer asks for: read, write
// and delete objects.
const scopeReadWrite = "https://www.googleapis.com/auth/devstorage.read_write"

// Observer writes one run into gs://BUCKET/PREFIX/<id>/ (see package blob).
type Observer struct {
	*blob.Observer
}

// Observer continues a run another observer started (observer.Resumer),
// as file storage does: see blob.Observer.Resume.
var _ observer.Resumer = (*Observer)(nil)

// Reader reads runs back from gs://BUCKET/PREFIX.
type Reader struct {
	*blob.Reader
}

// New finds the credentials, checks that the bucket can be listed with
// them, and returns an observer for one run. Every problem found is one
// line that says what to do; none holds a secret.
func New(ctx context.Context, cfg *Config, s observer.Settings) (*Observer, error) {
	b, err := connect(ctx, cfg, s)
	if err != nil {
		return nil, err
	}
	o, err := blob.New(blob.Config{
		Bucket: b,
		Prefix: cfg.Prefix,
		Name:   "Google Cloud Storage " + cfg.URL(),
		Title:  "GCS",
		Warn:   s.Warner(),
	})
	if err != nil {
		return nil, err
	}
	return &Observer{o}, nil
}

// Open returns a reader over gs://BUCKET/PREFIX.
func Open(ctx context.Context, cfg *Config, s observer.Settings) (*Reader, error) {
	b, err := connect(ctx, cfg, s)
	if err != nil {
		return nil, err
	}
	return &Reader{blob.NewReader(b, cfg.Prefix, "GCS")}, nil
}

// connect finds the endpoint and the credentials and checks the bucket.
// With STORAGE_EMULATOR_HOST (and no --gcs-endpoint) requests go to the
// emulator without credentials, as Google's libraries do.
func connect(ctx context.Context, cfg *Config, s observer.Settings) (*bucket, error) {
	// No redirects: a resumable upload answers 308 for "go on", and a
	// token must never follow a redirect to another host.
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	a := &api{hc: hc, base: DefaultEndpoint}
	endpoint, emulator := s.Flag(FlagEndpoint), false
	if endpoint == "" {
		endpoint, emulator = os.Getenv(EnvEmulator), true
	}
	if endpoint != "" {
		base, err := endpointURL(endpoint)
		if err != nil {
			what := "--" + FlagEndpoint
			if emulator {
				what = EnvEmulator
			}
			return nil, fmt.Errorf("GCS: %s %s, e.g. http://127.0.0.1:4443", what, err)
		}
		a.base = base
	}
	if !emulator || endpoint == "" {
		creds, err := credentials.DetectDefault(&credentials.DetectOptions{Scopes: []string{scopeReadWrite}})
		if err == nil {
			// A token now, so that missing or broken credentials are
			// reported before the run starts, not at its first write.
			_, err = creds.Token(ctx)
		}
		if err != nil {
			return nil, credentialsError(ctx, err)
		}
		a.creds = creds
	}
	where := strings.TrimPrefix(strings.TrimPrefix(a.base, "https://"), "http://")
	b := &bucket{a: a, name: cfg.Bucket}
	if _, _, err := a.list(ctx, cfg.Bucket, cfg.Prefix, "", 1); err != nil {
		return nil, explain(err, cfg.Bucket, where)
	}
	return b, nil
}

// credentialsError says what to do about credentials that are missing or
// cannot give a token.
func credentialsError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("GCS: looking for Google credentials: %w", ctx.Err())
	}
	if strings.Contains(err.Error(), "could not find default credentials") {
		return fmt.Errorf("GCS: no Google credentials found: set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, run `gcloud auth application-default login`, or set %s for an emulator", EnvEmulator)
	}
	if f := os.Getenv("GOOGLE_APPLICATION_CREDENTIALS"); f != "" {
		return fmt.Errorf("GCS: the credentials in GOOGLE_APPLICATION_CREDENTIALS (%s) give no token: %s", f, cause(err))
	}
	return fmt.Errorf("GCS: the application default credentials give no token: %s", cause(err))
}

// cause is an error's message in one line and short: the libraries'
// messages can quote whole URLs, responses and parser states. A request
// that got no answer is said as "cannot reach HOST: <the system's
// words>", anything else by its first sentence.
func cause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		host := ue.URL
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
		return "cannot reach " + host + ": " + oneLine(innermost(ue.Err))
	}
	s := oneLine(err)
	if i := strings.Index(s, ". "); i > 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// innermost is the last error of a chain, e.g. "connection refused".
func innermost(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// explain turns the error of the first request into one line.
func explain(err error, bucketName, where string) error {
	switch statusOf(err) {
	case 0:
		return fmt.Errorf("GCS: cannot reach %s: %s", where, oneLine(innermost(err)))
	case http.StatusNotFound:
		return fmt.Errorf("GCS: bucket %q does not exist at %s (create it first: gcloud storage buckets create gs://%s)", bucketName, where, bucketName)
	case http.StatusForbidden:
		return fmt.Errorf("GCS: access to bucket %q denied: the credentials need storage.objects.list, get, create and delete on it (role Storage Object User)", bucketName)
	case http.StatusUnauthorized:
		return errors.New("GCS: the credentials were refused: check GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`")
	}
	return fmt.Errorf("GCS: bucket %q at %s: %s", bucketName, where, cause(err))
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
