//go:build !linux

package testutil

import "testing"

// Tmpfs skips the test: a disk that fills up is made with a Linux tmpfs.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	t.Skip("a tmpfs to fill needs Linux")
	return ""
}
