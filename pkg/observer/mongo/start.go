package mongo

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/pkg/observer"
)

// ensureIndexes creates the indexes readers need, idempotently: an index
// that exists (even under another name) is fine.
func (o *Observer) ensureIndexes(ctx context.Context) error {
	type idx struct {
		coll   *mongo.Collection
		keys   bson.D
		name   string
		unique bool
	}
	for _, ix := range []idx{
		{o.metrics, bson.D{{Key: "run_id", Value: 1}, {Key: "name", Value: 1}}, "run_id_1_name_1", false},
		{o.files, bson.D{{Key: "filename", Value: 1}, {Key: "uploadDate", Value: 1}}, "filename_1_uploadDate_1", false},
		{o.chunks, bson.D{{Key: "files_id", Value: 1}, {Key: "n", Value: 1}}, "files_id_1_n_1", true},
	} {
		opts := options.Index().SetName(ix.name)
		if ix.unique {
			opts.SetUnique(true)
		}
		_, err := ix.coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: opts})
		var ce mongo.CommandError
		if err != nil && errors.As(err, &ce) && (ce.Code == 85 || ce.Code == 86 || ce.Code == 68) {
			err = nil // IndexOptionsConflict, IndexKeySpecsConflict, IndexAlreadyExists
		}
		if err != nil {
			return o.errorf("create index %s on %s: %w", ix.name, ix.coll.Name(), err)
		}
	}
	return nil
}

// storeSources stores the source files in GridFS, once per content.
func (o *Observer) storeSources(ctx context.Context, e *observer.Experiment) ([]bson.ObjectID, error) {
	ids := make([]bson.ObjectID, len(e.Sources))
	for i, s := range e.Sources {
		path := s.Path
		if path == "" {
			path = filepath.Join(e.BaseDir, s.Name)
		}
		id, err := storeDedup(ctx, o.bucket, o.files, path, path, s.MD5)
		if err != nil {
			return nil, o.errorf("store source %s: %w", s.Name, err)
		}
		ids[i] = id
	}
	return ids, nil
}

// Queued implements observer.Observer: a QUEUED document, as Sacred's -q.
func (o *Observer) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	if o.cfg.Overwrite != 0 {
		return "", errors.New("mongo: a queued run cannot overwrite an existing run (drop :RUNID or overwrite=)")
	}
	return o.start(ctx, ev, true)
}

// Started implements observer.Observer: it stores the sources, then inserts
// the runs document with a new integer id (max + 1, retried on a duplicate
// key), the given id, or over the run named by overwrite.
func (o *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return o.start(ctx, ev, false)
}

func (o *Observer) start(ctx context.Context, ev *observer.StartEvent, queued bool) (string, error) {
	ctx, cancel := o.opCtx(ctx)
	defer cancel()
	if err := o.ensureIndexes(ctx); err != nil {
		return "", err
	}
	sources, err := o.storeSources(ctx, &ev.Experiment)
	if err != nil {
		return "", err
	}
	build := func(id any) bson.D {
		if queued {
			return queuedDoc(id, ev, sources, o.pairs)
		}
		return startDoc(id, ev, sources, o.pairs)
	}
	switch {
	case o.cfg.Overwrite != 0:
		err = o.overwrite(ctx, ev, build)
	case ev.ID != "":
		o.id = storedID(ev.ID)
		_, err = o.runs.InsertOne(ctx, build(o.id))
		if mongo.IsDuplicateKeyError(err) {
			return "", fmt.Errorf("mongo: run %s in %s.%s: %w", ev.ID, o.cfg.DB, o.cfg.Runs, observer.ErrIDTaken)
		}
		if err != nil {
			err = o.errorf("insert run %s into %s.%s: %w", ev.ID, o.cfg.DB, o.cfg.Runs, err)
		}
	default:
		err = o.insertNew(ctx, build)
	}
	if err != nil {
		return "", err
	}
	o.idStr = idString(o.id)
	if !queued {
		// What a heartbeat may change: the document has these already.
		for _, f := range []bson.E{{Key: "captured_out", Value: ""}, {Key: "info", Value: bson.D{}}, {Key: "heartbeat", Value: nil}} {
			o.stored[f.Key] = rawOf(f.Value)
		}
	}
	return o.idStr, nil
}

// insertNew allocates max(_id) + 1 among numeric ids and inserts, retrying
// when a concurrent run took the id first.
func (o *Observer) insertNew(ctx context.Context, build func(any) bson.D) error {
	for attempt := 0; attempt < maxIDAttempts; attempt++ {
		next, err := o.maxID(ctx)
		if err != nil {
			return o.errorf("find the largest run id in %s.%s: %w", o.cfg.DB, o.cfg.Runs, err)
		}
		next++
		o.id = intValue(next)
		_, err = o.runs.InsertOne(ctx, build(o.id))
		if err == nil {
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return o.errorf("insert run into %s.%s: %w", o.cfg.DB, o.cfg.Runs, err)
		}
	}
	return o.errorf("no free run id in %s.%s after %d attempts", o.cfg.DB, o.cfg.Runs, maxIDAttempts)
}

func (o *Observer) maxID(ctx context.Context) (int64, error) {
	// Only numeric ids: a string id (Sacred's -i) sorts above numbers and
	// made Sacred's allocation crash.
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$type", Value: "number"}}}}
	opts := options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}}).SetProjection(bson.D{{Key: "_id", Value: 1}})
	var doc bson.Raw
	err := o.runs.FindOne(ctx, filter, opts).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v := doc.Lookup("_id")
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32()), nil
	case bson.TypeInt64:
		return v.Int64(), nil
	case bson.TypeDouble:
		return int64(v.Double()), nil
	}
	return 0, fmt.Errorf("unexpected _id type %s", v.Type)
}

// overwrite records over an existing run, as Sacred's DB.COLLECTION:RUNID:
// the start fields are set again; fields not set again (an old stop_time,
// result or fail_trace) stay until the run sets them. The old metric
// documents of the run are removed so that series do not mix.
func (o *Observer) overwrite(ctx context.Context, ev *observer.StartEvent, build func(any) bson.D) error {
	want := strconv.FormatInt(o.cfg.Overwrite, 10)
	if ev.ID != "" && ev.ID != want {
		return fmt.Errorf("mongo: asked to overwrite run %s, but another observer chose id %s", want, ev.ID)
	}
	var existing bson.Raw
	var found any
	for _, id := range []any{intValue(o.cfg.Overwrite), want} {
		err := o.runs.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&existing)
		if err == nil {
			found = id
			break
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return o.errorf("look up run %s to overwrite: %w", want, err)
		}
	}
	if found == nil {
		return fmt.Errorf("mongo: no run %s in %s.%s to overwrite; check the id after ':'", want, o.cfg.DB, o.cfg.Runs)
	}
	o.id = found
	doc := build(found)[1:] // all but _id
	if _, err := o.runs.UpdateOne(ctx, bson.D{{Key: "_id", Value: found}}, bson.D{{Key: "$set", Value: doc}}); err != nil {
		return o.errorf("overwrite run %s: %w", want, err)
	}
	if _, err := o.metrics.DeleteMany(ctx, bson.D{{Key: "run_id", Value: found}}); err != nil {
		return o.errorf("remove old metrics of run %s: %w", want, err)
	}
	return nil
}
