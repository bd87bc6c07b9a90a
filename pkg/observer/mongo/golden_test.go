package mongo

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// goldenPath is the run documents Python Sacred 0.8.7 sent to MongoDB.
const goldenPath = "/work/shared/golden/mongo/runs-as-sent-by-sacred.json"

func loadGolden(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(goldenPath)
	if os.IsNotExist(err) {
		t.Skipf("golden records not on this machine: %s", goldenPath)
	}
	must(t, err)
	var g map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	must(t, dec.Decode(&g))
	return g
}

func goldenRun(t *testing.T, g map[string]any, id, which string) map[string]any {
	return g["runs"].(map[string]any)[id].(map[string]any)[which].(map[string]any)
}

// Differences from Sacred's documents that are chosen, not accidents.
var (
	// The wrapper runs any program: it does not know a Python version.
	allowMissing = map[string]bool{"host.python_version": true}
	// Facts of ours, added after Sacred's keys.
	allowExtra = map[string]bool{"host.cpu_count": true, "host.memory_total": true, "meta.argv": true, "meta.cwd": true, "meta.start_token": true, "host.gpus": true, "meta.comment": true, "meta.priority": true}
	// User data: only the type of the container is compared.
	userData = map[string]bool{"config": true, "meta.options": true, "meta.config_updates": true, "info.foo": true, "result": true, "host.ENV": true}
)

// shapeDiff compares our BSON value with Sacred's (Extended JSON) by field
// names, key order and BSON types, and returns the differences.
func shapeDiff(path string, golden any, ours bson.RawValue) []string {
	at := path
	if at == "" {
		at = "(top)"
	}
	var diffs []string
	bad := func(format string, args ...any) {
		diffs = append(diffs, at+": "+fmt.Sprintf(format, args...))
	}
	switch g := golden.(type) {
	case nil:
		if ours.Type != bson.TypeNull {
			bad("type %s, Sacred null", ours.Type)
		}
	case string:
		if ours.Type != bson.TypeString {
			bad("type %s, Sacred string", ours.Type)
		}
	case bool:
		if ours.Type != bson.TypeBoolean {
			bad("type %s, Sacred bool", ours.Type)
		}
	case json.Number:
		if ours.Type != bson.TypeInt32 && ours.Type != bson.TypeInt64 && ours.Type != bson.TypeDouble {
			bad("type %s, Sacred number", ours.Type)
		}
	case []any:
		if ours.Type != bson.TypeArray {
			bad("type %s, Sacred array", ours.Type)
			return diffs
		}
		vs := values(ours.Array())
		if len(g) > 0 && len(vs) > 0 && !userData[path] {
			diffs = append(diffs, shapeDiff(path+"[]", g[0], vs[0])...)
		}
	case map[string]any:
		if _, ok := g["$oid"]; ok {
			if ours.Type != bson.TypeObjectID {
				bad("type %s, Sacred ObjectId", ours.Type)
			}
			return diffs
		}
		if _, ok := g["$date"]; ok {
			if ours.Type != bson.TypeDateTime {
				bad("type %s, Sacred datetime", ours.Type)
			}
			return diffs
		}
		if ours.Type != bson.TypeEmbeddedDocument {
			bad("type %s, Sacred document", ours.Type)
			return diffs
		}
		if userData[path] {
			return diffs
		}
		doc := ours.Document()
		// Sacred's keys, in Sacred's order, then ours.
		ok := keys(doc)
		pos := map[string]int{}
		for i, k := range ok {
			pos[k] = i
		}
		last := -1
		for _, k := range orderedKeys(g) {
			p := join(path, k)
			i, has := pos[k]
			if !has {
				if !allowMissing[p] {
					bad("key %q missing", k)
				}
				continue
			}
			if i < last {
				bad("key %q out of Sacred's order (ours: %v)", k, ok)
			}
			last = i
			diffs = append(diffs, shapeDiff(p, g[k], doc.Lookup(k))...)
		}
		for _, k := range ok {
			if _, has := g[k]; !has && !allowExtra[join(path, k)] && !userData[path] {
				bad("extra key %q", k)
			}
		}
	}
	return diffs
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// orderedKeys is the key order of a golden document: Go maps lose it, so
// it is read again from the file for the documents that matter.
func orderedKeys(g map[string]any) []string {
	var ks []string
	for _, k := range goldenOrder {
		if _, ok := g[k]; ok {
			ks = append(ks, k)
		}
	}
	// The rest in sorted order: ranging over the map would make the
	// expected order, and so the test, random.
	var rest []string
	for k := range g {
		if !slices.Contains(ks, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(ks, rest...)
}

// goldenOrder is Sacred's key order of the runs document and its parts, as
// in runs-as-sent-by-sacred.json.
var goldenOrder = []string{
	"_id", "experiment", "format", "command", "host", "start_time", "config", "meta", "status",
	"resources", "artifacts", "captured_out", "info", "heartbeat", "result", "stop_time", "fail_trace",
	// experiment
	"name", "base_dir", "sources", "dependencies", "repositories", "mainfile",
	// host
	"hostname", "os", "python_version", "cpu", "ENV",
	// meta (command is above)
	"options", "named_configs", "config_updates",
	// repositories
	"url", "commit", "dirty",
	// artifacts
	"file_id",
}

// goldenLikeStart is a start event shaped like the golden runs: no comment
// or priority (Sacred's meta has them only when given).
func goldenLikeStart() *observer.StartEvent {
	ev := observertest.StartEvent()
	ev.Meta.Comment = ""
	ev.Meta.Priority = nil
	return ev
}

// TestStartDocMatchesSacred checks the exact document we send to MongoDB
// (pairs as arrays) against Sacred's insert_one, as BSON.
func TestStartDocMatchesSacred(t *testing.T) {
	g := loadGolden(t)
	ev := goldenLikeStart()
	ids := []bson.ObjectID{bson.NewObjectID(), bson.NewObjectID()}
	b, err := bson.Marshal(startDoc(int32(1), ev, ids, pairArrays, bson.NewObjectID().Hex()))
	must(t, err)
	raw := bson.Raw(b)
	for _, id := range []string{"1", "2", "3"} {
		golden := goldenRun(t, g, id, "insert_one")
		for _, d := range shapeDiff("", golden, bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: raw}) {
			t.Errorf("run %s insert_one: %s", id, d)
		}
	}
	// Sources are [name, ObjectId] pairs as nested arrays.
	src := values(raw.Lookup("experiment", "sources").Array())
	pair := values(src[0].Array())
	if len(pair) != 2 || pair[0].Type != bson.TypeString || pair[1].Type != bson.TypeObjectID {
		t.Errorf("source pair %v", src[0])
	}
	if got := pairArrays.pair("/a/b.txt", "51dd"); len(got.(bson.A)) != 2 {
		t.Errorf("resource pair %v", got)
	}
}

// TestStoredRunMatchesSacred records golden-like runs on the test server
// and compares the stored documents with Sacred's final documents. On
// FerretDB the pairs are documents {"0", "1"}.
func TestStoredRunMatchesSacred(t *testing.T) {
	g := loadGolden(t)
	s := newStore(t)
	for _, tc := range []struct{ id, status string }{{"1", "COMPLETED"}, {"2", "FAILED"}, {"3", "INTERRUPTED"}} {
		o := s.open(t, "", nil)
		ev := goldenLikeStart()
		id, err := o.Started(ctx, ev)
		must(t, err)
		if id != tc.id {
			t.Fatalf("id %s, want %s", id, tc.id)
		}
		dir := t.TempDir()
		data := []byte("weights: 1 2 3\n")
		must(t, o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.txt", Path: writeFile(t, dir, "model.txt", data), Metadata: map[string]any{"kind": "weights"}}))
		in := []byte("input\n")
		must(t, o.Resource(ctx, &observer.ResourceEvent{Path: writeFile(t, dir, "input.txt", in), MD5: md5hex(in)}))
		info := map[string]any{"foo": "bar"}
		var pts []observer.MetricPoint
		for i := 0; i < 20; i++ {
			pts = append(pts, observer.MetricPoint{Step: int64(i), Value: 1 / float64(i+1), Time: ev.Time})
		}
		must(t, o.LogMetrics(ctx, &observer.MetricsEvent{Info: info, Metrics: []observer.MetricSeries{{Name: "loss", Points: pts}}}))
		beats := observertest.NewBeats()
		beats.Out.Append([]byte("Starting training\n"))
		hb := beats.Next(ev.Time.Add(time.Second), info)
		hb.Final = true
		must(t, o.Heartbeat(ctx, hb))
		stop := ev.Time.Add(2 * time.Second)
		switch tc.status {
		case "COMPLETED":
			must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: stop, Result: 0.93, HasResult: true}))
		case "FAILED":
			must(t, o.Failed(ctx, &observer.FailedEvent{StopTime: stop, Trace: []string{"Traceback (most recent call last):\n", "ValueError: boom\n"}}))
		default:
			must(t, o.Interrupted(ctx, &observer.InterruptedEvent{StopTime: stop, Status: "INTERRUPTED"}))
		}
		raw := rawRun(t, o)
		golden := goldenRun(t, g, tc.id, "last_set")
		if o.IsFerretDB() {
			// Compare the pairs' own form, then the rest as Sacred's.
			for _, p := range []string{"experiment.sources", "resources"} {
				v := raw.Lookup(strings.Split(p, ".")...)
				for _, e := range values(v.Array()) {
					if d, ok := e.DocumentOK(); !ok || strings.Join(keys(d), ",") != "0,1" {
						t.Errorf("run %s %s: FerretDB pair %v, want {0, 1}", tc.id, p, e)
					}
				}
			}
			golden = withoutPairs(golden)
			raw = rawWithoutPairs(t, raw)
		}
		for _, d := range shapeDiff("", golden, bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: raw}) {
			t.Errorf("run %s (%s) stored: %s", tc.id, tc.status, d)
		}
		// The metric document as Sacred's.
		var m bson.Raw
		must(t, o.metrics.FindOne(ctx, bson.D{{Key: "run_id", Value: o.id}}).Decode(&m))
		gm := g["metrics_updates"].(map[string]any)[tc.id].([]any)[0].(map[string]any)
		for _, k := range []string{"run_id", "name"} {
			if shapeDiff(k, gm["filter"].(map[string]any)[k], m.Lookup(k)) != nil {
				t.Errorf("metric %s type %s", k, m.Lookup(k).Type)
			}
		}
		for _, k := range []string{"steps", "values", "timestamps"} {
			each := gm["update"].(map[string]any)["$push"].(map[string]any)[k].(map[string]any)["$each"]
			for _, d := range shapeDiff("metrics."+k, each, m.Lookup(k)) {
				t.Errorf("run %s: %s", tc.id, d)
			}
		}
	}
}

func withoutPairs(g map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range g {
		out[k] = v
	}
	ex := map[string]any{}
	for k, v := range g["experiment"].(map[string]any) {
		ex[k] = v
	}
	ex["sources"] = []any{}
	out["experiment"] = ex
	out["resources"] = []any{}
	return out
}

func rawWithoutPairs(t *testing.T, raw bson.Raw) bson.Raw {
	var d bson.D
	must(t, bson.Unmarshal(raw, &d))
	for i, e := range d {
		switch e.Key {
		case "resources":
			d[i].Value = bson.A{}
		case "experiment":
			ex := e.Value.(bson.D)
			for j := range ex {
				if ex[j].Key == "sources" {
					ex[j].Value = bson.A{}
				}
			}
		}
	}
	b, err := bson.Marshal(d)
	must(t, err)
	return b
}
