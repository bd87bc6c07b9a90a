package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/sacred-go/sacred/pkg/observer/file/layout/blob"
)

// Sizes of multipart uploads.
const (
	// partSize is the size of the parts of a large upload, each streamed
	// from its file (an io.SectionReader: nothing is buffered). Objects up
	// to this size go in one PutObject.
	partSize = 16 << 20
	// minPart is S3's smallest part but the last: an object smaller than
	// that cannot be the copied first part of an append.
	minPart = 5 << 20
	// maxCopyPart is S3's largest part copied with UploadPartCopy.
	maxCopyPart = 5 << 30
	// abortTimeout bounds the clean-up of a failed multipart upload, which
	// runs even when the call's own context is done: briefly, so that a
	// cancelled call still returns at once (a bucket lifecycle rule for
	// incomplete uploads catches what a failed abort leaves).
	abortTimeout = 2 * time.Second
)

// bucket is a blob.Bucket and blob.Appender over one S3 bucket.
type bucket struct {
	c    *s3.Client
	name string
}

var (
	_ blob.Bucket   = (*bucket)(nil)
	_ blob.Appender = (*bucket)(nil)
)

func (b *bucket) Put(ctx context.Context, key string, src io.ReaderAt, size int64, contentType string) error {
	if size <= partSize {
		_, err := b.c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &b.name, Key: &key, Body: io.NewSectionReader(src, 0, size),
			ContentLength: aws.Int64(size), ContentType: optional(contentType),
		})
		if err != nil {
			return fmt.Errorf("writing %s: %w", key, err)
		}
		return nil
	}
	return b.multipart(ctx, key, contentType, func(ctx context.Context, up *upload) error {
		return up.send(ctx, src, 0, size)
	})
}

func (b *bucket) Create(ctx context.Context, key string, data []byte, contentType string) error {
	_, err := b.c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &b.name, Key: &key, Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))), ContentType: optional(contentType),
		IfNoneMatch: aws.String("*"),
	})
	// 409 ConditionalRequestConflict: a concurrent conditional write of
	// the same key is under way; the key is someone else's either way.
	if isCode(err, "PreconditionFailed", "ConditionalRequestConflict") || httpStatus(err) == http.StatusPreconditionFailed {
		return fmt.Errorf("creating %s: %w", key, blob.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", key, err)
	}
	return nil
}

func (b *bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := b.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.name, Key: &key})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) || httpStatus(err) == http.StatusNotFound {
			return nil, fmt.Errorf("reading %s: %w", key, blob.ErrNotExist)
		}
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	return out.Body, nil
}

func (b *bucket) Size(ctx context.Context, key string) (int64, error) {
	out, err := b.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.name, Key: &key})
	if err != nil {
		if httpStatus(err) == http.StatusNotFound {
			return 0, fmt.Errorf("checking %s: %w", key, blob.ErrNotExist)
		}
		return 0, fmt.Errorf("checking %s: %w", key, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

func (b *bucket) Dirs(ctx context.Context, prefix string) ([]string, error) {
	var dirs []string
	p := s3.NewListObjectsV2Paginator(b.c, &s3.ListObjectsV2Input{
		Bucket: &b.name, Prefix: aws.String(prefix), Delimiter: aws.String("/"),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", prefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			d := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), prefix), "/")
			if d != "" {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs, nil
}

func (b *bucket) Delete(ctx context.Context, key string) error {
	if _, err := b.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.name, Key: &key}); err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// MinAppendSize is S3's smallest part: the object being appended to
// becomes the first (copied) part of a multipart upload.
func (b *bucket) MinAppendSize() int64 { return minPart }

// Append rebuilds key as a multipart upload whose first parts are copies
// of the object made by S3 itself (UploadPartCopy, at most 5 GiB each) and
// whose last parts are the n new bytes: only those cross the network. The
// object is replaced when the upload completes, at once, so a failure
// leaves the old object whole.
func (b *bucket) Append(ctx context.Context, key string, size int64, src io.ReaderAt, n int64) error {
	return b.multipart(ctx, key, "text/plain; charset=utf-8", func(ctx context.Context, up *upload) error {
		pieces := (size + maxCopyPart - 1) / maxCopyPart
		piece := (size + pieces - 1) / pieces // all alike, none under 5 MiB
		source := url.PathEscape(b.name) + "/" + escapeKey(key)
		for off := int64(0); off < size; off += piece {
			end := min(off+piece, size)
			out, err := b.c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
				Bucket: &b.name, Key: &key, UploadId: up.id, PartNumber: aws.Int32(up.next()),
				CopySource:      aws.String(source),
				CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end-1)),
			})
			if err != nil {
				if isCode(err, "NotImplemented") || httpStatus(err) == http.StatusNotImplemented {
					return fmt.Errorf("UploadPartCopy: %s: %w", oneLine(err), blob.ErrAppendUnsupported)
				}
				return fmt.Errorf("copying bytes %d to %d of %s: %w", off, end, key, err)
			}
			up.done(out.CopyPartResult.ETag)
		}
		return up.send(ctx, src, 0, n)
	})
}

// upload is a multipart upload under way.
type upload struct {
	b     *bucket
	key   string
	id    *string
	parts []types.CompletedPart
}

func (u *upload) next() int32 { return int32(len(u.parts) + 1) }

func (u *upload) done(etag *string) {
	u.parts = append(u.parts, types.CompletedPart{ETag: etag, PartNumber: aws.Int32(u.next())})
}

// send uploads bytes [off, off+n) of src as parts of partSize, each
// streamed from src.
func (u *upload) send(ctx context.Context, src io.ReaderAt, off, n int64) error {
	for p := off; p < off+n; p += partSize {
		size := min(partSize, off+n-p)
		out, err := u.b.c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: &u.b.name, Key: &u.key, UploadId: u.id, PartNumber: aws.Int32(u.next()),
			Body: io.NewSectionReader(src, p, size), ContentLength: aws.Int64(size),
		})
		if err != nil {
			return fmt.Errorf("writing bytes %d to %d of %s: %w", p, p+size, u.key, err)
		}
		u.done(out.ETag)
	}
	return nil
}

// multipart runs fill within a multipart upload of key and completes it,
// or aborts it on failure so that no parts are left to pay for.
func (b *bucket) multipart(ctx context.Context, key, contentType string, fill func(context.Context, *upload) error) error {
	out, err := b.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &b.name, Key: &key, ContentType: optional(contentType),
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	up := &upload{b: b, key: key, id: out.UploadId}
	err = fill(ctx, up)
	if err == nil {
		_, err = b.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: &b.name, Key: &key, UploadId: up.id,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: up.parts},
		})
		if err != nil {
			err = fmt.Errorf("writing %s: %w", key, err)
		}
	}
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, _ = b.c.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &b.name, Key: &key, UploadId: up.id})
	}
	return err
}

// escapeKey URL-encodes a key for x-amz-copy-source, keeping its slashes.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// httpStatus is the HTTP status of an error response, or 0.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
