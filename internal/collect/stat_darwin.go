package collect

import (
	"io/fs"
	"syscall"
	"time"
)

// statCtime returns the inode change time, which git records in the index
// to notice content replaced with its old size and mtime kept.
func statCtime(fi fs.FileInfo) (time.Time, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(st.Ctimespec.Sec), int64(st.Ctimespec.Nsec)), true
}
