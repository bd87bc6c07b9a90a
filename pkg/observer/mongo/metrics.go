package mongo

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/pkg/observer"
)

// LogMetrics implements observer.Observer. The points are kept and stored
// with the next write (this beat's, or a later one if the server is away),
// so it never asks the runner to send them again.
func (o *Observer) LogMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	for _, s := range ev.Metrics {
		if len(s.Points) == 0 {
			continue
		}
		if _, ok := o.pendingPoints[s.Name]; !ok {
			o.pendingOrder = append(o.pendingOrder, s.Name)
		}
		o.pendingPoints[s.Name] = append(o.pendingPoints[s.Name], s.Points...)
	}
	if o.due() {
		o.attempt(ctx, o.flushMetrics)
	}
	if len(o.pointers) > 0 && ev.Info != nil {
		ev.Info["metrics"] = pointerList(o.pointers)
	}
	return nil
}

// pointerList is info.metrics as plain Go values, for the runner's info.
func pointerList(a bson.A) []any {
	out := make([]any, len(a))
	for i, p := range a {
		d := p.(bson.D)
		out[i] = map[string]any{"name": d[0].Value, "id": d[1].Value}
	}
	return out
}

// elemSize is the BSON size of array element i holding an 8-byte value:
// type byte, decimal index, NUL, value.
func elemSize(i int) int64 {
	return int64(1 + len(strconv.Itoa(i)) + 1 + 8)
}

// flushMetrics writes the pending points of every metric in one ordered
// bulk write: $push/$each to the series' document, created by upsert on
// its first points. A series that would pass the document limit continues
// in a new document with the same run_id and name and "part": 1, 2, ...
func (o *Observer) flushMetrics(ctx context.Context) error {
	if len(o.pendingOrder) == 0 {
		return nil
	}
	type plan struct {
		name  string
		doc   metricDoc
		isNew bool
	}
	var plans []plan
	var models []mongo.WriteModel
	for _, name := range o.pendingOrder {
		pts := o.pendingPoints[name]
		cur, ok := o.series[name]
		if !ok {
			// Kept even if this write fails, so that a retry inserts the
			// same _id and finds it there if the first try went through.
			cur = &metricDoc{id: bson.NewObjectID(), size: o.metricBase(name, 0)}
			o.series[name] = cur
		}
		d := *cur
		isNew := d.n == 0
		for i := 0; i < len(pts); {
			j := i
			for j < len(pts) {
				add := 3 * elemSize(d.n+(j-i))
				if d.size+add > o.metricDocLimit && (d.n+(j-i) > 0) {
					break
				}
				d.size += add
				j++
			}
			if j > i {
				plans = append(plans, plan{name: name, doc: metricDoc{id: d.id, part: d.part, n: d.n + (j - i), size: d.size}, isNew: isNew})
				models = append(models, o.metricModel(name, d, isNew, pts[i:j]))
				d.n += j - i
				isNew = false
			}
			if j < len(pts) {
				// Continue in a new document.
				d = metricDoc{id: bson.NewObjectID(), part: d.part + 1, size: o.metricBase(name, d.part+1)}
				isNew = true
			}
			i = j
		}
	}
	// Unordered: the writes touch different documents. A retry after a
	// lost reply may find its inserts done (fine) or push points twice.
	if _, err := o.metrics.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil && !onlyDuplicates(err) {
		return fmt.Errorf("write metrics of run %s: %w", o.idStr, err)
	}
	for _, p := range plans {
		d := p.doc
		o.series[p.name] = &d
		if p.isNew && p.doc.part == 0 {
			o.pointers = append(o.pointers, bson.D{{Key: "name", Value: p.name}, {Key: "id", Value: p.doc.id.Hex()}})
		}
	}
	o.pendingPoints = map[string][]observer.MetricPoint{}
	o.pendingOrder = nil
	if len(o.pointers) > 0 {
		// info.metrics changes with a new series: Omniboard needs it.
		if i := o.wantIndex("info"); i >= 0 {
			d := o.want[i].Value.(bson.D)
			o.want[i].Value = withMetrics(d, o.pointers)
		} else {
			o.setWant("info", bson.D{{Key: "metrics", Value: o.pointers}})
		}
	}
	return nil
}

func (o *Observer) wantIndex(key string) int {
	for i, e := range o.want {
		if e.Key == key {
			return i
		}
	}
	return -1
}

func withMetrics(d bson.D, p bson.A) bson.D {
	out := make(bson.D, 0, len(d)+1)
	for _, e := range d {
		if e.Key != "metrics" {
			out = append(out, e)
		}
	}
	return append(out, bson.E{Key: "metrics", Value: p})
}

// metricBase is the estimated size of a metric document without points.
func (o *Observer) metricBase(name string, part int) int64 {
	size := int64(4 + 1)                            // length and terminator
	size += 1 + 4 + 12                              // _id
	size += 1 + 7 + 8 + 4 + int64(len(o.idStr)) + 1 // run_id (int64 or string)
	size += 1 + 5 + 4 + int64(len(name)) + 1
	if part > 0 {
		size += 1 + 5 + 4
	}
	for _, f := range []string{"steps", "values", "timestamps"} {
		size += int64(1+len(f)+1) + 4 + 1
	}
	return size
}

// metricModel is the write of some points of a series: an insert of the
// whole document for its first points (fields in the order Sacred's
// upserts leave them), then $push/$each addressed by _id alone (FerretDB
// answers that without a scan).
func (o *Observer) metricModel(name string, d metricDoc, isNew bool, pts []observer.MetricPoint) mongo.WriteModel {
	steps := make(bson.A, len(pts))
	values := make(bson.A, len(pts))
	times := make(bson.A, len(pts))
	for i, p := range pts {
		steps[i] = intValue(p.Step)
		values[i] = p.Value
		times[i] = date(p.Time)
	}
	if isNew {
		doc := bson.D{{Key: "_id", Value: d.id}, {Key: "run_id", Value: o.id}, {Key: "name", Value: name}}
		if d.part > 0 {
			doc = append(doc, bson.E{Key: "part", Value: int32(d.part)})
		}
		doc = append(doc, bson.E{Key: "steps", Value: steps}, bson.E{Key: "timestamps", Value: times}, bson.E{Key: "values", Value: values})
		return mongo.NewInsertOneModel().SetDocument(doc)
	}
	update := bson.D{{Key: "$push", Value: bson.D{
		{Key: "steps", Value: bson.D{{Key: "$each", Value: steps}}},
		{Key: "timestamps", Value: bson.D{{Key: "$each", Value: times}}},
		{Key: "values", Value: bson.D{{Key: "$each", Value: values}}},
	}}}
	return mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: d.id}}).SetUpdate(update)
}

// onlyDuplicates tells a bulk write whose only failures are inserts of
// documents that exist: a retried write whose first try went through.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}
