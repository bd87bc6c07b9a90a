// Package gcs is the Google Cloud Storage observer (`--gcs
// gs://BUCKET/PREFIX`): each run goes into PREFIX/<id>/ of a bucket in the
// layout of Sacred's file storage, written by package blob, so a bucket
// synced to disk is a valid -F directory. Credentials come from
// GOOGLE_APPLICATION_CREDENTIALS or application default credentials;
// STORAGE_EMULATOR_HOST points it at an emulator.
//
// Sacred defines -G/--gcs but never registers it on its command line, so
// the kind has no short letter. Like every observer package it offers
// ParseConfig, Redact, New and Open, registered in this file. See
// docs/observers/gcs.md.
package gcs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout/blob"
)

// Option is the flag name and the key in sacred.yaml and SACRED_* variables.
const Option = "gcs"

// FlagEndpoint is the kind's own flag: another JSON API endpoint.
const FlagEndpoint = "gcs-endpoint"

// Kind declares the GCS observer; it is registered in init.
var Kind = observer.Kind{
	Option: Option,
	Arg:    "URL",
	Title:  "Google Cloud Storage",
	Usage:  "record to gs://BUCKET/PREFIX in Sacred's file-storage layout (application default credentials)",
	Remote: true,
	Parse:  func(value string) (any, error) { return ParseConfig(value) },
	Redact: Redact,
	New: func(ctx context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
		return New(ctx, cfg.(*Config), s)
	},
	Open: func(ctx context.Context, cfg any, s observer.Settings) (observer.Reader, error) {
		return Open(ctx, cfg.(*Config), s)
	},
	Flags: []observer.Flag{
		{Name: FlagEndpoint, Arg: "URL", Usage: "Cloud Storage JSON API endpoint (default: Google's, or STORAGE_EMULATOR_HOST for an emulator)"},
	},
}

func init() { observer.Register(Kind) }

// Config is a parsed --gcs value.
type Config struct {
	Bucket string
	// Prefix is the key prefix of the layout, "" or ending in "/".
	Prefix string
}

// URL is the value in its canonical form, gs://BUCKET/PREFIX.
func (c *Config) URL() string { return "gs://" + c.Bucket + "/" + strings.TrimSuffix(c.Prefix, "/") }

// ParseConfig checks a --gcs value: gs://BUCKET/PREFIX, or BUCKET/PREFIX
// as Sacred's GoogleCloudStorageObserver(bucket, basedir) takes it. It
// connects nowhere. A URL that carries credentials or a query (a signed
// URL) is refused, and its secret is not repeated.
func ParseConfig(value string) (*Config, error) {
	rest := value
	if i := strings.Index(value, "://"); i >= 0 {
		if scheme := strings.ToLower(value[:i]); scheme != "gs" {
			return nil, fmt.Errorf("GCS: the URL must start with gs:// (for another endpoint give gs://BUCKET/PREFIX and --%s)", FlagEndpoint)
		}
		rest = value[i+3:]
	}
	if strings.ContainsAny(rest, "?#") {
		return nil, errors.New("GCS: the URL must not have a query or fragment (a signed URL is no store: give gs://BUCKET/PREFIX and the credentials through GOOGLE_APPLICATION_CREDENTIALS)")
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if strings.Contains(bucket, "@") {
		return nil, errors.New("GCS: the URL must not hold credentials: give them through GOOGLE_APPLICATION_CREDENTIALS or application default credentials")
	}
	if bucket == "" {
		return nil, errors.New("GCS: the URL has no bucket (use --gcs gs://BUCKET/PREFIX)")
	}
	if err := checkBucketName(bucket); err != nil {
		return nil, err
	}
	p, err := blob.CleanPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("GCS: %w", err)
	}
	return &Config{Bucket: bucket, Prefix: p}, nil
}

// checkBucketName applies Cloud Storage's rules for bucket names: 3 to 63
// lowercase letters, digits, hyphens, underscores and dots (up to 222
// with dots, 63 per dot-separated part), starting and ending with a letter
// or digit, not an IP address, not starting with "goog" nor holding
// "google".
func checkBucketName(b string) error {
	ok := len(b) >= 3 && (len(b) <= 63 || strings.Contains(b, ".") && len(b) <= 222) &&
		!strings.HasPrefix(b, "goog") && !strings.Contains(b, "google") && net.ParseIP(b) == nil && !strings.Contains(b, "..")
	for _, part := range strings.Split(b, ".") {
		ok = ok && len(part) <= 63
	}
	for i := 0; ok && i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		ok = alnum || (c == '.' || c == '-' || c == '_') && i > 0 && i < len(b)-1
	}
	if !ok {
		return fmt.Errorf("GCS: %q is not a valid bucket name (3 to 63 lowercase letters, digits, hyphens, underscores and dots, starting and ending with a letter or digit)", b)
	}
	return nil
}

// Redact returns value without user information, query or fragment,
// where credentials and signatures would be.
func Redact(value string) string {
	v := value
	if i := strings.IndexAny(v, "?#"); i >= 0 {
		v = v[:i]
	}
	start := 0
	if i := strings.Index(v, "://"); i >= 0 {
		start = i + 3
	}
	host := v[start:]
	if j := strings.IndexByte(host, '/'); j >= 0 {
		host = host[:j]
	}
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		v = v[:start] + v[start+at+1:]
	}
	return v
}
