package gcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/sacred-go/sacred/pkg/observer/file/layout/blob"
)

const (
	// singleShot is the largest object sent in one request, streamed with
	// no buffer; larger ones go up as a resumable upload in chunks.
	singleShot = 16 << 20
	// chunkSize is the chunk of a resumable upload, the one buffer the
	// library keeps (a multiple of 256 KiB).
	chunkSize = 8 << 20
	// minAppend: below this size cout.txt is rewritten whole (one request)
	// rather than appended to (three: the new bytes, compose, delete).
	minAppend = 256 << 10
	// cleanupTimeout bounds the removal of an append's temporary object,
	// which runs even when the call's own context is done.
	cleanupTimeout = 10 * time.Second
)

// bucket is a blob.Bucket and blob.Appender over one Cloud Storage bucket.
type bucket struct {
	client *storage.Client
	h      *storage.BucketHandle
}

var (
	_ blob.Bucket   = (*bucket)(nil)
	_ blob.Appender = (*bucket)(nil)
)

// check lists the prefix once: the bucket exists and the credentials may
// list it.
func (b *bucket) check(ctx context.Context, prefix string) error {
	it := b.h.Objects(ctx, &storage.Query{Prefix: prefix, Delimiter: "/"})
	it.PageInfo().MaxSize = 1
	_, err := it.Next()
	if errors.Is(err, iterator.Done) {
		return nil
	}
	return err
}

// write sends size bytes of src through w and closes it.
func write(w *storage.Writer, src io.ReaderAt, size int64, contentType string) error {
	w.ContentType = contentType
	if size > singleShot {
		w.ChunkSize = chunkSize
	} else {
		w.ChunkSize = 0
	}
	if _, err := io.Copy(w, io.NewSectionReader(src, 0, size)); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func (b *bucket) Put(ctx context.Context, key string, src io.ReaderAt, size int64, contentType string) error {
	ctx, cancel := context.WithCancel(ctx) // cancelling aborts a failed upload
	defer cancel()
	if err := write(b.h.Object(key).NewWriter(ctx), src, size, contentType); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

func (b *bucket) Create(ctx context.Context, key string, data []byte, contentType string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := b.h.Object(key).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	err := write(w, strings.NewReader(string(data)), int64(len(data)), contentType)
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == http.StatusPreconditionFailed {
		return fmt.Errorf("creating %s: %w", key, blob.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", key, err)
	}
	return nil
}

func (b *bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := b.h.Object(key).NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, fmt.Errorf("reading %s: %w", key, blob.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	return r, nil
}

func (b *bucket) Size(ctx context.Context, key string) (int64, error) {
	attrs, err := b.h.Object(key).Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return 0, fmt.Errorf("checking %s: %w", key, blob.ErrNotExist)
	}
	if err != nil {
		return 0, fmt.Errorf("checking %s: %w", key, err)
	}
	return attrs.Size, nil
}

func (b *bucket) Dirs(ctx context.Context, prefix string) ([]string, error) {
	q := &storage.Query{Prefix: prefix, Delimiter: "/"}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return nil, err
	}
	it := b.h.Objects(ctx, q)
	var dirs []string
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return dirs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", prefix, err)
		}
		if attrs.Prefix != "" {
			if d := strings.TrimSuffix(strings.TrimPrefix(attrs.Prefix, prefix), "/"); d != "" {
				dirs = append(dirs, d)
			}
		}
	}
}

func (b *bucket) Delete(ctx context.Context, key string) error {
	err := b.h.Object(key).Delete(ctx)
	if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// MinAppendSize: below 256 KiB one rewrite is cheaper than an append.
func (b *bucket) MinAppendSize() int64 { return minAppend }

// Append uploads the n new bytes as <key>.append and has Cloud Storage
// compose key from key and that object: only the new bytes cross the
// network. The temporary object is removed after (a later append
// replaces it if that fails). Compose replaces key at once, so a failure
// leaves the old object whole.
func (b *bucket) Append(ctx context.Context, key string, size int64, src io.ReaderAt, n int64) error {
	tmp := key + ".append"
	if err := b.Put(ctx, tmp, src, n, ""); err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = b.h.Object(tmp).Delete(dctx)
	}()
	dst := b.h.Object(key)
	c := dst.ComposerFrom(dst, b.h.Object(tmp))
	c.ContentType = "text/plain; charset=utf-8"
	if _, err := c.Run(ctx); err != nil {
		return fmt.Errorf("appending to %s: %w", key, err)
	}
	return nil
}
