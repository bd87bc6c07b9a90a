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
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/pkg/observer"
)

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
