package tinydb

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/sacred-go/sacred/pkg/observer"
)

// output sets captured_out from the beat's output and, when the output is
// too long for the document or is not valid UTF-8, keeps the whole of it,
// byte for byte, in OutputDir/<run id>.txt (captured_out_file).
//
// captured_out is the whole output while it is at most head+tail bytes
// (read again from the runner's spool at each beat, so at most 1 MiB);
// beyond that, its first head and last tail bytes around a marker. The
// file receives [From, To) at offset From, as the contract says From is
// where this observer's last stored beat ended.
func (o *Observer) output(ev *observer.HeartbeatEvent) error {
	to := ev.To
	limit := int64(o.outputHead + o.outputTail)
	var whole []byte
	if to <= limit {
		var err error
		if whole, err = readOutput(ev.Output, 0, to); err != nil {
			return fmt.Errorf("tinydb: run %s: reading the output: %w", o.id, err)
		}
	}
	var errFile error
	if o.outFile != nil || to > limit || !validText(whole, ev.Final) {
		errFile = o.writeOutputFile(ev)
	}
	if whole != nil {
		o.d.setString(fCapturedOut, strings.ToValidUTF8(string(whole), "\uFFFD"))
	} else {
		text, err := o.headTail(ev.Output, to)
		if err != nil {
			return errors.Join(errFile, fmt.Errorf("tinydb: run %s: reading the output: %w", o.id, err))
		}
		o.d.setString(fCapturedOut, text)
	}
	if o.outFile != nil {
		o.d.setString(fCapturedOutFile, o.outRel)
	}
	return errFile
}

// validText tells whether b is valid UTF-8. Unless final, a character
// cut at the end (the rest comes with the next beat) does not count.
func validText(b []byte, final bool) bool {
	if utf8.Valid(b) {
		return true
	}
	if final {
		return false
	}
	for cut := 1; cut <= 3 && cut <= len(b); cut++ {
		if utf8.Valid(b[:len(b)-cut]) && !utf8.FullRune(b[len(b)-cut:]) {
			return true
		}
	}
	return false
}

// readOutput reads [from, to) of the output.
func readOutput(out observer.Output, from, to int64) ([]byte, error) {
	b := make([]byte, to-from)
	if len(b) == 0 {
		return b, nil
	}
	n, err := out.ReadAt(b, from)
	if n == len(b) {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// headTail is captured_out for a long output: the first and last bytes,
// cut at UTF-8 boundaries, around a marker that names the full file.
func (o *Observer) headTail(out observer.Output, to int64) (string, error) {
	head, err := readOutput(out, 0, int64(o.outputHead))
	if err != nil {
		return "", err
	}
	tail, err := readOutput(out, to-int64(o.outputTail), to)
	if err != nil {
		return "", err
	}
	// Do not cut a character in two: drop a partial one at the end of
	// the head and continuation bytes at the start of the tail.
	for i := 1; i <= 3 && i <= len(head); i++ {
		if utf8.RuneStart(head[len(head)-i]) {
			if !utf8.FullRune(head[len(head)-i:]) {
				head = head[:len(head)-i]
			}
			break
		}
	}
	for i := 0; i < 3 && len(tail) > 0 && !utf8.RuneStart(tail[0]); i++ {
		tail = tail[1:]
	}
	omitted := to - int64(len(head)) - int64(len(tail))
	marker := fmt.Sprintf("\n[sacred: %d bytes of output omitted here (%d in all); the full output is the file %s in the store]\n", omitted, to, o.outRel)
	return strings.ToValidUTF8(string(head), "\uFFFD") + marker + strings.ToValidUTF8(string(tail), "\uFFFD"), nil
}

// writeOutputFile brings the full-output file up to To: the first time
// with [0, To), then with [From, To) at From.
func (o *Observer) writeOutputFile(ev *observer.HeartbeatEvent) error {
	if o.outFile == nil {
		name := o.id
		if !safeName(name) {
			name = "doc" + o.key
		}
		rel := path.Join(OutputDir, name+".txt")
		o.outRel = rel
		dir := filepath.Join(o.st.dir, OutputDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("tinydb: run %s: %w", o.id, err)
		}
		f, err := os.OpenFile(filepath.Join(o.st.dir, filepath.FromSlash(rel)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("tinydb: run %s: %w", o.id, err)
		}
		if _, err := io.Copy(f, io.NewSectionReader(ev.Output, 0, ev.To)); err != nil {
			f.Close()
			return fmt.Errorf("tinydb: run %s: writing %s: %w", o.id, rel, err)
		}
		o.outFile = f
		return nil
	}
	if ev.To <= ev.From {
		return nil
	}
	w := io.NewOffsetWriter(o.outFile, ev.From)
	if _, err := io.Copy(w, io.NewSectionReader(ev.Output, ev.From, ev.To-ev.From)); err != nil {
		return fmt.Errorf("tinydb: run %s: writing %s: %w", o.id, o.outRel, err)
	}
	return nil
}

// safeName tells a run id that can name a file as it is.
func safeName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
