package mongo

import (
	"context"
	"errors"
	"mime"
	"os"
	"path/filepath"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Resource implements observer.Observer: the file is stored in GridFS
// (once per content) and [path, md5] added to resources, once.
func (o *Observer) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	if err := o.started(); err != nil {
		return err
	}
	key := ev.Path + "\x00" + ev.MD5
	if o.resources[key] {
		return nil
	}
	ctx, cancel := o.opCtx(ctx)
	defer cancel()
	if _, err := storeDedup(ctx, o.files, o.chunks, ev.Path, ev.Path, ev.MD5); err != nil {
		return o.errorf("store resource %s: %w", ev.Path, err)
	}
	pair := o.pairs.pair(ev.Path, ev.MD5)
	// $addToSet: a call that comes again, or a resource opened twice, is
	// listed once, as Sacred skips duplicates.
	if _, err := o.runs.UpdateOne(ctx, bson.D{{Key: "_id", Value: o.id}}, bson.D{{Key: "$addToSet", Value: bson.D{{Key: "resources", Value: pair}}}}); err != nil {
		return o.errorf("add resource %s to run %s: %w", ev.Path, o.idStr, err)
	}
	o.resources[key] = true
	return nil
}

// Artifact implements observer.Observer: the file goes to GridFS as
// artifact://<runs collection>/<id>/<name> with its md5, content type and
// metadata, and {name, file_id} is added to artifacts.
//
// The file id is chosen once per artifact and kept until the artifact is
// recorded, so that a call that comes again after an error neither
// uploads the file twice nor lists it twice.
func (o *Observer) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	if err := o.started(); err != nil {
		return err
	}
	ctx, cancel := o.opCtx(ctx)
	defer cancel()
	path := ev.Path
	if path == "" {
		path = ev.OrigPath
	}
	key := ev.Name + "\x00" + path
	fileID, again := o.artifactID[key]
	if !again {
		fileID = bson.NewObjectID()
		o.artifactID[key] = fileID
	}
	name := artifactFileName(o.cfg.Runs, o.idStr, ev.Name)
	stored := false
	if again {
		err := o.files.FindOne(ctx, bson.D{{Key: "_id", Value: fileID}}).Err()
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return o.errorf("look up artifact %s of run %s: %w", ev.Name, o.idStr, err)
		}
		stored = err == nil
	}
	if !stored {
		if err := o.uploadArtifact(ctx, fileID, name, path, ev, again); err != nil {
			return o.errorf("store artifact %s of run %s: %w", ev.Name, o.idStr, err)
		}
	}
	listed := false
	if stored {
		// An earlier call may have listed it too. FerretDB 1.x takes
		// {"artifacts.file_id": {$ne: id}} as "some element differs", so
		// the guard below alone does not tell; a match on the id does.
		err := o.runs.FindOne(ctx, bson.D{{Key: "_id", Value: o.id}, {Key: "artifacts.file_id", Value: fileID}}).Err()
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return o.errorf("look up artifact %s of run %s: %w", ev.Name, o.idStr, err)
		}
		listed = err == nil
	}
	if !listed {
		entry := bson.D{{Key: "name", Value: ev.Name}, {Key: "file_id", Value: fileID}}
		filter := bson.D{{Key: "_id", Value: o.id}, {Key: "artifacts.file_id", Value: bson.D{{Key: "$ne", Value: fileID}}}}
		if _, err := o.runs.UpdateOne(ctx, filter, bson.D{{Key: "$push", Value: bson.D{{Key: "artifacts", Value: entry}}}}); err != nil {
			return o.errorf("add artifact %s to run %s: %w", ev.Name, o.idStr, err)
		}
	}
	delete(o.artifactID, key)
	return nil
}

func (o *Observer) uploadArtifact(ctx context.Context, id bson.ObjectID, name, path string, ev *observer.ArtifactEvent, again bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var extra bson.D
	ct := ev.ContentType
	if ct == "" {
		// Go's table says "text/plain; charset=utf-8"; Sacred's guess has
		// no parameters.
		if mt, _, err := mime.ParseMediaType(mime.TypeByExtension(filepath.Ext(ev.Name))); err == nil {
			ct = mt
		}
	}
	if ct != "" {
		// Incense reads it.
		extra = append(extra, bson.E{Key: "contentType", Value: ct})
	}
	meta := bson.D{}
	if ev.Metadata != nil {
		meta = docOf(ev.Metadata)
	}
	extra = append(extra, bson.E{Key: "metadata", Value: meta})
	_, err = putFile(ctx, o.files, o.chunks, id, name, f, extra, again)
	return err
}
