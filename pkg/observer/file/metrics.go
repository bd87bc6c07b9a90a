package file

import (
	"fmt"
	"io"
	"os"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

// metricsFile keeps metrics.json of one run with layout.Metrics: the file
// is replaced whole (atomically) at each beat with new points, but the old
// points are copied as bytes from the old file, never decoded or encoded
// again.
//
// When a write fails (disk full), the new points are dropped and the error
// returned: the retry decorator sends the same points again (see
// observer.Observer). The file on disk is the previous one, untouched; it
// is read back before the next write. It is read back too when its size is
// not the one written last (someone else changed it).
type metricsFile struct {
	path string
	m    *layout.Metrics
}

func newMetricsFile(path string) *metricsFile {
	return &metricsFile{path: path, m: layout.NewMetrics()}
}

// add queues the points of ev.
func (f *metricsFile) add(ev *observer.MetricsEvent) { f.m.Add(ev) }

// flush writes the file when it does not exist yet or points are pending.
func (f *metricsFile) flush() error {
	if !f.m.Dirty() {
		return nil
	}
	if err := f.write(); err != nil {
		f.m.Abort()
		return err
	}
	f.m.Commit()
	return nil
}

func (f *metricsFile) write() error {
	old, err := os.Open(f.path)
	switch {
	case isNotExist(err):
		old = nil
		if f.m.Size() != 0 || f.m.Unknown() {
			if err := f.m.Load(nil); err != nil {
				return err
			}
		}
	case err != nil:
		return fmt.Errorf("reading %s: %w", f.path, err)
	default:
		defer old.Close()
		fi, err := old.Stat()
		if err != nil {
			return fmt.Errorf("reading %s: %w", f.path, err)
		}
		if f.m.Unknown() || fi.Size() != f.m.Size() {
			// After a failed write, or someone else changed the file:
			// read it the slow way.
			data, err := os.ReadFile(f.path)
			if err != nil {
				return fmt.Errorf("reading %s: %w", f.path, err)
			}
			if err := f.m.Load(data); err != nil {
				return fmt.Errorf("%s: %w", f.path, err)
			}
		}
	}
	pf, err := newPendingFile(f.path, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	defer pf.cleanup()
	var oldAt io.ReaderAt // not a nil *os.File
	if old != nil {
		oldAt = old
	}
	if _, err := f.m.Encode(pf, oldAt); err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	if err := pf.replace(false); err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	return nil
}
