package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Reader reads runs back from a MongoDB database, ours or one written by
// Python Sacred.
type Reader struct {
	cfg           *Config
	client        *mongo.Client
	runs, metrics *mongo.Collection
	files, chunks *mongo.Collection
}

var _ observer.Reader = (*Reader)(nil)

// Open connects to the store cfg names and returns a reader over it.
func Open(ctx context.Context, cfg *Config, s observer.Settings) (*Reader, error) {
	o, err := New(ctx, cfg, s)
	if err != nil {
		return nil, err
	}
	return &Reader{cfg: cfg, client: o.client, runs: o.runs, metrics: o.metrics, files: o.files, chunks: o.chunks}, nil
}

// Close disconnects.
func (r *Reader) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.client.Disconnect(ctx)
}

// Runs lists run ids: numeric ids in numeric order (they count up, so
// oldest first), then string ids by start time.
func (r *Reader) Runs(ctx context.Context) ([]string, error) {
	cur, err := r.runs.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "start_time", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("mongo: list runs in %s.%s: %w", r.cfg.DB, r.cfg.Runs, r.cfg.scrub(err))
	}
	defer cur.Close(ctx)
	var keys []runKey
	for cur.Next(ctx) {
		var start time.Time
		if st, ok := cur.Current.Lookup("start_time").DateTimeOK(); ok {
			start = time.UnixMilli(st).UTC()
		}
		keys = append(keys, keyOf(cur.Current.Lookup("_id"), start))
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("mongo: list runs: %w", r.cfg.scrub(err))
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.id
	}
	return ids, nil
}

// runKey is what runs are listed by: numeric ids in numeric order (they
// count up, so oldest first), then string ids by start time, then by id.
type runKey struct {
	num   int64
	isNum bool
	id    string
	start time.Time
}

func keyOf(id bson.RawValue, start time.Time) runKey {
	k := runKey{id: idString(plain(id)), start: start}
	switch id.Type {
	case bson.TypeInt32:
		k.num, k.isNum = int64(id.Int32()), true
	case bson.TypeInt64:
		k.num, k.isNum = id.Int64(), true
	case bson.TypeDouble:
		k.num, k.isNum = int64(id.Double()), true
	}
	return k
}

func (a runKey) less(b runKey) bool {
	if a.isNum != b.isNum {
		return a.isNum
	}
	if a.isNum {
		return a.num < b.num
	}
	if !a.start.Equal(b.start) {
		return a.start.Before(b.start)
	}
	return a.id < b.id
}

// find fetches the runs document of an id given as text: a decimal id is
// looked up as a number first, then as a string (Sacred's -i).
func (r *Reader) find(ctx context.Context, id string) (bson.Raw, error) {
	cands := []any{storedID(id)}
	if _, isStr := cands[0].(string); !isStr {
		cands = append(cands, id)
	}
	for _, c := range cands {
		raw, err := r.runs.FindOne(ctx, bson.D{{Key: "_id", Value: c}}).Raw()
		if err == nil {
			return raw, nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, fmt.Errorf("mongo: read run %s: %w", id, r.cfg.scrub(err))
		}
	}
	return nil, fmt.Errorf("mongo: run %s in %s.%s: %w", id, r.cfg.DB, r.cfg.Runs, observer.ErrNotFound)
}

// Run fetches one run with its metrics and its full output.
func (r *Reader) Run(ctx context.Context, id string) (*observer.Run, error) {
	raw, err := r.find(ctx, id)
	if err != nil {
		return nil, err
	}
	run := runOfDoc(id, raw)
	if err := r.sourceFiles(ctx, []*observer.Run{run}); err != nil {
		return nil, err
	}
	runID := raw.Lookup("_id")
	run.Output, err = r.output(ctx, runID, id, str(raw.Lookup("captured_out")))
	if err != nil {
		return nil, err
	}
	if err := r.readMetrics(ctx, bson.D{{Key: "run_id", Value: runID}}, func(bson.Raw) *observer.Run { return run }); err != nil {
		return nil, err
	}
	return run, nil
}

// output is the full output: the GridFS file when the output was cut,
// else captured_out.
func (r *Reader) output(ctx context.Context, runID bson.RawValue, id, inline string) ([]byte, error) {
	var f struct {
		ID bson.ObjectID `bson:"_id"`
	}
	err := r.files.FindOne(ctx, bson.D{{Key: "filename", Value: outputFileName(r.cfg.Runs, id)}},
		options.FindOne().SetSort(bson.D{{Key: "uploadDate", Value: -1}})).Decode(&f)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return []byte(inline), nil
	}
	if err != nil {
		return nil, fmt.Errorf("mongo: look up the output of run %s: %w", id, r.cfg.scrub(err))
	}
	ds, err := openChunks(ctx, r.files, r.chunks, f.ID)
	if err != nil {
		return nil, fmt.Errorf("mongo: open the output of run %s: %w", id, r.cfg.scrub(err))
	}
	defer ds.Close()
	b, err := io.ReadAll(ds)
	if err != nil {
		return nil, fmt.Errorf("mongo: read the output of run %s: %w", id, r.cfg.scrub(err))
	}
	return b, nil
}

// Artifact opens the content of the last artifact of that name.
func (r *Reader) Artifact(ctx context.Context, id, name string) (io.ReadCloser, error) {
	raw, err := r.find(ctx, id)
	if err != nil {
		return nil, err
	}
	var fileID any
	if arts, ok := raw.Lookup("artifacts").ArrayOK(); ok {
		for _, v := range values(arts) {
			if d, ok := v.DocumentOK(); ok && str(d.Lookup("name")) == name {
				fileID = plain(d.Lookup("file_id"))
				if oid, ok := d.Lookup("file_id").ObjectIDOK(); ok {
					fileID = oid
				}
			}
		}
	}
	if fileID == nil {
		return nil, fmt.Errorf("mongo: artifact %q of run %s: %w", name, id, observer.ErrNotFound)
	}
	ds, err := openChunks(ctx, r.files, r.chunks, fileID)
	if errors.Is(err, mongo.ErrFileNotFound) {
		return nil, fmt.Errorf("mongo: artifact %q of run %s: file missing from GridFS: %w", name, id, observer.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("mongo: open artifact %q of run %s: %w", name, id, r.cfg.scrub(err))
	}
	return ds, nil
}

func host(d bson.Raw) *observer.Host {
	h := &observer.Host{
		Hostname:    str(d.Lookup("hostname")),
		CPU:         str(d.Lookup("cpu")),
		CPUCount:    int(intOf(d.Lookup("cpu_count"))),
		MemoryTotal: uint64(intOf(d.Lookup("memory_total"))),
	}
	if a, ok := d.Lookup("os").ArrayOK(); ok {
		vs := values(a)
		for i := 0; i < 2 && i < len(vs); i++ {
			h.OS[i] = str(vs[i])
		}
	}
	if env, ok := d.Lookup("ENV").DocumentOK(); ok {
		h.ENV = map[string]string{}
		els, _ := env.Elements()
		for _, e := range els {
			h.ENV[e.Key()] = str(e.Value())
		}
	}
	if g, ok := d.Lookup("gpus").DocumentOK(); ok {
		info := &observer.GPUInfo{DriverVersion: str(g.Lookup("driver_version"))}
		if a, ok := g.Lookup("gpus").ArrayOK(); ok {
			for _, v := range values(a) {
				if gd, ok := v.DocumentOK(); ok {
					pm, _ := gd.Lookup("persistence_mode").BooleanOK()
					info.GPUs = append(info.GPUs, observer.GPU{Model: str(gd.Lookup("model")), TotalMemory: int(intOf(gd.Lookup("total_memory"))), PersistenceMode: pm})
				}
			}
		}
		h.GPUs = info
	}
	return h
}

func meta(d bson.Raw) observer.Meta {
	m := observer.Meta{
		Command: str(d.Lookup("command")),
		Comment: str(d.Lookup("comment")),
		Cwd:     str(d.Lookup("cwd")),
	}
	if o, ok := d.Lookup("options").DocumentOK(); ok {
		m.Options = mapOf(o)
	}
	if o, ok := d.Lookup("config_updates").DocumentOK(); ok {
		m.ConfigUpdates = mapOf(o)
	}
	if a, ok := d.Lookup("named_configs").ArrayOK(); ok {
		m.NamedConfigs = []string{}
		for _, v := range values(a) {
			m.NamedConfigs = append(m.NamedConfigs, str(v))
		}
	}
	if a, ok := d.Lookup("argv").ArrayOK(); ok {
		for _, v := range values(a) {
			m.Argv = append(m.Argv, str(v))
		}
	}
	if p, ok := d.Lookup("priority").AsFloat64OK(); ok {
		m.Priority = &p
	}
	if t := timeOf(d.Lookup("queue_time")); !t.IsZero() {
		m.QueueTime = &t
	}
	if r, ok := d.Lookup("rerun_of").DocumentOK(); ok {
		m.RerunOf = observer.RunRefOf(mapOf(r))
	}
	return m
}

// pairOf reads a pair stored as a two-element array (Sacred) or as a
// document {"0": a, "1": b} (ours on FerretDB).
func pairOf(v bson.RawValue) (bson.RawValue, bson.RawValue) {
	if a, ok := v.ArrayOK(); ok {
		vs := values(a)
		if len(vs) >= 2 {
			return vs[0], vs[1]
		}
	}
	if d, ok := v.DocumentOK(); ok {
		return d.Lookup("0"), d.Lookup("1")
	}
	return bson.RawValue{}, bson.RawValue{}
}

func values(a bson.RawArray) []bson.RawValue {
	vs, _ := a.Values()
	return vs
}

func str(v bson.RawValue) string {
	s, _ := v.StringValueOK()
	return s
}

func intOf(v bson.RawValue) int64 {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32())
	case bson.TypeInt64:
		return v.Int64()
	case bson.TypeDouble:
		return int64(v.Double())
	}
	return 0
}

func timeOf(v bson.RawValue) time.Time {
	if ms, ok := v.DateTimeOK(); ok {
		return time.UnixMilli(ms).UTC()
	}
	return time.Time{}
}

func mapOf(d bson.Raw) map[string]any {
	m := map[string]any{}
	els, _ := d.Elements()
	for _, e := range els {
		m[e.Key()] = plain(e.Value())
	}
	return m
}

// plain converts a BSON value to the JSON-like Go values the runner uses:
// documents to maps, arrays to slices, integers to int64, dates to
// time.Time and ObjectIds to their hex text.
func plain(v bson.RawValue) any {
	switch v.Type {
	case bson.TypeDouble:
		return v.Double()
	case bson.TypeString:
		return v.StringValue()
	case bson.TypeEmbeddedDocument:
		return mapOf(v.Document())
	case bson.TypeArray:
		vs := values(v.Array())
		out := make([]any, len(vs))
		for i, e := range vs {
			out[i] = plain(e)
		}
		return out
	case bson.TypeBoolean:
		return v.Boolean()
	case bson.TypeInt32:
		return int64(v.Int32())
	case bson.TypeInt64:
		return v.Int64()
	case bson.TypeDateTime:
		return timeOf(v)
	case bson.TypeObjectID:
		return v.ObjectID().Hex()
	case bson.TypeNull, bson.TypeUndefined, 0:
		return nil
	case bson.TypeBinary:
		_, b := v.Binary()
		return b
	}
	return v.String()
}
