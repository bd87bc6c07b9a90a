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
	_, err := b.put(ctx, key, src, size, contentType)
	return err
}

// put uploads an object in one request or, when large, resumably, and
// returns its size and generation.
func (b *bucket) put(ctx context.Context, key string, src io.ReaderAt, size int64, contentType string) (objectAttrs, error) {
	var at objectAttrs
	var err error
	if size > singleShot {
		at, err = b.a.resumable(ctx, b.name, key, src, size, contentType, chunkSize)
	} else {
		at, err = b.a.put(ctx, b.name, key, src, size, contentType, false)
	}
	if err != nil {
		return at, fmt.Errorf("writing %s: %w", key, err)
	}
	return at, nil
}

func (b *bucket) Create(ctx context.Context, key string, data []byte, contentType string) error {
	_, err := b.a.put(ctx, b.name, key, strings.NewReader(string(data)), int64(len(data)), contentType, true)
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
	at, err := b.a.attrs(ctx, b.name, key)
	if statusOf(err) == http.StatusNotFound {
		return 0, fmt.Errorf("checking %s: %w", key, blob.ErrNotExist)
	}
	if err != nil {
		return 0, fmt.Errorf("checking %s: %w", key, err)
	}
	return at.Size, nil
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

// Append uploads the n new bytes as <key>.append-<size> and has Cloud
// Storage compose key from key and that object: only the new bytes cross
// the network. The temporary object is removed after. Compose replaces key
// at once, so a failure leaves the old object whole.
//
// A request of an earlier call that gave up may still be carried out by
// the service (an append that timed out, say); it must not make this one
// land at the wrong offset. So key's size is checked first, and the
// compose names the generations it read: the destination's as a
// precondition, the sources' so that a late compose finds them gone or
// changed and fails. The temporary object is named after the offset of its
// bytes, so a late upload of another offset cannot replace it. A result
// of the wrong size (a service that ignores the preconditions) is
// reported as blob.ErrAppendMisplaced: the observer then rewrites the
// object.
func (b *bucket) Append(ctx context.Context, key string, size int64, src io.ReaderAt, n int64) error {
	at, err := b.a.attrs(ctx, b.name, key)
	if err != nil {
		return fmt.Errorf("appending to %s: %w", key, err)
	}
	if at.Size != size {
		return fmt.Errorf("appending to %s: it holds %d bytes, not %d (written meanwhile by an earlier request)", key, at.Size, size)
	}
	tmp := fmt.Sprintf("%s.append-%d", key, size)
	tat, err := b.put(ctx, tmp, src, n, "")
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = b.a.delete(dctx, b.name, tmp)
	}()
	srcs := []composeSource{{Name: key, Generation: at.Generation}, {Name: tmp, Generation: tat.Generation}}
	res, err := b.a.compose(ctx, b.name, key, srcs, at.Generation, "text/plain; charset=utf-8")
	if err != nil {
		if statusOf(err) == http.StatusPreconditionFailed {
			return fmt.Errorf("appending to %s: written meanwhile by an earlier request: %w", key, err)
		}
		return fmt.Errorf("appending to %s: %w", key, err)
	}
	if res.Size != size+n {
		return fmt.Errorf("appending to %s: the result holds %d bytes, not %d: %w", key, res.Size, size+n, blob.ErrAppendMisplaced)
	}
	return nil
}
