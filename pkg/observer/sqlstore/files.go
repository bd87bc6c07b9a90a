package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Resource stores the file once per (filename, md5) and links it to the
// run, once: sending it again does no harm.
func (o *Observer) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	ctx, cancel := o.opContext(ctx)
	defer cancel()
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return o.wrap("resource: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	name := fit(ev.Path, 256)
	var id int64
	err = tx.QueryRowContext(ctx, o.q("SELECT resource_id FROM resource WHERE filename = ? AND md5sum = ? ORDER BY resource_id LIMIT 1"), name, ev.MD5).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		id, err = o.insertFile(ctx, tx, "resource", ev.Path, func(content []byte) (int64, error) {
			return o.insertID(ctx, tx, "resource", "resource_id", "filename, md5sum, content", name, ev.MD5, content)
		})
	}
	if err != nil {
		return o.wrap("resource "+ev.Path, err)
	}
	var linked int
	if err := tx.QueryRowContext(ctx, o.q("SELECT COUNT(*) FROM runs_resources WHERE run_id = ? AND resource_id = ?"), o.runID, id).Scan(&linked); err != nil {
		return o.wrap("resource link", err)
	}
	if linked == 0 {
		if _, err := tx.ExecContext(ctx, o.q("INSERT INTO runs_resources (run_id, resource_id) VALUES (?, ?)"), o.runID, id); err != nil {
			return o.wrap("resource link", err)
		}
	}
	return o.wrap("resource: commit", tx.Commit())
}

// Artifact stores the file as a new artifact row, as Sacred does. Sent
// again after an error whose commit went through, it adds a row with the
// same name and content, which the reader shows once.
func (o *Observer) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	ctx, cancel := o.opContext(ctx)
	defer cancel()
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return o.wrap("artifact: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	_, err = o.insertFile(ctx, tx, "artifact", ev.Path, func(content []byte) (int64, error) {
		return o.insertID(ctx, tx, "artifact", "artifact_id", "filename, content, run_id", fit(ev.Name, 64), content, o.runID)
	})
	if err != nil {
		return o.wrap("artifact "+ev.Name, err)
	}
	return o.wrap("artifact "+ev.Name+": commit", tx.Commit())
}

// insertFile stores a file through insertRow, which inserts the row of
// the artifact or resource with the content given and returns its id. A
// file larger than one value may be (MySQL's max_allowed_packet, or
// maxBlob) gets a row with NULL content, and its bytes go into file_chunk
// rows in order, each at most outputChunk: Sacred's schema has a single
// BLOB per file, and a value larger than the packet would reset the
// connection.
func (o *Observer) insertFile(ctx context.Context, tx *sql.Tx, kind, path string, insertRow func(content []byte) (int64, error)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() <= o.maxValue {
		b, err := io.ReadAll(io.LimitReader(f, o.maxValue+1))
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", path, err)
		}
		if int64(len(b)) <= o.maxValue {
			return insertRow(b)
		}
		// It grew since: store it in chunks from the start.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
	}
	id, err := insertRow(nil)
	if err != nil {
		return 0, err
	}
	ins := o.q("INSERT INTO file_chunk (kind, file_id, pos, content) VALUES (?, ?, ?, ?)")
	buf := make([]byte, min(outputChunk, o.maxValue))
	for pos := int64(0); ; {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			if _, err := tx.ExecContext(ctx, ins, kind, id, pos, buf[:n]); err != nil {
				return 0, fmt.Errorf("store a chunk: %w", err)
			}
			pos += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return id, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", path, err)
		}
	}
}
