// Package mongo is Sacred's MongoObserver (-m, --mongo_db) for the sacred
// wrapper: runs, metrics and GridFS files in the shapes Omniboard,
// Sacredboard and Incense read, without Sacred's limits (documents stay
// under 16 MB, sources are not uploaded again, a call sent again after an
// error stores nothing twice). See docs/observers/mongo.md.
//
// The files follow the seams of a run: config.go (the -m value and the
// kind's registration), start.go (ids, the runs document, sources),
// metrics.go, output.go (captured_out and the full output), files.go
// (artifacts, resources), gridfs.go, doc.go (the documents), reader.go.
package mongo

import (
	"bytes"
	"context"
	"encoding/json"
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
	// opTimeout bounds a call whose context has no deadline.
	opTimeout = 2 * time.Minute
	// cleanupTimeout bounds the removal of the document of a start that
	// failed, the one operation that runs after its call's context ended:
	// a start cut short by its deadline must not leave a RUNNING run whose
	// command never ran.
	cleanupTimeout = 5 * time.Second
)

// Observer records one run in MongoDB. The runner never calls it
// concurrently.
//
// Every call writes what it was given and returns the error of the first
// write that failed; nothing is kept for later (the retry decorator does
// that). A call that comes again after an error with the same data stores
// it once: fields are $set, output chunks have fixed _ids, metric appends
// are guarded by the series' length, artifacts keep their file id until
// they are recorded.
type Observer struct {
	cfg  *Config
	warn io.Writer

	client                 *mongo.Client
	db                     *mongo.Database
	runs, metrics          *mongo.Collection
	files, chunks          *mongo.Collection
	pairs                  pairs
	ferret                 bool
	outputHead, outputTail int
	metricDocLimit         int64

	id    any    // the _id as stored
	idStr string // the id as the runner knows it

	// stored holds the raw BSON of each runs field as last written, so a
	// write $sets only what changed. It is updated only after a write
	// succeeded, so a call that comes again writes again.
	stored map[string]bson.RawValue
	// refused holds user values (by field path) the server refused, with
	// the JSON text stored in their place (see updateUser).
	refused map[string]refusal

	// The latest output handle and its end, for the last chunk of the
	// full output at the final event; the GridFS file of the full output
	// once the output needs one; rawOutput once the output is not valid
	// UTF-8 (see writeOutput).
	out        observer.Output
	outTo      int64
	outFile    *appendFile
	rawOutput  bool
	resources  map[string]bool
	artifactID map[string]bson.ObjectID

	// Metric series: the document each goes on, the info.metrics pointers,
	// and the writes of a metrics call that failed (see settle).
	series   map[string]*metricDoc
	pointers bson.A
	inflight []metricWrite
}

type metricDoc struct {
	id   bson.ObjectID
	part int
	n    int   // points in the document
	size int64 // estimated BSON size of the document
}

// New connects to the server cfg names and returns an observer for one run.
func New(ctx context.Context, cfg *Config, s observer.Settings) (*Observer, error) {
	opts := options.Client().ApplyURI(cfg.URI).SetAppName("sacred")
	if cfg.monitor != nil {
		opts.SetMonitor(cfg.monitor)
	}
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
		stored:         map[string]bson.RawValue{},
		refused:        map[string]refusal{},
		resources:      map[string]bool{},
		artifactID:     map[string]bson.ObjectID{},
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

	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := o.detect(cctx); err != nil {
		_ = client.Disconnect(cctx)
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

// opCtx bounds a call whose context has no deadline.
func (o *Observer) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, opTimeout)
}

// errorf formats an error of ours; error arguments are scrubbed of secrets
// and bounded (see bounded).
func (o *Observer) errorf(format string, args ...any) error {
	for i, a := range args {
		if err, ok := a.(error); ok {
			args[i] = bounded(o.cfg.scrub(err))
		}
	}
	return fmt.Errorf("mongo: "+format, args...)
}

func (o *Observer) started() error {
	if o.id == nil {
		return errors.New("mongo: the run was not started")
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

func sameRaw(a, b bson.RawValue) bool {
	return a.Type == b.Type && bytes.Equal(a.Value, b.Value)
}

// update $sets the fields of d (names or paths) whose value changed since
// they were last written.
func (o *Observer) update(ctx context.Context, d bson.D) error {
	var set bson.D
	var raws []bson.RawValue
	for _, e := range d {
		r := rawOf(e.Value)
		if old, ok := o.stored[e.Key]; ok && sameRaw(old, r) {
			continue
		}
		set = append(set, e)
		raws = append(raws, r)
	}
	if len(set) == 0 {
		return nil
	}
	res, err := o.runs.UpdateOne(ctx, bson.D{{Key: "_id", Value: o.id}}, bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("run %s is no longer in %s.%s", o.idStr, o.cfg.DB, o.cfg.Runs)
	}
	for i, e := range set {
		o.stored[e.Key] = raws[i]
	}
	return nil
}

// refusal is a user value the server refused, and the text stored instead.
type refusal struct {
	value bson.RawValue
	text  string
}

// updateUser $sets user values: what the child reported (info, result) or
// the user configured (config). They never share a write with the run's
// own fields (status, heartbeat, stop_time, fail_trace), so that a value
// the server refuses cannot hold those back.
//
// A value the server refuses (FerretDB refuses nested arrays; MongoDB a
// document nested too deeply) would be refused again at every beat, so it
// is stored as its JSON text instead, with one warning that names the
// field but not the value. For a document (info, config), each top-level
// key is tried on its own, so only the keys refused become text.
func (o *Observer) updateUser(ctx context.Context, d bson.D) error {
	d = o.substitute(d)
	err := o.update(ctx, d)
	if err == nil || !refused(err) {
		return err
	}
	for i, e := range d {
		err := o.probe(ctx, e.Key, e.Value)
		if err == nil {
			continue
		}
		if !refused(err) {
			return err
		}
		doc, isDoc := e.Value.(bson.D)
		if !isDoc {
			d[i].Value = o.refuse(e.Key, e.Value, err)
			continue
		}
		clean := make(bson.D, len(doc))
		copy(clean, doc)
		for j, k := range doc {
			path := e.Key + "." + k.Key
			err := o.probe(ctx, path, k.Value)
			if err == nil {
				continue
			}
			if !refused(err) {
				return err
			}
			clean[j].Value = o.refuse(path, k.Value, err)
		}
		d[i].Value = clean
	}
	if err := o.update(ctx, d); err != nil {
		return err
	}
	return nil
}

// probe writes one value without the stored cache, to find out whether
// the server takes it.
func (o *Observer) probe(ctx context.Context, path string, v any) error {
	_, err := o.runs.UpdateOne(ctx, bson.D{{Key: "_id", Value: o.id}}, bson.D{{Key: "$set", Value: bson.D{{Key: path, Value: v}}}})
	return err
}

// refuse records a refused value and returns its text.
func (o *Observer) refuse(path string, v any, err error) string {
	raw := rawOf(v)
	text := jsonText(raw)
	o.refused[path] = refusal{value: raw, text: text}
	fmt.Fprintf(o.warn, "sacred: mongo %s: run %s: the server refused the value of %s (%s); stored as JSON text instead\n",
		o.cfg.Display, o.idStr, path, reason(err))
	return text
}

// substitute replaces values refused before by their text, at the top
// level of d and one level down.
func (o *Observer) substitute(d bson.D) bson.D {
	if len(o.refused) == 0 {
		return d
	}
	out := make(bson.D, len(d))
	copy(out, d)
	for i, e := range out {
		if r, ok := o.refused[e.Key]; ok && sameRaw(r.value, rawOf(e.Value)) {
			out[i].Value = r.text
			continue
		}
		doc, ok := e.Value.(bson.D)
		if !ok {
			continue
		}
		var clean bson.D
		for j, k := range doc {
			if r, ok := o.refused[e.Key+"."+k.Key]; ok && sameRaw(r.value, rawOf(k.Value)) {
				if clean == nil {
					clean = append(bson.D(nil), doc...)
				}
				clean[j].Value = r.text
			}
		}
		if clean != nil {
			out[i].Value = clean
		}
	}
	return out
}

// jsonText is a value as JSON, or as MongoDB's Extended JSON when plain
// JSON cannot hold it (NaN).
func jsonText(v bson.RawValue) string {
	if b, err := json.Marshal(plain(v)); err == nil {
		return string(b)
	}
	return v.String()
}

// Heartbeat implements observer.Observer: the output of [From, To) (see
// writeOutput), then heartbeat and captured_out in one $set, then info and
// result in another, each only when changed.
func (o *Observer) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	if err := o.started(); err != nil {
		return err
	}
	ctx, cancel := o.opCtx(ctx)
	defer cancel()
	life := bson.D{}
	if ev.Output != nil {
		text, changed, err := o.writeOutput(ctx, ev)
		if err != nil {
			return o.errorf("store the output of run %s: %w", o.idStr, err)
		}
		if changed {
			life = append(life, bson.E{Key: "captured_out", Value: text})
		}
	}
	life = append(life, bson.E{Key: "heartbeat", Value: date(ev.BeatTime)})
	if err := o.update(ctx, life); err != nil {
		return o.errorf("update run %s: %w", o.idStr, err)
	}
	var result any
	if ev.HasResult {
		result = toBSON(ev.Result)
	}
	if err := o.updateUser(ctx, bson.D{{Key: "info", Value: o.infoDoc(ev.Info)}, {Key: "result", Value: result}}); err != nil {
		return o.errorf("update info and result of run %s: %w", o.idStr, err)
	}
	return nil
}

// infoDoc is the info dict with our metrics pointers, which Omniboard needs.
func (o *Observer) infoDoc(info map[string]any) bson.D {
	own := make(map[string]any, len(info))
	for k, v := range info {
		if k != "metrics" {
			own[k] = v
		}
	}
	d := docOf(own)
	if len(o.pointers) > 0 {
		d = append(d, bson.E{Key: "metrics", Value: o.pointers})
	}
	return d
}

// Completed implements observer.Observer.
func (o *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	var result any
	if ev.HasResult {
		result = toBSON(ev.Result)
	}
	return o.finish(ctx, observer.StatusCompleted, result, date(ev.StopTime), nil)
}

// Interrupted implements observer.Observer.
func (o *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	status := ev.Status
	if status == "" {
		status = observer.StatusInterrupted
	}
	return o.finish(ctx, status, keep{}, date(ev.StopTime), nil)
}

// Failed implements observer.Observer.
func (o *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	return o.finish(ctx, observer.StatusFailed, keep{}, date(ev.StopTime), strArray(ev.Trace))
}

// keep, as the result of a final event, keeps the result of the last beat
// (null when there was none), as Sacred does on INTERRUPTED and FAILED.
type keep struct{}

// finish writes the end of the run: the last chunk of the full output,
// the result (a user value), then status and stop_time, then fail_trace
// (last, as Sacred's key order has it). A result the server refuses does
// not hold back the status (see updateUser).
func (o *Observer) finish(ctx context.Context, status string, result any, stop bson.DateTime, trace bson.A) error {
	if err := o.started(); err != nil {
		return err
	}
	ctx, cancel := o.opCtx(ctx)
	defer cancel()
	if err := o.finishOutput(ctx); err != nil {
		return o.errorf("store the output of run %s: %w", o.idStr, err)
	}
	if _, ok := result.(keep); ok {
		result = nil
		if _, ok := o.stored["result"]; ok {
			result = keep{}
		}
	}
	if _, ok := result.(keep); !ok {
		if err := o.updateUser(ctx, bson.D{{Key: "result", Value: result}}); err != nil {
			return o.errorf("write the result of run %s: %w", o.idStr, err)
		}
	}
	if err := o.update(ctx, bson.D{{Key: "status", Value: status}, {Key: "stop_time", Value: stop}}); err != nil {
		return o.errorf("write status %s of run %s: %w", status, o.idStr, err)
	}
	if trace != nil {
		if err := o.update(ctx, bson.D{{Key: "fail_trace", Value: trace}}); err != nil {
			return o.errorf("write the fail trace of run %s: %w", o.idStr, err)
		}
	}
	return nil
}

// transient tells errors worth another try: a server that is away, busy
// or shutting down, or a network failure. A document or an operation the
// server refuses is not.
func transient(err error) bool {
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

// refused tells an error of the server refusing what was written (a value
// it cannot store: a write error of the document), as opposed to one of
// reaching it or of the operation as a whole (a missing permission).
func refused(err error) bool {
	var we mongo.WriteException
	return errors.As(err, &we) && len(we.WriteErrors) > 0 && !transient(err)
}

// maxErrorLen bounds the text of an error: a server may quote what it
// refused, and a run's info can be megabytes.
const maxErrorLen = 300

// bounded returns err with the value a server quotes in it left out
// (FerretDB's "invalid value: <the value> (<reason>)") and its text cut
// to maxErrorLen, keeping the error chain.
func bounded(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	short := withoutValue(msg)
	if len(short) > maxErrorLen {
		short = strings.ToValidUTF8(short[:maxErrorLen], "") + "..."
	}
	if short == msg {
		return err
	}
	return &scrubbed{msg: short, err: err}
}

func withoutValue(msg string) string {
	const iv = "invalid value: "
	i := strings.Index(msg, iv)
	if i < 0 {
		return msg
	}
	j := strings.LastIndex(msg, " (")
	if j < i {
		return msg[:i] + "invalid value"
	}
	return msg[:i] + "invalid value" + msg[j:]
}

// reason is the server's reason for refusing a write, without the value.
func reason(err error) string {
	msg := err.Error()
	var we mongo.WriteException
	if errors.As(err, &we) && len(we.WriteErrors) > 0 {
		msg = we.WriteErrors[0].Message
	}
	msg = withoutValue(msg)
	if i := strings.Index(msg, "invalid value ("); i >= 0 && strings.HasSuffix(msg, ")") {
		msg = msg[i+len("invalid value (") : len(msg)-1]
	}
	if len(msg) > 120 {
		msg = strings.ToValidUTF8(msg[:120], "") + "..."
	}
	return msg
}

// Close implements observer.Observer.
func (o *Observer) Close(ctx context.Context) error {
	if o.client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := o.client.Disconnect(ctx)
	o.client = nil
	if err != nil {
		return o.errorf("disconnect from %s: %w", o.cfg.Display, err)
	}
	return nil
}

var _ observer.Observer = (*Observer)(nil)
