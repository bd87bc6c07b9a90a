// Package s3 is the S3 observer (`-S s3://BUCKET/PREFIX`, `--s3`): each run
// goes into PREFIX/<id>/ of an S3 bucket (or of an S3-compatible store:
// MinIO, Ceph, Cloudflare R2, ...) in the layout of Sacred's file storage,
// written by package blob, so a bucket synced to disk is a valid -F
// directory. Credentials, profile and region come from the standard AWS
// chain; the flags --s3-region, --s3-endpoint, --s3-path-style and
// --s3-create-bucket adjust them.
//
// Like every observer package it offers ParseConfig, Redact, New and Open,
// registered in this file. See docs/observers/s3.md.
package s3

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
const Option = "s3"

// The kind's own flags.
const (
	FlagRegion       = "s3-region"
	FlagEndpoint     = "s3-endpoint"
	FlagPathStyle    = "s3-path-style"
	FlagCreateBucket = "s3-create-bucket"
)

// Kind declares the S3 observer; it is registered in init.
var Kind = observer.Kind{
	Option: Option,
	Short:  "S",
	Arg:    "URL",
	Title:  "S3",
	Usage:  "record to s3://BUCKET/PREFIX in Sacred's file-storage layout (AWS credentials from the environment or profile)",
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
		{Name: FlagRegion, Arg: "REGION", Usage: "AWS region of the S3 bucket (default: AWS_REGION or the profile's)"},
		{Name: FlagEndpoint, Arg: "URL", Usage: "S3-compatible endpoint, e.g. http://127.0.0.1:9000 for MinIO (implies --s3-path-style)"},
		{Name: FlagPathStyle, Bool: true, Usage: "address the S3 bucket in the path (https://host/BUCKET/KEY), as most S3-compatible stores need"},
		{Name: FlagCreateBucket, Bool: true, Usage: "create the S3 bucket when it does not exist"},
	},
}

func init() { observer.Register(Kind) }

// Config is a parsed -S value.
type Config struct {
	Bucket string
	// Prefix is the key prefix of the layout, "" or ending in "/".
	Prefix string
}

// URL is the value in its canonical form, s3://BUCKET/PREFIX.
func (c *Config) URL() string { return "s3://" + c.Bucket + "/" + strings.TrimSuffix(c.Prefix, "/") }

// ParseConfig checks a -S value: s3://BUCKET/PREFIX, or Sacred's
// BUCKET/PREFIX. It connects nowhere. A URL that carries credentials or a
// query (a presigned URL) is refused, and its secret is not repeated.
func ParseConfig(value string) (*Config, error) {
	rest := value
	if i := strings.Index(value, "://"); i >= 0 {
		if scheme := strings.ToLower(value[:i]); scheme != "s3" {
			return nil, fmt.Errorf("S3: the URL must start with s3:// (for an S3-compatible store give s3://BUCKET/PREFIX and its address with --%s)", FlagEndpoint)
		}
		rest = value[i+3:]
	}
	if strings.ContainsAny(rest, "?#") {
		return nil, errors.New("S3: the URL must not have a query or fragment (a presigned URL is no store: give s3://BUCKET/PREFIX and the credentials through the AWS environment or a profile)")
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if strings.Contains(bucket, "@") {
		return nil, errors.New("S3: the URL must not hold credentials: give them through the AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a profile")
	}
	if bucket == "" {
		return nil, errors.New("S3: the URL has no bucket (use -S s3://BUCKET/PREFIX)")
	}
	if err := checkBucketName(bucket); err != nil {
		return nil, err
	}
	p, err := blob.CleanPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("S3: %w", err)
	}
	return &Config{Bucket: bucket, Prefix: p}, nil
}

// checkBucketName applies the rules for general purpose bucket names (by
// hand: a regexp compiled at init would cost every start of sacred).
func checkBucketName(b string) error {
	ok := len(b) >= 3 && len(b) <= 63 && !strings.Contains(b, "..") && net.ParseIP(b) == nil
	for i := 0; ok && i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		ok = alnum || (c == '.' || c == '-') && i > 0 && i < len(b)-1
	}
	if !ok {
		return fmt.Errorf("S3: %q is not a valid bucket name (3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit)", b)
	}
	return nil
}

// Redact returns value without user information, query or fragment,
// where credentials and presigned signatures would be.
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
