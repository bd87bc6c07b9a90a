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
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout/blob"
)

// EnvEmulator is the variable that points the client at an emulator, as
// Google's client libraries and gcloud read it; requests then carry no
// credentials.
const EnvEmulator = "STORAGE_EMULATOR_HOST"

// Observer writes one run into gs://BUCKET/PREFIX/<id>/ (see package blob).
type Observer struct {
	*blob.Observer
	client *storage.Client
}

// Reader reads runs back from gs://BUCKET/PREFIX.
type Reader struct {
	*blob.Reader
	client *storage.Client
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
		b.client.Close()
		return nil, err
	}
	return &Observer{Observer: o, client: b.client}, nil
}

// Close releases the client.
func (o *Observer) Close(ctx context.Context) error {
	err := o.Observer.Close(ctx)
	if cerr := o.client.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("GCS: closing the client: %w", cerr)
	}
	return err
}

// Open returns a reader over gs://BUCKET/PREFIX.
func Open(ctx context.Context, cfg *Config, s observer.Settings) (*Reader, error) {
	b, err := connect(ctx, cfg, s)
	if err != nil {
		return nil, err
	}
	return &Reader{Reader: blob.NewReader(b, cfg.Prefix, "GCS"), client: b.client}, nil
}

// Close releases the client.
func (r *Reader) Close() error { return r.client.Close() }

// connect builds the client and checks the bucket.
func connect(ctx context.Context, cfg *Config, s observer.Settings) (*bucket, error) {
	var opts []option.ClientOption
	where := "Cloud Storage"
	endpoint := s.Flag(FlagEndpoint)
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("GCS: --%s must be an http:// or https:// URL, e.g. https://storage.example.com", FlagEndpoint)
		}
		if u.User != nil || u.RawQuery != "" {
			return nil, fmt.Errorf("GCS: --%s must not hold credentials or a query", FlagEndpoint)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/storage/v1/"
		}
		where = u.Host
		opts = append(opts, option.WithEndpoint(u.String()), storage.WithJSONReads())
	}
	if host := os.Getenv(EnvEmulator); host != "" && endpoint == "" {
		// The library talks to the emulator without credentials.
		where = strings.TrimPrefix(strings.TrimPrefix(host, "http://"), "https://")
	} else {
		creds, err := credentials.DetectDefault(&credentials.DetectOptions{
			Scopes: []string{storage.ScopeReadWrite},
		})
		if err == nil {
			// Fetch a token now, so that missing or broken credentials
			// are reported before the run starts, not at its first write.
			_, err = creds.Token(ctx)
		}
		if err != nil {
			return nil, credentialsError(ctx, err)
		}
		opts = append(opts, option.WithAuthCredentials(creds))
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("GCS: %s", oneLine(err))
	}
	// The retry decorator around every observer retries; the library's
	// own retries would only stretch each call past its timeout.
	client.SetRetry(storage.WithPolicy(storage.RetryNever))
	b := &bucket{client: client, h: client.Bucket(cfg.Bucket)}
	if err := b.check(ctx, cfg.Prefix); err != nil {
		client.Close()
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
// messages can quote whole URLs, responses and parser states. A failed
// request is said as "cannot reach HOST: <the system's words>", anything
// else by its first sentence.
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
	var ge *googleapi.Error
	switch {
	case errors.Is(err, storage.ErrBucketNotExist):
		return fmt.Errorf("GCS: bucket %q does not exist at %s (create it first: gcloud storage buckets create gs://%s)", bucketName, where, bucketName)
	case errors.As(err, &ge) && ge.Code == http.StatusNotFound:
		return fmt.Errorf("GCS: bucket %q does not exist at %s (create it first: gcloud storage buckets create gs://%s)", bucketName, where, bucketName)
	case errors.As(err, &ge) && ge.Code == http.StatusForbidden:
		return fmt.Errorf("GCS: access to bucket %q denied: the credentials need storage.objects.list, get, create and delete on it (role Storage Object User)", bucketName)
	case errors.As(err, &ge) && ge.Code == http.StatusUnauthorized:
		return errors.New("GCS: the credentials were refused: check GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`")
	case errors.As(err, &ge):
		return fmt.Errorf("GCS: bucket %q at %s: %s", bucketName, where, cause(err))
	}
	return fmt.Errorf("GCS: cannot reach %s: %s", where, oneLine(innermost(err)))
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
