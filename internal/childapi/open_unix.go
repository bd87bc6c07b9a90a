//go:build unix

package childapi

import "syscall"

// openFlags are added when the server opens a file a child named: open(2)
// of a FIFO without O_NONBLOCK waits for a writer for ever, and a terminal
// must not become the wrapper's controlling terminal.
const openFlags = syscall.O_NONBLOCK | syscall.O_NOCTTY
