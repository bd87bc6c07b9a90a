package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"os"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Resource stores the file once per (filename, md5) and links it to the run.
func (o *Observer) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return o.wrap("resource: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	name := truncate(ev.Path, 256)
	var id int64
	err = tx.QueryRowContext(ctx, o.q("SELECT resource_id FROM resource WHERE filename = ? AND md5sum = ? ORDER BY resource_id LIMIT 1"), name, ev.MD5).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		content, rerr := os.ReadFile(ev.Path)
		if rerr != nil {
			return o.wrap("resource", rerr)
		}
		id, err = o.insertID(ctx, tx, "resource", "resource_id", "filename, md5sum, content", name, ev.MD5, content)
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

// Artifact stores the file as a new artifact row, as Sacred does.
func (o *Observer) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	content, err := os.ReadFile(ev.Path)
	if err != nil {
		return o.wrap("artifact "+ev.Name, err)
	}
	_, err = o.db.ExecContext(ctx, o.q("INSERT INTO artifact (filename, content, run_id) VALUES (?, ?, ?)"), truncate(ev.Name, 64), content, o.runID)
	return o.wrap("artifact "+ev.Name, err)
}
