package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Heartbeat stores, in one transaction, the output range [From, To) into
// run_output, the captured_out text, info, beat time and result. Output
// rows are keyed by their byte offset and written as upserts, so a beat
// sent again after an error (the range starts at the same From) replaces
// what an unacknowledged commit may have stored instead of doubling it.
func (o *Observer) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	ctx, cancel := o.opContext(ctx)
	defer cancel()
	info, err := marshal(ev.Info)
	if err != nil {
		return o.wrap("encode info", err)
	}
	// captured_out, the costly part of a beat, is rewritten only when
	// there is new output, and at the first beat.
	var out string
	writeOut := ev.Output != nil && (ev.To > ev.From || ev.From == 0)
	if writeOut {
		if out, err = o.capturedOut(ev.Output, ev.To); err != nil {
			return o.wrap("heartbeat", err)
		}
	}
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return o.wrap("heartbeat: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if ev.Output != nil && ev.To > ev.From {
		ins := o.q("INSERT INTO run_output (run_id, pos, content) VALUES (?, ?, ?)" +
			o.d.onConflict([]string{"run_id", "pos"}, []string{"content"}))
		buf := make([]byte, min(outputChunk, o.maxValue, ev.To-ev.From))
		for off := ev.From; off < ev.To; {
			chunk, err := readOutput(ev.Output, off, buf[:min(int64(len(buf)), ev.To-off)])
			if err != nil {
				return o.wrap("heartbeat", err)
			}
			if _, err := tx.ExecContext(ctx, ins, o.runID, off, chunk); err != nil {
				return o.wrap("store output", err)
			}
			off += int64(len(chunk))
		}
	}
	// captured_out has a statement of its own, so that with info it
	// never makes one statement larger than MySQL's packet.
	if writeOut {
		if _, err := tx.ExecContext(ctx, o.q("UPDATE run SET captured_out = ? WHERE run_id = ?"), out, o.runID); err != nil {
			return o.wrap("update captured_out", err)
		}
	}
	q := "UPDATE run SET heartbeat = ?"
	args := []any{o.d.tm(ev.BeatTime)}
	// Info too large to store keeps the info of the last beat.
	if v := o.fits("info", info); v != nil {
		q += ", info = ?"
		args = append(args, v)
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
	return o.wrap("heartbeat: commit", tx.Commit())
}

// readOutput reads len(buf) bytes of the output at off into buf. ReadAt
// may say io.EOF along with a full read at the end of the output; a read
// of nothing never reaches ReadAt (the spool answers io.EOF at its end
// whatever the length).
func readOutput(out observer.Output, off int64, buf []byte) ([]byte, error) {
	if len(buf) == 0 {
		return buf, nil
	}
	n, err := out.ReadAt(buf, off)
	if n == len(buf) {
		return buf, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("read output bytes %d to %d: %w", off, off+int64(len(buf)), err)
}

// setResultJSON stores the full result as JSON in run_extra.
func (o *Observer) setResultJSON(ctx context.Context, tx *sql.Tx, r any) error {
	js, err := marshal(r)
	if err != nil {
		return o.wrap("encode result", err)
	}
	v := o.fits("result", js)
	if v == nil {
		return nil // the result of the last beat stays
	}
	_, err = tx.ExecContext(ctx, o.q("UPDATE run_extra SET result = ? WHERE run_id = ?"), v, o.runID)
	return o.wrap("update result", err)
}

// capturedOut is the text for run.captured_out: the whole output decoded
// as UTF-8 with invalid bytes replaced, or its head and tail around a
// marker when it is larger than the cap.
func (o *Observer) capturedOut(out observer.Output, size int64) (string, error) {
	read := func(off, n int64) ([]byte, error) { return readOutput(out, off, make([]byte, n)) }
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
