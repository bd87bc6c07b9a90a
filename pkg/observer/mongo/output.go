package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// flushOutput sets captured_out (bounded) and, for a long output, appends
// what is new to the full output in GridFS.
func (o *Observer) flushOutput(ctx context.Context) error {
	if o.out == nil || (o.outTo == o.outFor && (o.outFile == nil || o.outFile.length == o.outTo)) {
		return nil
	}
	limit := int64(o.outputHead + o.outputTail)
	if o.outTo > limit {
		if o.outFile == nil {
			o.outFile = newAppendFile(o.files, o.chunks, outputFileName(o.cfg.Runs, o.idStr), o.id)
		}
		if err := o.outFile.flush(ctx, o.out, o.outTo, o.final); err != nil {
			return err
		}
	}
	text, err := o.capturedOut()
	if err != nil {
		return err
	}
	o.setWant("captured_out", text)
	o.outFor = o.outTo
	return nil
}

// capturedOut is the text of captured_out: the whole output while it is
// short, else its head and tail around a marker naming the GridFS file.
func (o *Observer) capturedOut() (string, error) {
	limit := int64(o.outputHead + o.outputTail)
	if o.outTo <= limit {
		b := make([]byte, o.outTo)
		if _, err := o.out.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read captured output: %w", err)
		}
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil
	}
	head := make([]byte, o.outputHead)
	if _, err := o.out.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read captured output: %w", err)
	}
	tail := make([]byte, o.outputTail)
	if _, err := o.out.ReadAt(tail, o.outTo-int64(o.outputTail)); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read captured output: %w", err)
	}
	head = trimRuneEnd(head)
	tail = trimRuneStart(tail)
	omitted := o.outTo - int64(len(head)) - int64(len(tail))
	marker := fmt.Sprintf("\n[sacred: %d bytes of output omitted here (%d in all); the full output is the GridFS file %q]\n",
		omitted, o.outTo, outputFileName(o.cfg.Runs, o.idStr))
	return strings.ToValidUTF8(string(head), "\uFFFD") + marker + strings.ToValidUTF8(string(tail), "\uFFFD"), nil
}

// trimRuneEnd drops an incomplete UTF-8 sequence at the end of b.
func trimRuneEnd(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && i < len(b); i++ {
		if utf8.RuneStart(b[len(b)-1-i]) {
			if r, _ := utf8.DecodeRune(b[len(b)-1-i:]); r == utf8.RuneError && i+1 < utf8.UTFMax {
				return b[:len(b)-1-i]
			}
			return b
		}
	}
	return b
}

// trimRuneStart drops continuation bytes at the start of b.
func trimRuneStart(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && i < len(b); i++ {
		if utf8.RuneStart(b[i]) {
			return b[i:]
		}
	}
	return b
}
