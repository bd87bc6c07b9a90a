package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/sacred-go/sacred/pkg/observer"
)

// writeOutput stores the output of a beat and returns captured_out for
// [0, To), with changed false when the beat brings nothing new.
//
// The full output goes to a GridFS file as well when captured_out cannot
// hold it: when it is longer than captured_out's head and tail, or when it
// is not valid UTF-8 (captured_out is a string: invalid bytes become
// U+FFFD there, the file keeps them as written). The file is written from
// From on, which the runner guarantees is where the last successful beat
// ended; from 0 when this beat starts it.
func (o *Observer) writeOutput(ctx context.Context, ev *observer.HeartbeatEvent) (text string, changed bool, err error) {
	o.out, o.outTo = ev.Output, ev.To
	_, haveText := o.stored["captured_out"]
	fileDue := ev.Final && o.outFile != nil && o.outFile.length != ev.To
	if ev.From == ev.To && haveText && !fileDue {
		return "", false, nil
	}
	limit := int64(o.outputHead + o.outputTail)
	var whole []byte
	if ev.To <= limit {
		whole = make([]byte, ev.To)
		if _, err := ev.Output.ReadAt(whole, 0); err != nil && !errors.Is(err, io.EOF) {
			return "", false, fmt.Errorf("read captured output: %w", err)
		}
		if !o.rawOutput && !validUTF8(whole, ev.Final) {
			o.rawOutput = true
		}
	}
	if ev.To > limit || o.rawOutput {
		if o.outFile == nil {
			o.outFile = newAppendFile(o.files, o.chunks, outputFileName(o.cfg.Runs, o.idStr), o.id)
		}
		// A short output's file is written up to its end at every beat
		// (it is at most 1 MiB), so readers have all of it during the
		// run; a long one's last, partial chunk only at the end.
		if err := o.outFile.write(ctx, ev.Output, ev.From, ev.To, ev.Final || ev.To <= limit); err != nil {
			return "", false, err
		}
	}
	if whole != nil {
		return strings.ToValidUTF8(string(whole), "\uFFFD"), true, nil
	}
	text, err = o.capturedOut(ev.Output, ev.To)
	return text, err == nil, err
}

// finishOutput writes the end of the full output at the final event, if
// the final beat did not: from where the file's length says it is stored
// to the end of the latest output.
func (o *Observer) finishOutput(ctx context.Context) error {
	if o.outFile == nil || o.outFile.length == o.outTo {
		return nil
	}
	return o.outFile.write(ctx, o.out, o.outFile.length, o.outTo, true)
}

// validUTF8 tells whether b is valid UTF-8. Unless final, an incomplete
// character at the end is taken as one still being written.
func validUTF8(b []byte, final bool) bool {
	if !final {
		b = trimRuneEnd(b)
	}
	return utf8.Valid(b)
}

// capturedOut is the text of captured_out for a long output: its head and
// tail around a marker naming the GridFS file.
func (o *Observer) capturedOut(out observer.Output, to int64) (string, error) {
	head := make([]byte, o.outputHead)
	if _, err := out.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read captured output: %w", err)
	}
	tail := make([]byte, o.outputTail)
	if _, err := out.ReadAt(tail, to-int64(o.outputTail)); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read captured output: %w", err)
	}
	head = trimRuneEnd(head)
	tail = trimRuneStart(tail)
	omitted := to - int64(len(head)) - int64(len(tail))
	marker := fmt.Sprintf("\n[sacred: %d bytes of output omitted here (%d in all); the full output is the GridFS file %q]\n",
		omitted, to, outputFileName(o.cfg.Runs, o.idStr))
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
