package mongo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/pkg/observer"
)

// metricWrite is one write of a metrics call: points appended to one
// document of a series, or a new document holding them.
type metricWrite struct {
	name  string
	doc   metricDoc // the document after the write
	n0    int       // points in it before
	isNew bool
	pts   []observer.MetricPoint
}

// LogMetrics implements observer.Observer: the points of every series in
// one ordered bulk write, appended with $push/$each to the series' current
// document, created by an insert with its first points. A series that
// would pass the document limit continues in a new document with the same
// run_id and name and "part": 1, 2, ...
//
// A batch sent again after an error is stored once: each append is guarded
// by the length the document had (steps: {$size: n}), and the next call
// after a failed one first finds out which of its writes went through
// (settle) and leaves out those points if the batch starts with them.
func (o *Observer) LogMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	if err := o.started(); err != nil {
		return err
	}
	ctx, cancel := o.opCtx(ctx)
	defer cancel()
	defer o.sharePointers(ev.Info)
	metrics := ev.Metrics
	if o.inflight != nil {
		landed, err := o.settle(ctx)
		if err != nil {
			return o.errorf("check the metrics of run %s after a failed write: %w", o.idStr, err)
		}
		metrics = withoutLanded(metrics, landed)
	}
	writes := o.planMetrics(metrics)
	if len(writes) == 0 {
		return nil
	}
	if err := o.writeMetrics(ctx, writes); err != nil {
		o.inflight = writes
		return o.errorf("write metrics of run %s: %w", o.idStr, err)
	}
	for _, w := range writes {
		o.applyWrite(w)
	}
	return nil
}

// sharePointers hands info.metrics to the runner, which passes it on to
// the other observers, as Sacred's info does.
func (o *Observer) sharePointers(info map[string]any) {
	if len(o.pointers) > 0 && info != nil {
		info["metrics"] = pointerList(o.pointers)
	}
}

func (o *Observer) applyWrite(w metricWrite) {
	d := w.doc
	o.series[w.name] = &d
	if w.isNew && d.part == 0 {
		o.pointers = append(o.pointers, bson.D{{Key: "name", Value: w.name}, {Key: "id", Value: d.id.Hex()}})
	}
}

// settle finds out which writes of the failed metrics call went through
// (each is atomic, and an ordered bulk write stops at the first failure),
// takes them as done, and returns their points by series.
func (o *Observer) settle(ctx context.Context) (map[string][]observer.MetricPoint, error) {
	landed := map[string][]observer.MetricPoint{}
	for _, w := range o.inflight {
		filter := bson.D{{Key: "_id", Value: w.doc.id}}
		if !w.isNew {
			filter = append(filter, bson.E{Key: "steps", Value: bson.D{{Key: "$size", Value: w.doc.n}}})
		}
		err := o.metrics.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		if errors.Is(err, mongo.ErrNoDocuments) {
			break
		}
		if err != nil {
			return nil, err
		}
		o.applyWrite(w)
		landed[w.name] = append(landed[w.name], w.pts...)
	}
	o.inflight = nil
	return landed, nil
}

// withoutLanded leaves out of each series the points that were stored
// already, if it starts with them (it does when the caller sends again
// what failed, as the retry decorator does).
func withoutLanded(metrics []observer.MetricSeries, landed map[string][]observer.MetricPoint) []observer.MetricSeries {
	if len(landed) == 0 {
		return metrics
	}
	out := make([]observer.MetricSeries, 0, len(metrics))
	for _, s := range metrics {
		if l := landed[s.Name]; len(l) > 0 && len(s.Points) >= len(l) && samePoints(s.Points[:len(l)], l) {
			s = observer.MetricSeries{Name: s.Name, Points: s.Points[len(l):]}
		}
		out = append(out, s)
	}
	return out
}

func samePoints(a, b []observer.MetricPoint) bool {
	for i := range a {
		if a[i].Step != b[i].Step || math.Float64bits(a[i].Value) != math.Float64bits(b[i].Value) || !a[i].Time.Equal(b[i].Time) {
			return false
		}
	}
	return true
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

// planMetrics splits the points into writes, one per document touched,
// without changing the observer's state.
func (o *Observer) planMetrics(metrics []observer.MetricSeries) []metricWrite {
	var writes []metricWrite
	for _, s := range metrics {
		pts := s.Points
		if len(pts) == 0 {
			continue
		}
		var d metricDoc
		if cur, ok := o.series[s.Name]; ok {
			d = *cur
		} else {
			d = metricDoc{id: bson.NewObjectID(), size: o.metricBase(s.Name, 0)}
		}
		for i := 0; i < len(pts); {
			n0, size := d.n, d.size
			j := i
			for j < len(pts) {
				add := 3 * elemSize(d.n+(j-i))
				if size+add > o.metricDocLimit && d.n+(j-i) > 0 {
					break
				}
				size += add
				j++
			}
			if j > i {
				d.n += j - i
				d.size = size
				writes = append(writes, metricWrite{name: s.Name, doc: d, n0: n0, isNew: n0 == 0, pts: pts[i:j]})
			}
			if j < len(pts) {
				// Continue in a new document.
				d = metricDoc{id: bson.NewObjectID(), part: d.part + 1, size: o.metricBase(s.Name, d.part+1)}
			}
			i = j
		}
	}
	return writes
}

// writeMetrics sends the writes in one ordered bulk write. An append that
// finds its document at another length than planned is an error: the
// document changed behind this observer's back (settle sorts it out).
func (o *Observer) writeMetrics(ctx context.Context, writes []metricWrite) error {
	models := make([]mongo.WriteModel, len(writes))
	appends := int64(0)
	for i, w := range writes {
		models[i] = o.metricModel(w)
		if !w.isNew {
			appends++
		}
	}
	res, err := o.metrics.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true))
	if err != nil {
		return err
	}
	if res.MatchedCount != appends {
		return fmt.Errorf("%d of %d metric documents did not have the length expected", appends-res.MatchedCount, appends)
	}
	return nil
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

// metricModel is one write: an insert of the whole document for its first
// points (fields in the order Sacred's upserts leave them), or $push/$each
// addressed by _id (FerretDB answers that without a scan) and guarded by
// the document's length.
func (o *Observer) metricModel(w metricWrite) mongo.WriteModel {
	steps := make(bson.A, len(w.pts))
	values := make(bson.A, len(w.pts))
	times := make(bson.A, len(w.pts))
	for i, p := range w.pts {
		steps[i] = intValue(p.Step)
		values[i] = p.Value
		times[i] = date(p.Time)
	}
	if w.isNew {
		doc := bson.D{{Key: "_id", Value: w.doc.id}, {Key: "run_id", Value: o.id}, {Key: "name", Value: w.name}}
		if w.doc.part > 0 {
			doc = append(doc, bson.E{Key: "part", Value: int32(w.doc.part)})
		}
		doc = append(doc, bson.E{Key: "steps", Value: steps}, bson.E{Key: "timestamps", Value: times}, bson.E{Key: "values", Value: values})
		return mongo.NewInsertOneModel().SetDocument(doc)
	}
	update := bson.D{{Key: "$push", Value: bson.D{
		{Key: "steps", Value: bson.D{{Key: "$each", Value: steps}}},
		{Key: "timestamps", Value: bson.D{{Key: "$each", Value: times}}},
		{Key: "values", Value: bson.D{{Key: "$each", Value: values}}},
	}}}
	filter := bson.D{{Key: "_id", Value: w.doc.id}, {Key: "steps", Value: bson.D{{Key: "$size", Value: w.n0}}}}
	return mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(update)
}
