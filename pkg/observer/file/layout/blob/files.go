package blob

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

// md5Of returns the hex md5 of the first size bytes of f.
func md5Of(f io.ReaderAt, size int64) (string, error) {
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// metricsBlob keeps metrics.json of one run with layout.Metrics. The
// object is replaced whole at each beat with new points, but the old
// points are copied as bytes from a local copy of the content last stored
// (a temporary file), never decoded or encoded again, and never held in
// memory.
//
// When a write fails, the new points are dropped and the error returned:
// the retry decorator sends the same points again. The object in the
// store is then still the content of the local copy, which is read back
// before the next write.
//
// After Resume there is no local copy: the content is the object another
// observer stored, which is read from the bucket before the next write
// (inBucket).
type metricsBlob struct {
	key      string
	m        *layout.Metrics
	tempDir  string
	cur      *os.File // the content last stored; nil when none
	curSize  int64
	inBucket bool // the content is the object in the bucket, not cur
}

// flush stores metrics.json when it was never stored or points are
// pending.
func (mb *metricsBlob) flush(ctx context.Context, b Bucket) error {
	if !mb.m.Dirty() {
		return nil
	}
	if mb.m.Unknown() {
		var data []byte
		switch {
		case mb.cur != nil:
			data = make([]byte, mb.curSize)
			if _, err := mb.cur.ReadAt(data, 0); err != nil {
				return fmt.Errorf("reading the local copy of %s: %w", layout.MetricsFile, err)
			}
		case mb.inBucket:
			var err error
			data, err = readObject(ctx, b, mb.key, maxJSON)
			if errors.Is(err, ErrNotExist) {
				data, err = nil, nil
			}
			if err != nil {
				mb.m.Abort() // the caller sends the points again
				return fmt.Errorf("reading %s: %w", layout.MetricsFile, err)
			}
		}
		if err := mb.m.Load(data); err != nil {
			return err
		}
	}
	next, err := newTempFile(mb.tempDir, "sacred-metrics-*.json")
	if err != nil {
		return fmt.Errorf("writing %s: %w", layout.MetricsFile, err)
	}
	var old io.ReaderAt // not a nil *os.File
	if mb.cur != nil {
		old = mb.cur
	}
	n, err := mb.m.Encode(next, old)
	if err == nil {
		err = b.Put(ctx, mb.key, next, n, typeJSON)
	}
	if err != nil {
		mb.m.Abort()
		closeTemp(next)
		return err
	}
	mb.m.Commit()
	if mb.cur != nil {
		closeTemp(mb.cur)
	}
	mb.cur, mb.curSize, mb.inBucket = next, n, false
	return nil
}

func (mb *metricsBlob) close() {
	if mb.cur != nil {
		closeTemp(mb.cur)
		mb.cur = nil
	}
}

// newTempFile creates a temporary file that is gone from the directory
// at once where the system allows it (it lives on through its
// descriptor), so that nothing is left behind by a killed wrapper.
func newTempFile(dir, pattern string) (*os.File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name()) // refused on Windows while open: closeTemp removes it
	return f, nil
}

// closeTemp closes and removes a file of newTempFile.
func closeTemp(f *os.File) {
	name := f.Name()
	f.Close()
	_ = os.Remove(name)
}
