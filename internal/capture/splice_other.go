//go:build !linux

package capture

import "os"

// spliceCopy has no zero-copy path outside Linux.
func spliceCopy(*stream) bool { return false }

func growPipe(*os.File) {}
