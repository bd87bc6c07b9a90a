package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Heartbeat stores the new output, the captured_out text, info, beat time
// and result in one transaction.
func (o *Observer) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	info, err := marshal(ev.Info)
	if err != nil {
		return o.wrap("encode info", err)
	}
	var out string
	var newBytes int64
	// Unchanged output is not rewritten: captured_out is the costly part
	// of a beat.
	writeOut := ev.Output != nil && (ev.To != o.outStored || o.outSeq == 0)
	if writeOut {
		out, err = o.capturedOut(ev.Output, ev.To)
		if err != nil {
			return o.wrap("read output", err)
		}
	}
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return o.wrap("heartbeat: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	seq := o.outSeq
	if ev.Output != nil && ev.To > o.outStored {
		// Only the bytes not stored yet, whatever From says, so a failed
		// beat is caught up by the next one.
		buf := make([]byte, outputChunk)
		for off := o.outStored; off < ev.To; {
			n := min(int64(outputChunk), ev.To-off)
			if _, err := ev.Output.ReadAt(buf[:n], off); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
				return o.wrap("read output", err)
			}
			if _, err := tx.ExecContext(ctx, o.q("INSERT INTO run_output (run_id, seq, content) VALUES (?, ?, ?)"), o.runID, seq, buf[:n]); err != nil {
				return o.wrap("insert output", err)
			}
			seq++
			off += n
		}
		newBytes = ev.To - o.outStored
	}
	q := "UPDATE run SET info = ?, heartbeat = ?"
	args := []any{info, o.d.tm(ev.BeatTime)}
	if writeOut {
		q += ", captured_out = ?"
		args = append(args, out)
	}
	if ev.HasResult {
		q += ", result = ?"
		args = append(args, o.resultFloat(ev.Result))
	}
	args = append(args, o.runID)
	if _, err := tx.ExecContext(ctx, o.q(q+" WHERE run_id = ?"), args...); err != nil {
		return o.wrap("update run", err)
	}
	if ev.HasResult {
		if err := o.setResultJSON(ctx, tx, ev.Result); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return o.wrap("heartbeat: commit", err)
	}
	o.outSeq = seq
	o.outStored += newBytes
	return nil
}

func (o *Observer) setResultJSON(ctx context.Context, tx *sql.Tx, r any) error {
	js, err := marshal(r)
	if err != nil {
		return o.wrap("encode result", err)
	}
	_, err = tx.ExecContext(ctx, o.q("UPDATE run_extra SET result = ? WHERE run_id = ?"), js, o.runID)
	return o.wrap("update result", err)
}

// capturedOut is the text for run.captured_out: the whole output decoded
// as UTF-8 with invalid bytes replaced, or its head and tail around a
// marker when it is larger than the cap.
func (o *Observer) capturedOut(out observer.Output, size int64) (string, error) {
	read := func(off, n int64) ([]byte, error) {
		b := make([]byte, n)
		if _, err := out.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return nil, err
		}
		return b, nil
	}
	if size <= int64(o.outCap) {
		b, err := read(0, size)
		if err != nil {
			return "", err
		}
		s := decodeText(b)
		if len(s) <= o.outCap {
			return s, nil
		}
	}
	headN := int64(o.outHead)
	tailN := int64(o.outCap-o.outHead) - 200 // room for the marker
	head, err := read(0, min(headN, size))
	if err != nil {
		return "", err
	}
	tail, err := read(max(size-tailN, 0), min(tailN, size))
	if err != nil {
		return "", err
	}
	// Cut at character boundaries so no character is split in two.
	for j := len(head) - 1; j >= 0 && j >= len(head)-utf8.UTFMax; j-- {
		if utf8.RuneStart(head[j]) {
			if !utf8.FullRune(head[j:]) {
				head = head[:j]
			}
			break
		}
	}
	for i := 0; i < 3 && len(tail) > 0 && !utf8.RuneStart(tail[0]); i++ {
		tail = tail[1:]
	}
	hs, ts := decodeText(head), decodeText(tail)
	// Replacement characters can make the text longer than the bytes.
	hs = clipHead(hs, int(headN))
	ts = clipTail(ts, int(tailN))
	omitted := size - int64(len(head)) - int64(len(tail))
	return hs + fmt.Sprintf("\n[sacred: %d bytes of output omitted here; the whole output is in table run_output]\n", omitted) + ts, nil
}

func clipHead(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func clipTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return s[i:]
}

// decodeText decodes bytes as UTF-8, replacing each invalid byte with
// U+FFFD as Python's errors="replace" does, and NUL too, which PostgreSQL
// text cannot hold.
func decodeText(b []byte) string {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == 0 {
			r = utf8.RuneError
		}
		sb.WriteRune(r)
		b = b[n:]
	}
	return sb.String()
}
