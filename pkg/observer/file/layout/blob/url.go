package blob

import (
	"errors"
	"fmt"
	"strings"
)

// URLRules are how an object store's flag value is read:
// SCHEME://BUCKET/PREFIX, or BUCKET/PREFIX as Sacred's observers take
// bucket and basedir. The messages are the store's own, said after
// "Title: ", so that each tells what to do in that store's terms.
type URLRules struct {
	Title  string // "S3"
	Scheme string // "s3", lowercase
	// BadScheme, Query, Credentials and NoBucket are the messages for a
	// URL of another scheme, one with a query or fragment (a signed URL),
	// one with user information, and one without a bucket.
	BadScheme, Query, Credentials, NoBucket string
	// CheckBucket checks a bucket name by the store's rules; its error is
	// returned as it is.
	CheckBucket func(bucket string) error
}

// Parse splits value into the bucket and the key prefix (CleanPrefix's).
// It connects nowhere, and no message repeats the value, which may hold a
// secret.
func (u *URLRules) Parse(value string) (bucket, prefix string, err error) {
	rest := value
	if i := strings.Index(value, "://"); i >= 0 {
		if strings.ToLower(value[:i]) != u.Scheme {
			return "", "", errors.New(u.Title + ": " + u.BadScheme)
		}
		rest = value[i+3:]
	}
	if strings.ContainsAny(rest, "?#") {
		return "", "", errors.New(u.Title + ": " + u.Query)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if strings.Contains(bucket, "@") {
		return "", "", errors.New(u.Title + ": " + u.Credentials)
	}
	if bucket == "" {
		return "", "", errors.New(u.Title + ": " + u.NoBucket)
	}
	if err := u.CheckBucket(bucket); err != nil {
		return "", "", err
	}
	prefix, err = CleanPrefix(prefix)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", u.Title, err)
	}
	return bucket, prefix, nil
}

// RedactURL returns an object store's value without user information,
// query or fragment, where credentials and signatures would be.
func RedactURL(value string) string {
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
