//go:build !linux

package childapi

// drainBacklog is a no-op where non-blocking accept is not wired up: the
// accept loop takes queued connections as fast as they come.
func drainBacklog(*Server) {}
