package gcs

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/observer/file/layout/blob"
)

const (
	// singleShot is the largest object sent in one request; larger ones
	// go up as a resumable upload.
	singleShot = 16 << 20
	// chunkSize is the chunk of a resumable upload (a multiple of 256
	// KiB), streamed from its file: nothing is buffered.
	chunkSize = 64 << 20
	// minAppend: below this size cout.txt is rewritten whole (one request)
	// rather than appended to (three: the new bytes, compose, delete).
	minAppend = 256 << 10
	// cleanupTimeout bounds the removal of an append's temporary object,
	// which runs even when the call's own context is done: briefly, so
	// that a cancelled call still returns at once (the next append
	// replaces what is left).
	cleanupTimeout = 2 * time.Second
)

// bucket is a blob.Bucket and blob.Appender over one Cloud Storage bucket.
type bucket struct {
	a    *api
	name string
}

var (
	_ blob.Bucket   = (*bucket)(nil)
	_ blob.Appender = (*bucket)(nil)
)

func (b *bucket) Put(ctx context.Context, key string, src io.ReaderAt, size int64, contentType string) error {
	var err error
	if size > singleShot {
		err = b.a.resumable(ctx, b.name, key, src, size, contentType, chunkSize)
	} else {
		err = b.a.put(ctx, b.name, key, src, size, contentType, false)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

func (b *bucket) Create(ctx context.Context, key string, data []byte, contentType string) error {
	err := b.a.put(ctx, b.name, key, strings.NewReader(string(data)), int64(len(data)), contentType, true)
	if statusOf(err) == http.StatusPreconditionFailed {
		return fmt.Errorf("creating %s: %w", key, blob.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", key, err)
	}
	return nil
}

func (b *bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := b.a.get(ctx, b.name, key)
	if statusOf(err) == http.StatusNotFound {
		return nil, fmt.Errorf("reading %s: %w", key, blob.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	return rc, nil
}

func (b *bucket) Size(ctx context.Context, key string) (int64, error) {
	n, err := b.a.size(ctx, b.name, key)
	if statusOf(err) == http.StatusNotFound {
		return 0, fmt.Errorf("checking %s: %w", key, blob.ErrNotExist)
	}
	if err != nil {
		return 0, fmt.Errorf("checking %s: %w", key, err)
	}
	return n, nil
}

func (b *bucket) Dirs(ctx context.Context, prefix string) ([]string, error) {
	var dirs []string
	token := ""
	for {
		page, next, err := b.a.list(ctx, b.name, prefix, token, 0)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", prefix, err)
		}
		for _, p := range page {
			if d := strings.TrimSuffix(strings.TrimPrefix(p, prefix), "/"); d != "" {
				dirs = append(dirs, d)
			}
		}
		if next == "" {
			return dirs, nil
		}
		token = next
	}
}

func (b *bucket) Delete(ctx context.Context, key string) error {
	err := b.a.delete(ctx, b.name, key)
	if err != nil && statusOf(err) != http.StatusNotFound {
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
func (b *bucket) Append(ctx context.Context, key string, _ int64, src io.ReaderAt, n int64) error {
	tmp := key + ".append"
	if err := b.Put(ctx, tmp, src, n, ""); err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = b.a.delete(dctx, b.name, tmp)
	}()
	if err := b.a.compose(ctx, b.name, key, []string{key, tmp}, "text/plain; charset=utf-8"); err != nil {
		return fmt.Errorf("appending to %s: %w", key, err)
	}
	return nil
}
