//go:build !linux && !darwin

package collect

import (
	"io/fs"
	"time"
)

// statCtime is unknown here: size and mtime alone decide.
func statCtime(fs.FileInfo) (time.Time, bool) { return time.Time{}, false }
