//go:build !windows

// These tests drive Unix tools (sh, head, stty) and ptys; Windows has its
// own in capture_windows_test.go.

package capture

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
)

const benchBytes = 256 << 20

func devNull(b *testing.B) *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

func benchChild() *exec.Cmd {
	return exec.Command("head", "-c", fmt.Sprint(benchBytes), "/dev/zero")
}

// BenchmarkPipeThroughput captures benchBytes written by a child, passed
// through to /dev/null, with the zero-copy path and with the plain one.
func BenchmarkPipeThroughput(b *testing.B) {
	for _, splice := range []bool{true, false} {
		b.Run(fmt.Sprint("splice=", splice), func(b *testing.B) {
			old := disableSplice
			disableSplice = !splice
			defer func() { disableSplice = old }()
			null := devNull(b)
			dir := b.TempDir()
			b.SetBytes(benchBytes)
			for b.Loop() {
				c, err := New(Options{Mode: ModePipe, Stdout: null, Stderr: null, SpoolDir: dir})
				if err != nil {
					b.Fatal(err)
				}
				cmd := benchChild()
				c.Attach(cmd)
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				c.Started()
				if err := cmd.Wait(); err != nil {
					b.Fatal(err)
				}
				if err := c.Drain(context.Background()); err != nil {
					b.Fatal(err)
				}
				if c.Output().Size() != benchBytes {
					b.Fatalf("captured %d bytes", c.Output().Size())
				}
				c.Close()
			}
		})
	}
}

// BenchmarkPlainCopyBaseline is what cat does: the child's pipe copied to
// /dev/null with read/write and one 128 KiB buffer, no spool.
func BenchmarkPlainCopyBaseline(b *testing.B) {
	null := devNull(b)
	buf := make([]byte, 128<<10)
	b.SetBytes(benchBytes)
	for b.Loop() {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd := benchChild()
		cmd.Stdout = w
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		w.Close()
		if _, err := io.CopyBuffer(struct{ io.Writer }{null}, r, buf); err != nil {
			b.Fatal(err)
		}
		r.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}
