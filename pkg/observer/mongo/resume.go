package mongo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/pkg/observer"
)

var _ observer.Resumer = (*Observer)(nil)

// Resume takes up run ev.ID of the runs collection (observer.Resumer). It
// loads what the calls that follow build on: the runs document's fields
// as stored (so that a beat $sets only what changed, and a failed run
// keeps the result of its last beat), the GridFS file of the full output
// with its length and chunks (the output stored so far), and for each
// metric series its last document and that document's length (the next
// points are appended there, guarded by that length as always).
func (o *Observer) Resume(ctx context.Context, ev *observer.StartEvent) error {
	if o.id != nil {
		return fmt.Errorf("mongo: run %s was already started", o.idStr)
	}
	ctx, cancel := o.opCtx(ctx)
	defer cancel()
	raw, id, err := o.findRun(ctx, ev.ID)
	if err != nil {
		return err
	}
	o.idStr = idString(id)
	elems, err := raw.Elements()
	if err != nil {
		return o.errorf("read run %s: %w", ev.ID, err)
	}
	stored := make(map[string]bson.RawValue, len(elems))
	for _, e := range elems {
		stored[e.Key()] = e.Value()
	}
	if err := o.resumeOutput(ctx, id); err != nil {
		return err
	}
	if err := o.resumeMetrics(ctx, id, raw); err != nil {
		return err
	}
	o.id, o.stored = id, stored
	return nil
}

// findRun finds the runs document of id, stored as a number (ours and
// Sacred's) or as a string (-i).
func (o *Observer) findRun(ctx context.Context, id string) (bson.Raw, any, error) {
	ids := []any{storedID(id)}
	if _, isString := ids[0].(string); !isString {
		ids = append(ids, id)
	}
	for _, v := range ids {
		raw, err := o.runs.FindOne(ctx, bson.D{{Key: "_id", Value: v}}).Raw()
		if err == nil {
			return raw, v, nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, nil, o.errorf("look up run %s in %s.%s: %w", id, o.cfg.DB, o.cfg.Runs, err)
		}
	}
	return nil, nil, fmt.Errorf("mongo: no run %s in %s.%s: %w", id, o.cfg.DB, o.cfg.Runs, observer.ErrNotFound)
}

// resumeOutput picks up the GridFS file of the full output, when the run
// has one: the chunks before its length are whole, those from it on may be
// partial (replaced when written again).
func (o *Observer) resumeOutput(ctx context.Context, runID any) error {
	var f struct {
		ID     bson.ObjectID `bson:"_id"`
		Length int64         `bson:"length"`
	}
	name := outputFileName(o.cfg.Runs, o.idStr)
	err := o.files.FindOne(ctx, bson.D{{Key: "filename", Value: name}},
		options.FindOne().SetSort(bson.D{{Key: "uploadDate", Value: -1}})).Decode(&f)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return o.errorf("look up the output of run %s: %w", o.idStr, err)
	}
	af := newAppendFile(o.files, o.chunks, name, runID)
	af.id, af.length, af.written = f.ID, f.Length, true
	cur, err := o.chunks.Find(ctx, bson.D{{Key: "files_id", Value: f.ID}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "n", Value: 1}}))
	if err != nil {
		return o.errorf("read the output chunks of run %s: %w", o.idStr, err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		cid, ok := cur.Current.Lookup("_id").ObjectIDOK()
		n, ok2 := cur.Current.Lookup("n").AsInt64OK()
		if !ok || !ok2 || n < 0 {
			continue
		}
		af.chunkID(n) // grow the list; chunks missing in between get new ids
		af.chunkIDs[n] = cid
		if (n+1)*chunkSize > f.Length {
			af.partial[n] = true
		}
	}
	if err := cur.Err(); err != nil {
		return o.errorf("read the output chunks of run %s: %w", o.idStr, err)
	}
	// A file for an output that fits captured_out exists only for bytes
	// that are not UTF-8; the final event has nothing to add until a beat
	// brings more.
	o.outFile, o.rawOutput, o.outTo = af, true, f.Length
	return nil
}

// resumeMetrics finds each series' last document and its length, and the
// info.metrics pointers in the order they were recorded.
func (o *Observer) resumeMetrics(ctx context.Context, runID any, run bson.Raw) error {
	cur, err := o.metrics.Find(ctx, bson.D{{Key: "run_id", Value: runID}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "name", Value: 1}, {Key: "part", Value: 1}}))
	if err != nil {
		return o.errorf("read the metrics of run %s: %w", o.idStr, err)
	}
	type docRef struct {
		id   bson.ObjectID
		name string
		part int
	}
	var docs []docRef
	for cur.Next(ctx) {
		id, ok := cur.Current.Lookup("_id").ObjectIDOK()
		name, ok2 := cur.Current.Lookup("name").StringValueOK()
		if !ok || !ok2 {
			continue // not one of ours
		}
		part, _ := cur.Current.Lookup("part").AsInt64OK()
		docs = append(docs, docRef{id, name, int(part)})
	}
	err = cur.Err()
	cur.Close(ctx)
	if err != nil {
		return o.errorf("read the metrics of run %s: %w", o.idStr, err)
	}
	// Ids are made in order by the observer that wrote them: sorting by
	// them is the order the series were first seen.
	slices.SortFunc(docs, func(a, b docRef) int { return bytes.Compare(a.id[:], b.id[:]) })
	last := map[string]docRef{}
	for _, d := range docs {
		if l, ok := last[d.name]; !ok || d.part > l.part {
			last[d.name] = d
		}
	}
	series := make(map[string]*metricDoc, len(last))
	for name, d := range last {
		doc, err := o.metrics.FindOne(ctx, bson.D{{Key: "_id", Value: d.id}},
			options.FindOne().SetProjection(bson.D{{Key: "steps", Value: 1}})).Raw()
		if err != nil {
			return o.errorf("read metric %s of run %s: %w", name, o.idStr, err)
		}
		steps, _ := doc.Lookup("steps").ArrayOK()
		vals, err := steps.Values()
		if err != nil {
			return o.errorf("read metric %s of run %s: %w", name, o.idStr, err)
		}
		md := &metricDoc{id: d.id, part: d.part, n: len(vals), size: o.metricBase(name, d.part)}
		for i := range md.n {
			md.size += 3 * elemSize(i)
		}
		series[name] = md
	}
	// info.metrics as the run has it, then series it does not name yet.
	var pointers bson.A
	named := map[string]bool{}
	if list, ok := run.Lookup("info", "metrics").ArrayOK(); ok {
		vals, _ := list.Values()
		for _, v := range vals {
			d, ok := v.DocumentOK()
			if !ok {
				continue
			}
			name, ok1 := d.Lookup("name").StringValueOK()
			id, ok2 := d.Lookup("id").StringValueOK()
			if ok1 && ok2 && !named[name] {
				named[name] = true
				pointers = append(pointers, bson.D{{Key: "name", Value: name}, {Key: "id", Value: id}})
			}
		}
	}
	for _, d := range docs {
		if d.part == 0 && !named[d.name] {
			named[d.name] = true
			pointers = append(pointers, bson.D{{Key: "name", Value: d.name}, {Key: "id", Value: d.id.Hex()}})
		}
	}
	o.series, o.pointers = series, pointers
	return nil
}
