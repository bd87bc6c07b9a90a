package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/eventjson"
	"github.com/sacred-go/sacred/pkg/observer/internal/notify/notifytest"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

const (
	password = "pa55word-secret"
	token    = "tok-secret-123"
)

func secretURL(srv *notifytest.Server) string {
	return strings.Replace(srv.URL, "http://", "http://alice:"+password+"@", 1) + "/hooks/sacred?token=" + token + "&v=1"
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://alice:pw@example.org/h?token=abc&token=def&x=1": "https://alice:***@example.org/h?token=***&token=***&x=***",
		"https://TOKEN@example.org/h":                            "https://***@example.org/h",
		"http://example.org:8080/path":                           "http://example.org:8080/path",
		"://bad":                                                 "***",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, v := range []string{"ftp://alice:" + password + "@x/", "/just/a/path?token=" + token, "http://" + password + "@/x", "://x" + token} {
		_, err := ParseConfig(v)
		if err == nil {
			t.Errorf("ParseConfig(%q) = nil error", v)
			continue
		}
		if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), token) {
			t.Errorf("ParseConfig: the error shows a secret: %v", err)
		}
	}
	if _, err := New(context.Background(), Config{URL: "http://x"}, observer.Settings{Flags: map[string]string{FlagTimeout: "soon"}}); err == nil || !strings.Contains(err.Error(), "--webhook-timeout \"soon\"") {
		t.Errorf("bad timeout: %v", err)
	}
}

// TestRunPosted: every event of a run arrives in order as one signed
// sacred.event/v1 document, numbered, with its event and delivery
// headers.
func TestRunPosted(t *testing.T) {
	const key = "hmac-key-from-env"
	t.Setenv(EnvSecret, key)
	srv := notifytest.New(t)
	cfg, err := ParseConfig(secretURL(srv))
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(context.Background(), cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := observertest.StartEvent()
	ev.ID = "42"
	if id, err := o.Started(ctx, ev); err != nil || id != "42" {
		t.Fatalf("Started: %q %v", id, err)
	}
	b := observertest.NewBeats()
	b.Out.Append([]byte("epoch 1\n"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(o.LogMetrics(ctx, &observer.MetricsEvent{Metrics: []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Step: 0, Value: 0.5, Time: ev.Time}}}}, Info: map[string]any{}}))
	must(o.Heartbeat(ctx, b.Next(ev.Time, map[string]any{"epoch": 1})))
	must(o.Resource(ctx, &observer.ResourceEvent{Path: "/data/in.csv", MD5: "abc"}))
	must(o.Artifact(ctx, &observer.ArtifactEvent{Name: "model.pt", Path: "/tmp/copy", OrigPath: "/w/model.pt"}))
	b.Out.Append([]byte("done\n"))
	must(o.Heartbeat(ctx, b.Next(ev.Time, map[string]any{"epoch": 2})))
	must(o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time.Add(time.Second), Result: 0.93, HasResult: true}))
	must(o.Close(ctx))

	want := []string{"started", "log_metrics", "heartbeat", "resource", "artifact", "heartbeat", "completed"}
	reqs := srv.Requests()
	if len(reqs) != len(want) {
		t.Fatalf("%d posts, want %d", len(reqs), len(want))
	}
	var outputs []string
	prefix := ""
	for i, r := range reqs {
		if r.Path != "/hooks/sacred" || r.Query != "token="+token+"&v=1" {
			t.Errorf("post %d to %s?%s", i, r.Path, r.Query)
		}
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write(r.Body)
		if got := r.Header.Get(SignatureHeader); got != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("post %d: signature %q does not match the body", i, got)
		}
		var d eventjson.Document
		if err := json.Unmarshal(r.Body, &d); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		if d.Schema != eventjson.Schema || d.Event != want[i] || d.Seq != int64(i+1) || d.RunID == nil || *d.RunID != "42" {
			t.Errorf("post %d: schema %q event %q seq %d run_id %v", i, d.Schema, d.Event, d.Seq, d.RunID)
		}
		if r.Header.Get(EventHeader) != want[i] || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("post %d: headers %v", i, r.Header)
		}
		p, seq, _ := strings.Cut(r.Header.Get(DeliveryHeader), "-")
		if i == 0 {
			prefix = p
		}
		if p != prefix || seq != strconv.Itoa(i+1) {
			t.Errorf("post %d: delivery %q", i, r.Header.Get(DeliveryHeader))
		}
		if d.Output != nil {
			outputs = append(outputs, d.Output.Text)
		}
		if d.Event == "completed" && (d.Result != 0.93 || d.Status != "COMPLETED") {
			t.Errorf("completed: %+v", d)
		}
	}
	if strings.Join(outputs, "") != "epoch 1\ndone\n" {
		t.Errorf("outputs %q", outputs)
	}
}

// TestRetries: a 5xx answer is tried again within the call, with the same
// delivery id; a 4xx is not; an answer that never comes is bounded by the
// context.
func TestRetries(t *testing.T) {
	srv := notifytest.New(t)
	var n atomic.Int32
	srv.Answer(func(notifytest.Request) (int, string) {
		if n.Add(1) <= 2 {
			return 503, "busy"
		}
		return 200, "ok"
	})
	o, err := New(context.Background(), Config{URL: srv.URL}, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: time.Now()}); err != nil {
		t.Fatalf("Completed after two 503: %v", err)
	}
	reqs := srv.Requests()
	if len(reqs) != 3 || reqs[0].Header.Get(DeliveryHeader) != reqs[2].Header.Get(DeliveryHeader) {
		t.Errorf("%d attempts; delivery ids %q, %q", len(reqs), reqs[0].Header.Get(DeliveryHeader), reqs[len(reqs)-1].Header.Get(DeliveryHeader))
	}

	srv.Answer(func(notifytest.Request) (int, string) { return 400, "bad document" })
	before := len(srv.Requests())
	err = o.Failed(ctx, &observer.FailedEvent{StopTime: time.Now(), Trace: []string{"x\n"}})
	if err == nil || err.Error() != "webhook: posting the failed event: "+srv.URL+" answered HTTP 400 bad document" {
		t.Errorf("400: %v", err)
	}
	if got := len(srv.Requests()) - before; got != 1 {
		t.Errorf("a 400 was posted %d times", got)
	}
}

// TestConformance runs the sink tier on the kind, the URL's password and
// token declared secret.
func TestConformance(t *testing.T) {
	srv := notifytest.New(t)
	k, ok := observer.Lookup(Option)
	if !ok {
		t.Fatal("webhook is not registered")
	}
	observertest.RunKind(t, k, secretURL(srv),
		observertest.WithSecrets(password, token),
		observertest.WithBreak(srv.Break),
		observertest.WithStall(srv.Stall),
		observertest.WithFlags(map[string]string{FlagTimeout: "2s"}))
}
