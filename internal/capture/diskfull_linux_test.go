package capture

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// A spool on a full disk stops capture but never pass-through: the tiny
// tmpfs gives a real ENOSPC (needs root; skipped otherwise).
func TestSpoolDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v); TestSpoolDeviceFull covers the same with /dev/full", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	for _, splice := range []bool{true, false} {
		t.Run(fmt.Sprint("splice=", splice), func(t *testing.T) {
			withSplice(t, splice)
			checkSpoolFull(t, Options{SpoolDir: dir}, nil)
		})
	}
}
