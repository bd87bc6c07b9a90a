package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
)

// dirBucket is a Bucket over a local directory, one file per key: what
// `aws s3 sync` makes of a bucket. The tests use it to check the layout
// code on its own and to show that what it writes is a -F directory.
type dirBucket struct {
	root      string
	minAppend int64 // < 0: no Append
	broken    atomic.Bool
	putBytes  atomic.Int64 // bytes sent by Put and Append
	appends   atomic.Int64
}

var errBroken = errors.New("the test bucket is broken")

func (d *dirBucket) path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

func (d *dirBucket) check(ctx context.Context) error {
	if d.broken.Load() {
		return errBroken
	}
	return ctx.Err()
}

func (d *dirBucket) Put(ctx context.Context, key string, src io.ReaderAt, size int64, _ string) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	tmp, err := d.temp(key, src, size)
	if err != nil {
		return err
	}
	return os.Rename(tmp, d.path(key))
}

func (d *dirBucket) temp(key string, src io.ReaderAt, size int64) (string, error) {
	p := d.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp*")
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, io.NewSectionReader(src, 0, size))
	d.putBytes.Add(n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("put %s: %d of %d bytes", key, n, size)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func (d *dirBucket) Create(ctx context.Context, key string, data []byte, _ string) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	tmp, err := d.temp(key, bytesReaderAt(data), int64(len(data)))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, d.path(key)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", key, ErrExist)
		}
		return err
	}
	return nil
}

func (d *dirBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := d.check(ctx); err != nil {
		return nil, err
	}
	f, err := os.Open(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotExist)
	}
	return f, err
}

func (d *dirBucket) Size(ctx context.Context, key string) (int64, error) {
	if err := d.check(ctx); err != nil {
		return 0, err
	}
	fi, err := os.Stat(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("size %s: %w", key, ErrNotExist)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (d *dirBucket) Dirs(ctx context.Context, prefix string) ([]string, error) {
	if err := d.check(ctx); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(d.path(prefix))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs, err
}

func (d *dirBucket) Delete(ctx context.Context, key string) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	if err := os.Remove(d.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// appendingDir is a dirBucket that appends on the "server side".
type appendingDir struct{ *dirBucket }

func (d appendingDir) MinAppendSize() int64 { return d.minAppend }

func (d appendingDir) Append(ctx context.Context, key string, size int64, src io.ReaderAt, n int64) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	f, err := os.OpenFile(d.path(key), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != size {
		return fmt.Errorf("append %s: the object has %d bytes, not %d", key, fi.Size(), size)
	}
	w, err := io.Copy(io.NewOffsetWriter(f, size), io.NewSectionReader(src, 0, n))
	d.putBytes.Add(w)
	d.appends.Add(1)
	return err
}
