package mongo

import (
	"context"
	"fmt"
	"mime"
	"path/filepath"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Resource implements observer.Observer: the file is stored in GridFS
// (once per content) and [path, md5] added to resources.
func (o *Observer) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	o.pendingFiles = append(o.pendingFiles, pendingFile{resource: ev})
	if o.due() {
		o.attempt(ctx, o.flushFiles)
	}
	return nil
}

// Artifact implements observer.Observer: the file goes to GridFS as
// artifact://<runs collection>/<id>/<name> with its content type and
// metadata, and {name, file_id} is added to artifacts.
func (o *Observer) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	o.pendingFiles = append(o.pendingFiles, pendingFile{artifact: ev})
	if o.due() {
		o.attempt(ctx, o.flushFiles)
	}
	return nil
}

func (o *Observer) flushFiles(ctx context.Context) error {
	for len(o.pendingFiles) > 0 {
		p := o.pendingFiles[0]
		var err error
		if p.artifact != nil {
			err = o.storeArtifact(ctx, p.artifact)
		} else {
			err = o.storeResource(ctx, p.resource)
		}
		if err != nil {
			return err
		}
		o.pendingFiles = o.pendingFiles[1:]
	}
	return nil
}

func (o *Observer) storeResource(ctx context.Context, ev *observer.ResourceEvent) error {
	if o.resources[ev.Path+"\x00"+ev.MD5] {
		return nil
	}
	if _, err := storeDedup(ctx, o.bucket, o.files, ev.Path, ev.Path, ev.MD5); err != nil {
		return fmt.Errorf("store resource %s: %w", ev.Path, err)
	}
	pair := o.pairs.pair(ev.Path, ev.MD5)
	// $addToSet: a retried write or a resource opened twice is listed once,
	// as Sacred skips duplicates.
	if _, err := o.runs.UpdateOne(ctx, bson.D{{Key: "_id", Value: o.id}}, bson.D{{Key: "$addToSet", Value: bson.D{{Key: "resources", Value: pair}}}}); err != nil {
		return fmt.Errorf("add resource %s to run %s: %w", ev.Path, o.idStr, err)
	}
	o.resources[ev.Path+"\x00"+ev.MD5] = true
	return nil
}

func (o *Observer) storeArtifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	name := artifactFileName(o.cfg.Runs, o.idStr, ev.Name)
	ct := ev.ContentType
	if ct == "" {
		// Go's table says "text/plain; charset=utf-8"; Sacred's guess has
		// no parameters.
		if mt, _, err := mime.ParseMediaType(mime.TypeByExtension(filepath.Ext(ev.Name))); err == nil {
			ct = mt
		}
	}
	meta := bson.D{}
	if ev.Metadata != nil {
		meta = docOf(ev.Metadata)
	}
	opts := options.GridFSUpload().SetMetadata(meta)
	path := ev.Path
	if path == "" {
		path = ev.OrigPath
	}
	fileID, err := upload(ctx, o.bucket, name, path, opts)
	if err != nil {
		return err
	}
	if ct != "" {
		// The driver's upload has no contentType; Sacred's files have it
		// (Incense reads it).
		if _, err := o.files.UpdateOne(ctx, bson.D{{Key: "_id", Value: fileID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "contentType", Value: ct}}}}); err != nil {
			_ = o.bucket.Delete(ctx, fileID)
			return fmt.Errorf("set content type of %s: %w", name, err)
		}
	}
	entry := bson.D{{Key: "name", Value: ev.Name}, {Key: "file_id", Value: fileID}}
	if _, err := o.runs.UpdateOne(ctx, bson.D{{Key: "_id", Value: o.id}}, bson.D{{Key: "$push", Value: bson.D{{Key: "artifacts", Value: entry}}}}); err != nil {
		_ = o.bucket.Delete(ctx, fileID)
		return fmt.Errorf("add artifact %s to run %s: %w", ev.Name, o.idStr, err)
	}
	return nil
}
