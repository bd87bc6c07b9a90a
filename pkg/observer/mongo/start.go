package mongo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
		// Reading the indexes first spares the write a create is, at
		// every start but the first: many runs starting at once queue
		// behind each other's writes on FerretDB.
		if ok, err := hasIndex(ctx, ix.coll, ix.keys); err != nil {
			return o.errorf("list the indexes of %s: %w", ix.coll.Name(), err)
		} else if ok {
			continue
		}
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

// hasIndex tells whether coll has an index on keys, under any name.
func hasIndex(ctx context.Context, coll *mongo.Collection, keys bson.D) (bool, error) {
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		var ce mongo.CommandError
		if errors.As(err, &ce) && ce.Code == 26 { // NamespaceNotFound: no collection yet
			return false, nil
		}
		return false, err
	}
	want, err := bson.Marshal(keys)
	if err != nil {
		return false, err
	}
	for _, s := range specs {
		if sameKeys(s.KeysDocument, want) {
			return true, nil
		}
	}
	return false, nil
}

// sameKeys compares index key documents by field order and direction,
// whatever number type the server stores the direction as.
func sameKeys(a, b bson.Raw) bool {
	ea, err1 := a.Elements()
	eb, err2 := b.Elements()
	if err1 != nil || err2 != nil || len(ea) != len(eb) {
		return false
	}
	for i := range ea {
		va, ok1 := ea[i].Value().AsInt64OK()
		vb, ok2 := eb[i].Value().AsInt64OK()
		if ea[i].Key() != eb[i].Key() || !ok1 || !ok2 || va != vb {
			return false
		}
	}
	return true
}

// storeSources stores the source files in GridFS, once per content. A
// source larger than the size cap (Omitted) is recorded by a placeholder
// (see storeOmitted).
func (o *Observer) storeSources(ctx context.Context, e *observer.Experiment) ([]bson.ObjectID, error) {
	ids := make([]bson.ObjectID, len(e.Sources))
	for i, s := range e.Sources {
		path := s.Path
		if path == "" {
			path = filepath.Join(e.BaseDir, s.Name)
		}
		var id bson.ObjectID
		var err error
		if s.Omitted {
			id, err = storeOmitted(ctx, o.files, o.chunks, path, s)
		} else {
			id, err = storeDedup(ctx, o.files, o.chunks, path, path, s.MD5)
		}
		if err != nil {
			return nil, o.errorf("store source %s: %w", s.Name, err)
		}
		ids[i] = id
	}
	return ids, nil
}

// storeOmitted records a source whose content is left out (larger than the
// source size cap) as a GridFS file that holds one line saying so, with the
// source's own md5 and size in its metadata ({md5, size, omitted: true}).
// Every GridFS reader (Omniboard, Sacredboard, Incense) shows that line
// where the source would be. The file's top-level md5 is that of the line,
// so Sacred's lookup by the source's md5 never takes it for the content.
func storeOmitted(ctx context.Context, files, chunks *mongo.Collection, name string, s observer.Source) (bson.ObjectID, error) {
	if id, ok, err := findFile(ctx, files, name, s.MD5, true); err != nil {
		return id, fmt.Errorf("look up %s in GridFS: %w", name, err)
	} else if ok {
		return id, nil
	}
	line := fmt.Sprintf("sacred: the content of this source was not recorded: %d bytes (md5 %s), larger than the source size cap\n", s.Size, s.MD5)
	meta := bson.D{{Key: "metadata", Value: bson.D{
		{Key: "md5", Value: s.MD5},
		{Key: "size", Value: s.Size},
		{Key: "omitted", Value: true},
	}}}
	id := bson.NewObjectID()
	if _, err := putFile(ctx, files, chunks, id, name, strings.NewReader(line), meta, false); err != nil {
		return id, err
	}
	return id, nil
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
	// The token tells this start's document from any other, so that a
	// start whose reply was lost can find out whether its insert went
	// through, and remove exactly its own document if the start fails.
	token := bson.NewObjectID().Hex()
	build := func(id any) bson.D {
		if queued {
			return queuedDoc(id, ev, sources, o.pairs, token)
		}
		return startDoc(id, ev, sources, o.pairs, token)
	}
	switch {
	case o.cfg.Overwrite != 0:
		err = o.overwrite(ctx, ev, build)
	case ev.ID != "":
		id := storedID(ev.ID)
		var taken bool
		taken, err = o.insertRun(ctx, id, build(id))
		if taken {
			return "", fmt.Errorf("mongo: run %s in %s.%s: %w", ev.ID, o.cfg.DB, o.cfg.Runs, observer.ErrIDTaken)
		}
		if err != nil {
			err = o.errorf("insert run %s into %s.%s: %w", ev.ID, o.cfg.DB, o.cfg.Runs, err)
		}
	default:
		err = o.insertNew(ctx, build)
	}
	if err != nil {
		o.id = nil
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

// Backoff of the id allocation after a collision, so that concurrent starts
// that chose the same id spread out instead of colliding again: a random
// wait up to idBackoffMin << collisions, at most idBackoffMax. The cap is
// low: a collision costs the server little (the _id index answers it),
// while every round a start sits out is one more id it may lose.
const (
	idBackoffMin = 10 * time.Millisecond
	idBackoffMax = 250 * time.Millisecond
	// idRescan: after this many collisions the largest id is looked up
	// again (it may have moved far ahead); in between the next id is
	// tried, as Sacred's file storage does. Looking it up costs a scan of
	// the runs on FerretDB.
	idRescan = 32
)

// insertNew allocates max(_id) + 1 among numeric ids and inserts. A
// collision with a concurrent start, or a server that did not answer,
// is retried after a random backoff until ctx ends: the caller's deadline
// is the bound.
func (o *Observer) insertNew(ctx context.Context, build func(any) bson.D) error {
	var next int64
	var lastErr error
	rescan := true
	for attempt := 1; ; attempt++ {
		if rescan {
			top, err := o.maxID(ctx)
			switch {
			case err == nil:
				next, rescan = max(next, top+1), false
			case transient(err) && ctx.Err() == nil:
				lastErr = o.errorf("find the largest run id in %s.%s: %w", o.cfg.DB, o.cfg.Runs, err)
			default:
				return o.errorf("find the largest run id in %s.%s: %w", o.cfg.DB, o.cfg.Runs, err)
			}
		}
		if !rescan {
			id := intValue(next)
			taken, err := o.insertRun(ctx, id, build(id))
			switch {
			case taken:
				next++
				rescan = attempt%idRescan == 0
				lastErr = nil
			case err == nil:
				return nil
			case transient(err) && ctx.Err() == nil:
				// insertRun removed the document if it was there.
				lastErr = o.errorf("insert run %d into %s.%s: %w", next, o.cfg.DB, o.cfg.Runs, err)
			default:
				return o.errorf("insert run into %s.%s: %w", o.cfg.DB, o.cfg.Runs, err)
			}
		}
		if err := sleep(ctx, idBackoff(attempt)); err != nil {
			if lastErr != nil {
				return lastErr
			}
			return o.errorf("no free run id in %s.%s after %d attempts: %w", o.cfg.DB, o.cfg.Runs, attempt, err)
		}
	}
}

func idBackoff(attempt int) time.Duration {
	limit := min(idBackoffMin<<min(attempt-1, 16), idBackoffMax)
	return rand.N(limit) + time.Millisecond
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// insertRun inserts the runs document doc under id; taken reports that
// another run has that id. On success o.id is id.
//
// An insert whose reply was lost may have gone through: the document is
// then looked for by its start token, and adopted if it is there. If that
// cannot be known, the document is removed by its token, so that a start
// that fails leaves no RUNNING run whose command never ran.
//
// A config the server refuses (see updateUser) is stored as its JSON text:
// the document is inserted with an empty config, which is then set.
func (o *Observer) insertRun(ctx context.Context, id any, doc bson.D) (taken bool, err error) {
	filter := bson.D{{Key: "_id", Value: id}, {Key: "meta.start_token", Value: startToken(doc)}}
	_, err = o.runs.InsertOne(ctx, doc)
	if mongo.IsDuplicateKeyError(err) {
		return true, nil
	}
	if err != nil && refused(err) {
		base, user := splitUser(doc)
		if _, err = o.runs.InsertOne(ctx, base); mongo.IsDuplicateKeyError(err) {
			return true, nil
		}
		if err == nil {
			o.id = id
			o.idStr = idString(id)
			if err = o.updateUser(ctx, user); err != nil {
				o.removeRun(ctx, filter)
				return false, err
			}
			return false, nil
		}
	}
	if err != nil {
		if transient(err) {
			// Did it go through after all? Ask while ctx allows.
			if n, cerr := o.runs.CountDocuments(ctx, filter); cerr == nil && n == 1 {
				o.id = id
				return false, nil
			}
		}
		o.removeRun(ctx, filter)
		return false, err
	}
	o.id = id
	return false, nil
}

// removeRun deletes a run document this observer may have inserted, even
// after ctx ended (bounded by cleanupTimeout). It is best effort: a server
// that does not answer keeps it, and an insert still queued on the server
// may land after it.
func (o *Observer) removeRun(ctx context.Context, filter bson.D) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = o.runs.DeleteOne(cctx, filter)
}

func startToken(doc bson.D) string {
	for _, e := range doc {
		if e.Key == "meta" {
			for _, m := range e.Value.(bson.D) {
				if m.Key == "start_token" {
					return m.Value.(string)
				}
			}
		}
	}
	return ""
}

// splitUser returns doc with an empty config and meta.config_updates, and
// those user values as a $set.
func splitUser(doc bson.D) (base, user bson.D) {
	base = make(bson.D, len(doc))
	copy(base, doc)
	for i, e := range base {
		switch e.Key {
		case "config":
			user = append(user, e)
			base[i].Value = bson.D{}
		case "meta":
			meta := append(bson.D(nil), e.Value.(bson.D)...)
			for j, m := range meta {
				if m.Key == "config_updates" {
					user = append(user, bson.E{Key: "meta.config_updates", Value: m.Value})
					meta[j].Value = bson.D{}
				}
			}
			base[i].Value = meta
		}
	}
	return base, user
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
	o.idStr = want
	base, user := splitUser(build(found)[1:]) // all but _id
	if _, err := o.runs.UpdateOne(ctx, bson.D{{Key: "_id", Value: found}}, bson.D{{Key: "$set", Value: base}}); err != nil {
		return o.errorf("overwrite run %s: %w", want, err)
	}
	if err := o.updateUser(ctx, user); err != nil {
		return o.errorf("overwrite the config of run %s: %w", want, err)
	}
	if _, err := o.metrics.DeleteMany(ctx, bson.D{{Key: "run_id", Value: found}}); err != nil {
		return o.errorf("remove old metrics of run %s: %w", want, err)
	}
	return nil
}
