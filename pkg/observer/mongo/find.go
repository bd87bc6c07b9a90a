package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
)

var (
	_ readback.Finder     = (*Reader)(nil)
	_ readback.FileOpener = (*Reader)(nil)
)

// Find implements readback.Finder with one find whose filter is the
// query's push-down and whose projection leaves out the output (and the
// config, info, host and meta when the selection does not read them). More round
// trips only when the selection reads more: one find over the metrics,
// one over GridFS's files for the md5s of the sources.
func (r *Reader) Find(ctx context.Context, req *readback.Request) ([]*observer.Run, error) {
	proj := bson.D{{Key: "captured_out", Value: 0}}
	if !req.Needs("config") {
		proj = append(proj, bson.E{Key: "config", Value: 0})
	}
	for _, f := range []string{"info", "host", "meta"} {
		// queue_time is read from meta.queue_time.
		if !req.Needs(f) && (f != "meta" || !req.Needs("queue_time")) {
			proj = append(proj, bson.E{Key: f, Value: 0})
		}
	}
	cur, err := r.runs.Find(ctx, req.Mongo().Filter, options.Find().SetProjection(proj))
	if err != nil {
		return nil, fmt.Errorf("mongo: find runs in %s.%s: %w", r.cfg.DB, r.cfg.Runs, r.cfg.scrub(err))
	}
	defer cur.Close(ctx)
	type found struct {
		run   *observer.Run
		rawID bson.RawValue
		num   int64
		isNum bool
	}
	var fs []found
	for cur.Next(ctx) {
		raw := cur.Current
		id := raw.Lookup("_id")
		f := found{rawID: id}
		switch id.Type {
		case bson.TypeInt32:
			f.num, f.isNum = int64(id.Int32()), true
		case bson.TypeInt64:
			f.num, f.isNum = id.Int64(), true
		case bson.TypeDouble:
			f.num, f.isNum = int64(id.Double()), true
		}
		f.run = runOfDoc(idString(plain(id)), raw)
		// The cursor's buffer is reused: keep a copy of the id.
		f.rawID = bson.RawValue{Type: id.Type, Value: append([]byte(nil), id.Value...)}
		fs = append(fs, f)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("mongo: find runs: %w", r.cfg.scrub(err))
	}
	// The order of Runs: numeric ids first, then the others by start.
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.isNum != b.isNum {
			return a.isNum
		}
		if a.isNum {
			return a.num < b.num
		}
		if !a.run.StartTime.Equal(b.run.StartTime) {
			return a.run.StartTime.Before(b.run.StartTime)
		}
		return a.run.ID < b.run.ID
	})
	runs := make([]*observer.Run, len(fs))
	for i, f := range fs {
		runs[i] = f.run
	}
	if req.Needs("metrics") && len(fs) > 0 {
		ids := make(bson.A, len(fs))
		byID := map[string]*observer.Run{}
		for i, f := range fs {
			ids[i] = f.rawID
			byID[f.run.ID] = f.run
		}
		if err := r.findMetrics(ctx, ids, byID); err != nil {
			return nil, err
		}
	}
	if req.Needs("experiment") {
		if err := r.sourceMD5s(ctx, runs); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

// runOfDoc reads a runs document, all of it but the output, the metrics
// and the md5s of the sources (each a round trip of its own).
func runOfDoc(id string, raw bson.Raw) *observer.Run {
	run := &observer.Run{ID: id}
	run.Status = str(raw.Lookup("status"))
	run.Command = str(raw.Lookup("command"))
	run.StartTime = timeOf(raw.Lookup("start_time"))
	run.Heartbeat = timeOf(raw.Lookup("heartbeat"))
	run.StopTime = timeOf(raw.Lookup("stop_time"))
	if d, ok := raw.Lookup("experiment").DocumentOK(); ok {
		e := &run.Experiment
		e.Name, e.BaseDir, e.MainFile = str(d.Lookup("name")), str(d.Lookup("base_dir")), str(d.Lookup("mainfile"))
		if a, ok := d.Lookup("dependencies").ArrayOK(); ok {
			for _, v := range values(a) {
				e.Dependencies = append(e.Dependencies, str(v))
			}
		}
		if a, ok := d.Lookup("repositories").ArrayOK(); ok {
			for _, v := range values(a) {
				if rd, ok := v.DocumentOK(); ok {
					dirty, _ := rd.Lookup("dirty").BooleanOK()
					e.Repositories = append(e.Repositories, observer.Repository{URL: str(rd.Lookup("url")), Commit: str(rd.Lookup("commit")), Dirty: dirty})
				}
			}
		}
		if a, ok := d.Lookup("sources").ArrayOK(); ok {
			for _, v := range values(a) {
				name, ref := pairOf(v)
				s := observer.Source{Name: str(name)}
				if oid, ok := ref.ObjectIDOK(); ok {
					s.Path = oid.Hex() // the GridFS id, until sourceMD5s
				} else {
					s.MD5 = str(ref)
				}
				e.Sources = append(e.Sources, s)
			}
		}
	}
	if h, ok := raw.Lookup("host").DocumentOK(); ok && len(mapOf(h)) > 0 {
		run.Host = host(h)
	}
	if m, ok := raw.Lookup("meta").DocumentOK(); ok {
		run.Meta = meta(m)
		if run.Meta.QueueTime != nil {
			run.QueueTime = *run.Meta.QueueTime
		}
	}
	if c, ok := raw.Lookup("config").DocumentOK(); ok {
		run.Config = mapOf(c)
	}
	if i, ok := raw.Lookup("info").DocumentOK(); ok {
		run.Info = mapOf(i)
	}
	if v, err := raw.LookupErr("result"); err == nil {
		run.Result, run.HasResult = plain(v), true
	}
	if ft, ok := raw.Lookup("fail_trace").ArrayOK(); ok {
		for _, v := range values(ft) {
			run.FailTrace = append(run.FailTrace, str(v))
		}
	}
	if arts, ok := raw.Lookup("artifacts").ArrayOK(); ok {
		for _, v := range values(arts) {
			if d, ok := v.DocumentOK(); ok {
				run.Artifacts = append(run.Artifacts, str(d.Lookup("name")))
			}
		}
	}
	if res, ok := raw.Lookup("resources").ArrayOK(); ok {
		for _, v := range values(res) {
			a, b := pairOf(v)
			run.Resources = append(run.Resources, observer.ResourceEvent{Path: str(a), MD5: str(b)})
		}
	}
	return run
}

// sourceMD5s fills the md5 and file name of every source stored in
// GridFS, with one find over the files.
func (r *Reader) sourceMD5s(ctx context.Context, runs []*observer.Run) error {
	var oids bson.A
	seen := map[string]bool{}
	for _, run := range runs {
		for _, s := range run.Experiment.Sources {
			if s.MD5 == "" && s.Path != "" && !seen[s.Path] {
				seen[s.Path] = true
				if oid, err := bson.ObjectIDFromHex(s.Path); err == nil {
					oids = append(oids, oid)
				}
			}
		}
	}
	files := map[string][2]string{}
	if len(oids) > 0 {
		cur, err := r.files.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}}})
		if err != nil {
			return fmt.Errorf("mongo: read sources: %w", r.cfg.scrub(err))
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			d := cur.Current
			oid, _ := d.Lookup("_id").ObjectIDOK()
			md5 := str(d.Lookup("metadata", "md5"))
			if md5 == "" {
				md5 = str(d.Lookup("md5"))
			}
			files[oid.Hex()] = [2]string{str(d.Lookup("filename")), md5}
		}
		if err := cur.Err(); err != nil {
			return fmt.Errorf("mongo: read sources: %w", r.cfg.scrub(err))
		}
	}
	for _, run := range runs {
		for i := range run.Experiment.Sources {
			s := &run.Experiment.Sources[i]
			if s.MD5 != "" {
				continue
			}
			f := files[s.Path]
			s.Path, s.MD5 = f[0], f[1]
		}
	}
	return nil
}

// findMetrics reads the metrics of the runs found with one find, in
// the order of readMetrics: series by name, parts by number.
func (r *Reader) findMetrics(ctx context.Context, ids bson.A, byID map[string]*observer.Run) error {
	cur, err := r.metrics.Find(ctx, bson.D{{Key: "run_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return fmt.Errorf("mongo: read metrics: %w", r.cfg.scrub(err))
	}
	defer cur.Close(ctx)
	type part struct {
		n   int64
		pts []observer.MetricPoint
	}
	parts := map[*observer.Run]map[string][]part{}
	for cur.Next(ctx) {
		d := cur.Current
		run := byID[idString(plain(d.Lookup("run_id")))]
		if run == nil {
			continue
		}
		p := part{n: intOf(d.Lookup("part"))}
		steps, _ := d.Lookup("steps").ArrayOK()
		vals, _ := d.Lookup("values").ArrayOK()
		times, _ := d.Lookup("timestamps").ArrayOK()
		sv, vv, tv := values(steps), values(vals), values(times)
		for i := range sv {
			pt := observer.MetricPoint{Step: intOf(sv[i])}
			if i < len(vv) {
				pt.Value, _ = vv[i].AsFloat64OK()
			}
			if i < len(tv) {
				pt.Time = timeOf(tv[i])
			}
			p.pts = append(p.pts, pt)
		}
		if parts[run] == nil {
			parts[run] = map[string][]part{}
		}
		name := str(d.Lookup("name"))
		parts[run][name] = append(parts[run][name], p)
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("mongo: read metrics: %w", r.cfg.scrub(err))
	}
	for run, byName := range parts {
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ps := byName[n]
			sort.SliceStable(ps, func(i, j int) bool { return ps[i].n < ps[j].n })
			s := observer.MetricSeries{Name: n}
			for _, p := range ps {
				s.Points = append(s.Points, p.pts...)
			}
			run.Metrics = append(run.Metrics, s)
		}
	}
	return nil
}

// OpenSource implements readback.FileOpener: the GridFS file the run's
// sources entry points at.
func (r *Reader) OpenSource(ctx context.Context, id, name string) (io.ReadCloser, error) {
	raw, err := r.find(ctx, id)
	if err != nil {
		return nil, err
	}
	if a, ok := raw.Lookup("experiment", "sources").ArrayOK(); ok {
		for _, v := range values(a) {
			n, ref := pairOf(v)
			if str(n) != name {
				continue
			}
			oid, ok := ref.ObjectIDOK()
			if !ok {
				return nil, fmt.Errorf("mongo: run %s: source %s: %w", id, name, readback.ErrNotStored)
			}
			return r.openFile(ctx, id, "source "+name, oid)
		}
	}
	return nil, fmt.Errorf("mongo: run %s has no source %q: %w", id, name, observer.ErrNotFound)
}

// OpenResource implements readback.FileOpener: the GridFS file of that
// name and md5.
func (r *Reader) OpenResource(ctx context.Context, id, path string) (io.ReadCloser, error) {
	run, err := r.find(ctx, id)
	if err != nil {
		return nil, err
	}
	if res, ok := run.Lookup("resources").ArrayOK(); ok {
		for _, v := range values(res) {
			a, b := pairOf(v)
			if str(a) != path {
				continue
			}
			oid, found, err := findFile(ctx, r.files, path, str(b), false)
			if err != nil {
				return nil, fmt.Errorf("mongo: run %s: resource %s: %w", id, path, r.cfg.scrub(err))
			}
			if !found {
				return nil, fmt.Errorf("mongo: run %s: resource %s: the file is missing from GridFS: %w", id, path, observer.ErrNotFound)
			}
			return r.openFile(ctx, id, "resource "+path, oid)
		}
	}
	return nil, fmt.Errorf("mongo: run %s has no resource %q: %w", id, path, observer.ErrNotFound)
}

func (r *Reader) openFile(ctx context.Context, id, what string, oid bson.ObjectID) (io.ReadCloser, error) {
	ds, err := openChunks(ctx, r.files, r.chunks, oid)
	if errors.Is(err, mongo.ErrFileNotFound) {
		return nil, fmt.Errorf("mongo: run %s: %s: the file is missing from GridFS: %w", id, what, observer.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("mongo: run %s: open %s: %w", id, what, r.cfg.scrub(err))
	}
	return ds, nil
}
