package s3

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout/blob"
)

// Observer writes one run into s3://BUCKET/PREFIX/<id>/ (see package blob).
type Observer struct {
	*blob.Observer
}

// Observer continues a run another observer started (observer.Resumer),
// as file storage does: see blob.Observer.Resume.
var _ observer.Resumer = (*Observer)(nil)

// Reader reads runs back from s3://BUCKET/PREFIX.
type Reader struct {
	*blob.Reader
}

// New connects to the bucket, checks that it can be listed with the
// credentials found (creating it first when --s3-create-bucket asks), and
// returns an observer for one run. Every problem found is one line that
// says what to do; none holds a secret.
func New(ctx context.Context, cfg *Config, s observer.Settings) (*Observer, error) {
	b, err := connect(ctx, cfg, s, s.Flag(FlagCreateBucket) == "true")
	if err != nil {
		return nil, err
	}
	o, err := blob.New(blob.Config{
		Bucket:           b,
		Prefix:           cfg.Prefix,
		Name:             "S3 " + cfg.URL(),
		Title:            "S3",
		Warn:             s.Warner(),
		CheckConditional: true,
	})
	if err != nil {
		return nil, err
	}
	return &Observer{o}, nil
}

// Open returns a reader over s3://BUCKET/PREFIX.
func Open(ctx context.Context, cfg *Config, s observer.Settings) (*Reader, error) {
	b, err := connect(ctx, cfg, s, false)
	if err != nil {
		return nil, err
	}
	return &Reader{blob.NewReader(b, cfg.Prefix, "S3")}, nil
}

// connect builds the client from the AWS chain and the flags and checks
// the bucket.
func connect(ctx context.Context, cfg *Config, s observer.Settings, create bool) (*bucket, error) {
	opts := []func(*awsconfig.LoadOptions) error{
		// The retry decorator around every observer retries; the SDK's
		// own retries would only stretch each call past its timeout.
		awsconfig.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if r := s.Flag(FlagRegion); r != "" {
		opts = append(opts, awsconfig.WithRegion(r))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("S3: reading the AWS configuration: %s", oneLine(err))
	}
	// The endpoint: the flag, or the AWS settings for S3 alone, or for all
	// services (AWS_ENDPOINT_URL, a profile's endpoint_url).
	endpoint := s.Flag(FlagEndpoint)
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_S3")
	}
	if endpoint == "" {
		endpoint = aws.ToString(awsCfg.BaseEndpoint)
	}
	if endpoint != "" {
		if err := checkEndpoint(endpoint); err != nil {
			return nil, err
		}
	}
	// Path style when asked, and always with a custom endpoint: most
	// S3-compatible stores need it, and all of them take it. (The CLI
	// hands a boolean flag over as "false" when it was not given, so
	// "false" cannot turn it off again.)
	pathStyle := endpoint != ""
	if v := s.Flag(FlagPathStyle); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("S3: --%s %q is not true or false", FlagPathStyle, v)
		}
		pathStyle = pathStyle || b
	}
	if awsCfg.Region == "" {
		if endpoint == "" {
			return nil, fmt.Errorf("S3: no region: give --%s, set AWS_REGION, or set a region in the AWS profile", FlagRegion)
		}
		awsCfg.Region = "us-east-1" // what S3-compatible stores expect by default
	}
	if _, err := awsCfg.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("S3: looking for AWS credentials: %w", ctx.Err())
		}
		return nil, fmt.Errorf("S3: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose a profile with AWS_PROFILE, or run where an instance or container role is available (%s)", oneLine(err))
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		// Checksums only where the API requires them: S3-compatible
		// stores do not all understand the newer trailing checksums.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	b := &bucket{c: client, name: cfg.Bucket}
	where := endpoint
	if where == "" {
		where = "S3 in " + awsCfg.Region
	}
	err = b.check(ctx, cfg.Prefix)
	if isCode(err, "NoSuchBucket") && create {
		err = b.create(ctx, awsCfg.Region, endpoint == "")
		if err == nil {
			err = b.check(ctx, cfg.Prefix)
		}
	}
	if err != nil {
		return nil, explain(err, cfg.Bucket, awsCfg.Region, where)
	}
	return b, nil
}

// checkEndpoint refuses an endpoint that is no http(s) URL or that holds
// credentials (they belong in the AWS environment, not in records).
func checkEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("S3: the endpoint (--%s or AWS_ENDPOINT_URL_S3) must be an http:// or https:// URL, e.g. http://127.0.0.1:9000", FlagEndpoint)
	}
	if u.User != nil {
		return fmt.Errorf("S3: the endpoint (--%s or AWS_ENDPOINT_URL_S3) must not hold credentials: give them through the AWS environment or a profile", FlagEndpoint)
	}
	return nil
}

// regionHint finds the bucket's region in AWS's answer to a request sent
// to the wrong one: "... the region 'us-east-1' is wrong; expecting
// 'eu-west-1'".
func regionHint(msg string) string {
	_, after, ok := strings.Cut(msg, "expecting '")
	if !ok {
		return ""
	}
	r, _, ok := strings.Cut(after, "'")
	if !ok || r == "" || strings.Trim(r, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return ""
	}
	return r
}

// explain turns the error of the first request into one line that says
// what to do.
func explain(err error, bucketName, region, where string) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("S3: bucket %q does not exist at %s (create it, or pass --%s)", bucketName, where, FlagCreateBucket)
		case "AccessDenied", "AllAccessDisabled":
			return fmt.Errorf("S3: access to bucket %q denied: the credentials need s3:ListBucket, s3:GetObject and s3:PutObject on it", bucketName)
		case "InvalidAccessKeyId":
			return errors.New("S3: the store does not know the access key (check AWS_ACCESS_KEY_ID or the profile)")
		case "SignatureDoesNotMatch":
			return errors.New("S3: the secret key does not match the access key (check AWS_SECRET_ACCESS_KEY or the profile)")
		case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
			return errors.New("S3: the session token is expired or invalid: refresh the credentials (aws sso login, or new AWS_SESSION_TOKEN)")
		case "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException", "InvalidRegion":
			if r := regionHint(ae.ErrorMessage()); r != "" {
				return fmt.Errorf("S3: bucket %q is in region %s, not %s: give --%s %s", bucketName, r, region, FlagRegion, r)
			}
			if r := bucketRegion(err); r != "" {
				return fmt.Errorf("S3: bucket %q is in region %s, not %s: give --%s %s", bucketName, r, region, FlagRegion, r)
			}
			return fmt.Errorf("S3: bucket %q is not in region %s: give its region with --%s", bucketName, region, FlagRegion)
		}
	}
	if r := bucketRegion(err); r != "" && r != region {
		return fmt.Errorf("S3: bucket %q is in region %s, not %s: give --%s %s", bucketName, r, region, FlagRegion, r)
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		return fmt.Errorf("S3: bucket %q at %s: %s", bucketName, where, oneLine(err))
	}
	return fmt.Errorf("S3: cannot reach %s: %s", where, oneLine(rootCause(err)))
}

// bucketRegion is the x-amz-bucket-region header of an error response.
func bucketRegion(err error) string {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.Header.Get("X-Amz-Bucket-Region")
	}
	return ""
}

// rootCause is the innermost error, e.g. "connection refused".
func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	return false
}

// check lists the prefix once: the bucket exists, the credentials are good
// and may list it.
func (b *bucket) check(ctx context.Context, prefix string) error {
	_, err := b.c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(b.name), Prefix: aws.String(prefix), Delimiter: aws.String("/"), MaxKeys: aws.Int32(1),
	})
	return err
}

// create creates the bucket (--s3-create-bucket). On AWS a region other
// than us-east-1 must be named as the location constraint.
func (b *bucket) create(ctx context.Context, region string, aws bool) error {
	in := &s3.CreateBucketInput{Bucket: &b.name}
	if aws && region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	_, err := b.c.CreateBucket(ctx, in)
	if isCode(err, "BucketAlreadyOwnedByYou") {
		return nil // created by a concurrent run
	}
	if err != nil {
		return fmt.Errorf("creating the bucket: %w", err)
	}
	return nil
}
