//go:build !linux

package capture

import (
	"errors"
	"os"
)

// spliceCopy has no zero-copy path outside Linux.
func spliceCopy(*stream) bool { return false }

func growPipe(*os.File) {}

type stopper struct{}

func newStopper() (*stopper, error) { return nil, errors.ErrUnsupported }
func (*stopper) stop()              {}
func (*stopper) close()             {}
