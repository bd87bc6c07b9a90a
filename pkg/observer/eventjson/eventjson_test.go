package eventjson

import (
	"encoding/json"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

func encode(t *testing.T, d *Document) map[string]any {
	t.Helper()
	b, err := Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), "}\n") || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("not one line: %q", b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not strict JSON: %v: %s", err, b)
	}
	if m["schema"] != Schema {
		t.Errorf("schema %v", m["schema"])
	}
	return m
}

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// TestDocuments: each event has exactly the documented fields.
func TestDocuments(t *testing.T) {
	ev := observertest.StartEvent()
	t0 := time.Date(2026, 11, 27, 3, 7, 12, 269319_500, time.UTC)
	ev.Time = t0
	ev.Config["bad"] = math.NaN()
	start := encode(t, Start(Started, 1, ev))
	if keys(start) != "event,run,run_id,schema,seq,time" || start["run_id"] != nil || start["time"] != "2026-11-27T03:07:12.269319Z" {
		t.Errorf("started: %v", start)
	}
	run := start["run"].(map[string]any)
	if keys(run) != "command,config,experiment,host,meta" {
		t.Errorf("run: %s", keys(run))
	}
	if run["config"].(map[string]any)["bad"] != "NaN" {
		t.Errorf("NaN config: %v", run["config"])
	}
	if keys(run["experiment"].(map[string]any)) != "base_dir,dependencies,mainfile,name,repositories,sources" {
		t.Errorf("experiment: %v", run["experiment"])
	}
	src := run["experiment"].(map[string]any)["sources"].([]any)[0].(map[string]any)
	if keys(src) != "md5,name,omitted,path,size" {
		t.Errorf("source: %v", src)
	}
	if keys(run["host"].(map[string]any)) != "cpu,cpu_count,env,gpus,hostname,memory_total,os" {
		t.Errorf("host: %v", run["host"])
	}
	if keys(run["meta"].(map[string]any)) != "argv,command,comment,config_updates,cwd,named_configs,options,priority,queue_time" {
		t.Errorf("meta: %v", run["meta"])
	}

	ev.ID = "7"
	ev.Host = nil
	ev.Meta.QueueTime = &t0
	q := encode(t, Start(Queued, 1, ev))
	if q["run_id"] != "7" || q["run"].(map[string]any)["host"] != nil || q["run"].(map[string]any)["meta"].(map[string]any)["queue_time"] != "2026-11-27T03:07:12.269319Z" {
		t.Errorf("queued: %v", q)
	}

	b := observertest.NewBeats()
	b.Out.Append([]byte("ok\n\xff\n"))
	hb := b.Next(t0, map[string]any{"x": math.Inf(1)})
	beat := encode(t, Beat(2, "7", hb, b.Out.Bytes()))
	if keys(beat) != "event,final,has_result,info,output,result,run_id,schema,seq,time" || beat["result"] != nil || beat["has_result"] != false {
		t.Errorf("heartbeat: %v", beat)
	}
	if out := beat["output"].(map[string]any); out["text"] != "ok\n\uFFFD\n" || out["from"] != 0.0 || out["to"] != 5.0 {
		t.Errorf("output: %v", out)
	}
	if beat["info"].(map[string]any)["x"] != "Infinity" {
		t.Errorf("info: %v", beat["info"])
	}

	me := encode(t, Metrics(3, "7", &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Step: 0, Value: 0.5, Time: t0}, {Step: 1, Value: math.Inf(-1), Time: t0}}}}}, t0))
	m := me["metrics"].([]any)[0].(map[string]any)
	if keys(me) != "event,metrics,run_id,schema,seq,time" || keys(m) != "name,steps,timestamps,values" || m["values"].([]any)[1] != "-Infinity" {
		t.Errorf("log_metrics: %v", me)
	}

	if d := encode(t, ResourceDoc(4, "7", &observer.ResourceEvent{Path: "/a", MD5: "m"}, t0)); keys(d) != "event,md5,path,run_id,schema,seq,time" {
		t.Errorf("resource: %v", d)
	}
	if d := encode(t, ArtifactDoc(5, "7", &observer.ArtifactEvent{Name: "n", Path: "/p", OrigPath: "/o", ContentType: "text/plain", Metadata: map[string]any{"k": 1}}, t0)); keys(d) != "content_type,event,metadata,name,orig_path,path,run_id,schema,seq,time" {
		t.Errorf("artifact: %v", d)
	}
	if d := encode(t, CompletedDoc(6, "7", &observer.CompletedEvent{StopTime: t0, Result: 0.93, HasResult: true})); keys(d) != "event,has_result,result,run_id,schema,seq,status,time" || d["result"] != 0.93 || d["status"] != "COMPLETED" {
		t.Errorf("completed: %v", d)
	}
	if d := encode(t, CompletedDoc(6, "7", &observer.CompletedEvent{StopTime: t0})); d["result"] != nil || d["has_result"] != false {
		t.Errorf("completed without result: %v", d)
	}
	if d := encode(t, InterruptedDoc(6, "7", &observer.InterruptedEvent{StopTime: t0, Status: "TIMEOUT"})); keys(d) != "event,run_id,schema,seq,status,time" || d["status"] != "TIMEOUT" {
		t.Errorf("interrupted: %v", d)
	}
	if d := encode(t, FailedDoc(6, "7", &observer.FailedEvent{StopTime: t0, Trace: []string{"x\n"}})); keys(d) != "event,fail_trace,run_id,schema,seq,status,time" || d["status"] != "FAILED" {
		t.Errorf("failed: %v", d)
	}
}

// TestDecode: a Go receiver reads a document back into Document.
func TestDecode(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	b, err := Encode(CompletedDoc(9, "12", &observer.CompletedEvent{StopTime: t0, Result: map[string]any{"acc": 0.5}, HasResult: true}))
	if err != nil {
		t.Fatal(err)
	}
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.Event != Completed || d.Seq != 9 || *d.RunID != "12" || !d.Time.Equal(t0) || d.Result.(map[string]any)["acc"] != 0.5 || !*d.HasResult {
		t.Errorf("decoded %+v", d)
	}
}
