// Package mongo is Sacred's MongoObserver (-m, --mongo_db) for the sacred
// wrapper: runs, metrics and GridFS files in the shapes Omniboard,
// Sacredboard and Incense read, without Sacred's limits (documents stay
// under 16 MB, sources are not uploaded again, a lost server is caught up
// with). See docs/observers/mongo.md.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/pkg/observer"
)

func init() {
	observer.Register(observer.Kind{
		Option: "mongo_db",
		Short:  "m",
		Arg:    "SPEC",
		Title:  "MongoDB",
		Usage:  "record to MongoDB: DB, HOST:PORT:DB or mongodb://... (Sacred's MongoObserver)",
		Remote: true,
		Parse:  func(value string) (any, error) { return ParseSpec(value) },
		Redact: Redact,
		New: func(ctx context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
			return New(ctx, cfg.(*Config), s)
		},
		Open: func(ctx context.Context, cfg any, _ observer.Settings) (observer.Reader, error) {
			return newReader(ctx, cfg.(*Config))
		},
	})
}

// Limits of what one document holds. MongoDB refuses documents over 16 MiB;
// these keep well below it whatever the run does.
const (
	// DefaultOutputHead and DefaultOutputTail bound captured_out in the
	// runs document: when the output is longer, the document holds its
	// first and last bytes with a marker between them, and the full output
	// is in GridFS under captured_out://<runs collection>/<id>.
	DefaultOutputHead = 256 << 10
	DefaultOutputTail = 768 << 10
	// DefaultMetricDocLimit is the size at which a metric series continues
	// in a new document (see docs/observers/mongo.md).
	DefaultMetricDocLimit = 8 << 20
)

const (
	// connectTimeout bounds the reachability check before the child starts.
	connectTimeout = 10 * time.Second
	// serverSelection bounds each operation's wait for a server, so a
	// heartbeat against a dead server gives up quickly; a URI's
	// serverSelectionTimeoutMS wins.
	serverSelection = 5 * time.Second
	// opTimeout bounds one write when the caller's context has no
	// deadline.
	opTimeout = 2 * time.Minute
	// finalWithoutDeadline bounds the final flush when the runner gave no
	// deadline.
	finalWithoutDeadline = time.Minute
	maxBackoff           = 30 * time.Second
	maxIDAttempts        = 1000
)

// Open is the observer.Factory for -m: it parses the value, connects and
// checks that the server answers, so that a wrong value or a dead server is
// reported before the child starts.
func Open(ctx context.Context, value string, s observer.Settings) (observer.Observer, error) {
	cfg, err := ParseSpec(value)
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg, s)
}

// Observer records one run in MongoDB. The runner never calls it
// concurrently.
type Observer struct {
	cfg  *Config
	warn io.Writer

	client                 *mongo.Client
	db                     *mongo.Database
	runs, metrics          *mongo.Collection
	files, chunks          *mongo.Collection
	bucket                 *mongo.GridFSBucket
	pairs                  pairs
	ferret                 bool
	outputHead, outputTail int
	metricDocLimit         int64
	now                    func() time.Time
	// finalLimit, when set, bounds the final event's retries below the
	// caller's deadline (tests).
	finalLimit time.Duration

	id    any    // the _id as stored
	idStr string // the id as the runner knows it

	// stored holds the raw BSON of each runs field as last written, so a
	// beat $sets only what changed.
	stored map[string]bson.RawValue
	// want holds the latest value of the fields heartbeats and final events
	// set, in the order they are set.
	want bson.D
	// final is set by the final beat or event: the last partial chunk of
	// the output is written then.
	final bool

	// Output state: the latest output handle and its length, what
	// captured_out was computed for, and the full output file in GridFS.
	out       observer.Output
	outTo     int64
	outFor    int64
	outFile   *appendFile
	resources map[string]bool

	// Metrics not yet stored, and where each series goes.
	pendingPoints map[string][]observer.MetricPoint
	pendingOrder  []string
	series        map[string]*metricDoc
	pointers      bson.A

	// Artifacts and resources that could not be stored yet.
	pendingFiles []pendingFile

	// Retry state after a lost server.
	failing  bool
	failures int
	nextTry  time.Time
	lastErr  error
}

type metricDoc struct {
	id   bson.ObjectID
	part int
	n    int   // points in the current document
	size int64 // estimated BSON size of the current document
}

type pendingFile struct {
	artifact *observer.ArtifactEvent
	resource *observer.ResourceEvent
}

// New connects to the server cfg names and returns an observer for one run.
func New(ctx context.Context, cfg *Config, s observer.Settings) (*Observer, error) {
	opts := options.Client().ApplyURI(cfg.URI).SetAppName("sacred")
	if opts.ServerSelectionTimeout == nil {
		opts.SetServerSelectionTimeout(serverSelection)
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("mongo: invalid connection options in %q: %w", cfg.Display, cfg.scrub(err))
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: connect to %q: %w", cfg.Display, cfg.scrub(err))
	}
	o := &Observer{
		cfg:            cfg,
		warn:           s.Warn,
		client:         client,
		outputHead:     DefaultOutputHead,
		outputTail:     DefaultOutputTail,
		metricDocLimit: DefaultMetricDocLimit,
		now:            time.Now,
		stored:         map[string]bson.RawValue{},
		resources:      map[string]bool{},
		pendingPoints:  map[string][]observer.MetricPoint{},
		series:         map[string]*metricDoc{},
	}
	if o.warn == nil {
		o.warn = io.Discard
	}
	o.db = client.Database(cfg.DB)
	o.runs = o.db.Collection(cfg.Runs)
	o.metrics = o.db.Collection(cfg.Metrics)
	o.files = o.db.Collection("fs.files")
	o.chunks = o.db.Collection("fs.chunks")
	o.bucket = o.db.GridFSBucket()

	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := o.detect(cctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		hint := ""
		if cfg.HostOnly {
			hint = fmt.Sprintf(" (%q is read as HOST:PORT, as Sacred reads it; for DB.COLLECTION:RUNID add a priority, e.g. %s!30)", cfg.Display, cfg.Display)
		}
		return nil, fmt.Errorf("mongo: cannot reach MongoDB at %q%s: %w; check that the server runs and the -m value is right", cfg.Display, hint, cfg.scrub(err))
	}
	return o, nil
}

// detect pings the server and tells FerretDB from MongoDB by its build
// info: FerretDB 1.x refuses nested arrays.
func (o *Observer) detect(ctx context.Context) error {
	var info bson.M
	if err := o.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return err
	}
	if _, ok := info["ferretdbVersion"]; ok {
		o.ferret = true
		o.pairs = pairDocs
	}
	return nil
}

// IsFerretDB reports whether the server is FerretDB (pairs stored as
// documents, see pairs).
func (o *Observer) IsFerretDB() bool { return o.ferret }

// Name implements observer.Observer; it holds no password.
func (o *Observer) Name() string { return "mongo " + o.cfg.Display }

// Priority implements observer.Observer.
func (o *Observer) Priority() int { return o.cfg.Priority }

// ID returns the run's _id as stored (int32, int64 or string).
func (o *Observer) ID() any { return o.id }

func (o *Observer) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, opTimeout)
}

func (o *Observer) errorf(format string, args ...any) error {
	for i, a := range args {
		if err, ok := a.(error); ok {
			args[i] = o.cfg.scrub(err)
		}
	}
	return fmt.Errorf("mongo: "+format, args...)
}

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

func rawOf(v any) bson.RawValue {
	t, b, err := bson.MarshalValue(v)
	if err != nil {
		return bson.RawValue{}
	}
	return bson.RawValue{Type: t, Value: b}
}

// setWant records the latest value of a runs field.
func (o *Observer) setWant(key string, v any) {
	for i := range o.want {
		if o.want[i].Key == key {
			o.want[i].Value = v
			return
		}
	}
	o.want = append(o.want, bson.E{Key: key, Value: v})
}

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

// Heartbeat implements observer.Observer: $set of the fields that changed
// (info, captured_out, heartbeat, result), new metric points in one bulk
// write, and new output to GridFS when the output is long.
func (o *Observer) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	o.beat(ev)
	if ev.Final {
		o.final = true
	}
	if ev.Final || o.due() {
		o.attempt(ctx, o.flushAll)
	}
	return nil
}

func (o *Observer) beat(ev *observer.HeartbeatEvent) {
	if ev.Output != nil && ev.To >= o.outTo {
		o.out, o.outTo = ev.Output, ev.To
	}
	info := map[string]any{}
	for k, v := range ev.Info {
		info[k] = v
	}
	delete(info, "metrics")
	d := docOf(info)
	if len(o.pointers) > 0 {
		d = append(d, bson.E{Key: "metrics", Value: o.pointers})
	}
	o.setWant("info", d)
	o.setWant("heartbeat", date(ev.BeatTime))
	var result any
	if ev.HasResult {
		result = toBSON(ev.Result)
	}
	o.setWant("result", result)
}

// due tells whether a write should be tried now: always while the server
// answers, and after a failure only once the backoff has passed.
func (o *Observer) due() bool {
	return !o.failing || !o.now().Before(o.nextTry)
}

// attempt runs a write, and on failure keeps everything for a later try
// with exponential backoff.
func (o *Observer) attempt(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := o.opCtx(ctx)
	defer cancel()
	err := f(ctx)
	if err == nil {
		if o.failing {
			fmt.Fprintf(o.warn, "sacred: mongo %s: server back, run %s caught up\n", o.cfg.Display, o.idStr)
		}
		o.failing, o.failures, o.lastErr = false, 0, nil
		return nil
	}
	err = o.cfg.scrub(err)
	if !o.failing {
		fmt.Fprintf(o.warn, "sacred: mongo %s: cannot write run %s (%v); the run goes on, retrying\n", o.cfg.Display, o.idStr, err)
	}
	o.failing = true
	o.failures++
	o.lastErr = err
	backoff := time.Second << min(o.failures-1, 5)
	o.nextTry = o.now().Add(min(backoff, maxBackoff))
	return err
}

// flushAll writes everything not yet stored: files, metrics, output, then
// the runs fields.
func (o *Observer) flushAll(ctx context.Context) error {
	if err := o.flushFiles(ctx); err != nil {
		return err
	}
	if err := o.flushMetrics(ctx); err != nil {
		return err
	}
	if err := o.flushOutput(ctx); err != nil {
		return err
	}
	return o.flushFields(ctx)
}

// flushFields $sets the fields whose value changed since they were last
// written. fail_trace goes last in a second update so that the document
// keeps Sacred's key order (MongoDB adds new fields of one $set in
// lexicographic order).
func (o *Observer) flushFields(ctx context.Context) error {
	var set, late bson.D
	raws := map[string]bson.RawValue{}
	for _, e := range o.want {
		r := rawOf(e.Value)
		if old, ok := o.stored[e.Key]; ok && old.Type == r.Type && string(old.Value) == string(r.Value) {
			continue
		}
		raws[e.Key] = r
		if e.Key == "fail_trace" {
			late = append(late, e)
		} else {
			set = append(set, e)
		}
	}
	for _, s := range []bson.D{set, late} {
		if len(s) == 0 {
			continue
		}
		if _, err := o.runs.UpdateOne(ctx, bson.D{{Key: "_id", Value: o.id}}, bson.D{{Key: "$set", Value: s}}); err != nil {
			return fmt.Errorf("update run %s: %w", o.idStr, err)
		}
		for _, e := range s {
			o.stored[e.Key] = raws[e.Key]
		}
	}
	return nil
}

// flushOutput sets captured_out (bounded) and, for a long output, appends
// what is new to the full output in GridFS.
func (o *Observer) flushOutput(ctx context.Context) error {
	if o.out == nil || (o.outTo == o.outFor && (o.outFile == nil || o.outFile.length == o.outTo)) {
		return nil
	}
	limit := int64(o.outputHead + o.outputTail)
	if o.outTo > limit {
		if o.outFile == nil {
			o.outFile = newAppendFile(o.files, o.chunks, outputFileName(o.cfg.Runs, o.idStr), o.id)
		}
		if err := o.outFile.flush(ctx, o.out, o.outTo, o.final); err != nil {
			return err
		}
	}
	text, err := o.capturedOut()
	if err != nil {
		return err
	}
	o.setWant("captured_out", text)
	o.outFor = o.outTo
	return nil
}

// capturedOut is the text of captured_out: the whole output while it is
// short, else its head and tail around a marker naming the GridFS file.
func (o *Observer) capturedOut() (string, error) {
	limit := int64(o.outputHead + o.outputTail)
	if o.outTo <= limit {
		b := make([]byte, o.outTo)
		if _, err := o.out.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read captured output: %w", err)
		}
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil
	}
	head := make([]byte, o.outputHead)
	if _, err := o.out.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read captured output: %w", err)
	}
	tail := make([]byte, o.outputTail)
	if _, err := o.out.ReadAt(tail, o.outTo-int64(o.outputTail)); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read captured output: %w", err)
	}
	head = trimRuneEnd(head)
	tail = trimRuneStart(tail)
	omitted := o.outTo - int64(len(head)) - int64(len(tail))
	marker := fmt.Sprintf("\n[sacred: %d bytes of output omitted here (%d in all); the full output is the GridFS file %q]\n",
		omitted, o.outTo, outputFileName(o.cfg.Runs, o.idStr))
	return strings.ToValidUTF8(string(head), "\uFFFD") + marker + strings.ToValidUTF8(string(tail), "\uFFFD"), nil
}

// trimRuneEnd drops an incomplete UTF-8 sequence at the end of b.
func trimRuneEnd(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && i < len(b); i++ {
		if utf8.RuneStart(b[len(b)-1-i]) {
			if r, _ := utf8.DecodeRune(b[len(b)-1-i:]); r == utf8.RuneError && i+1 < utf8.UTFMax {
				return b[:len(b)-1-i]
			}
			return b
		}
	}
	return b
}

// trimRuneStart drops continuation bytes at the start of b.
func trimRuneStart(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && i < len(b); i++ {
		if utf8.RuneStart(b[i]) {
			return b[i:]
		}
	}
	return b
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

// Completed implements observer.Observer.
func (o *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	var result any
	if ev.HasResult {
		result = toBSON(ev.Result)
	}
	o.setWant("status", observer.StatusCompleted)
	o.setWant("result", result)
	o.setWant("stop_time", date(ev.StopTime))
	return o.finish(ctx, observer.StatusCompleted)
}

// Interrupted implements observer.Observer.
func (o *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	status := ev.Status
	if status == "" {
		status = observer.StatusInterrupted
	}
	o.setWant("status", status)
	if o.wantIndex("result") < 0 {
		o.setWant("result", nil)
	}
	o.setWant("stop_time", date(ev.StopTime))
	return o.finish(ctx, status)
}

// Failed implements observer.Observer.
func (o *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	o.setWant("status", observer.StatusFailed)
	if o.wantIndex("result") < 0 {
		o.setWant("result", nil)
	}
	o.setWant("stop_time", date(ev.StopTime))
	trace := strArray(ev.Trace)
	o.setWant("fail_trace", trace)
	return o.finish(ctx, observer.StatusFailed)
}

// finish writes the final state, retrying with backoff until the context's
// deadline (the runner's flush deadline): a server that comes back in time
// gets the complete record. What could not be written is said in one line.
func (o *Observer) finish(ctx context.Context, status string) error {
	if o.id == nil {
		return errors.New("mongo: final event before the run was started")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, finalWithoutDeadline)
		defer cancel()
	}
	if o.finalLimit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.finalLimit)
		defer cancel()
	}
	o.final = true
	delay := 250 * time.Millisecond
	for {
		err := o.attempt(ctx, o.flushAll)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !retryable(err) {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		if ctx.Err() != nil {
			break
		}
		delay = min(delay*2, 5*time.Second)
	}
	lost := o.unwritten()
	fmt.Fprintf(o.warn, "sacred: mongo %s: run %s not fully recorded, could not write %s (%v)\n", o.cfg.Display, o.idStr, lost, o.lastErr)
	return fmt.Errorf("mongo: run %s: final state %s not written to %s: %w", o.idStr, status, o.cfg.Display, o.lastErr)
}

// retryable tells errors worth another try: a server that is away, busy
// or shutting down, or a network failure. A document or an operation the
// server refuses is not retried.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	if mongo.IsNetworkError(err) || mongo.IsTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		if se.HasErrorLabel("RetryableWriteError") || se.HasErrorLabel("NetworkError") {
			return true
		}
		for _, code := range []int{6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436} {
			if se.HasErrorCode(code) {
				return true
			}
		}
		return false
	}
	// Server selection failures and closed connections carry no server
	// error: the server is away.
	return true
}

// unwritten describes what is not stored, for the one-line warning.
func (o *Observer) unwritten() string {
	var parts []string
	var fields []string
	for _, e := range o.want {
		r := rawOf(e.Value)
		if old, ok := o.stored[e.Key]; !ok || old.Type != r.Type || string(old.Value) != string(r.Value) {
			fields = append(fields, e.Key)
		}
	}
	if len(fields) > 0 {
		parts = append(parts, "fields "+strings.Join(fields, ", "))
	}
	n := 0
	for _, p := range o.pendingPoints {
		n += len(p)
	}
	if n > 0 {
		parts = append(parts, fmt.Sprintf("%d metric points", n))
	}
	if o.outFile != nil && o.outFile.stored+o.outFile.tail < o.outTo {
		parts = append(parts, fmt.Sprintf("%d bytes of output", o.outTo-o.outFile.stored-o.outFile.tail))
	}
	if len(o.pendingFiles) > 0 {
		parts = append(parts, fmt.Sprintf("%d artifacts or resources", len(o.pendingFiles)))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}

// Close implements observer.Observer.
func (o *Observer) Close(ctx context.Context) error {
	if o.client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := o.client.Disconnect(ctx)
	o.client = nil
	if err != nil {
		return o.errorf("disconnect from %s: %w", o.cfg.Display, err)
	}
	return nil
}

var _ observer.Observer = (*Observer)(nil)
