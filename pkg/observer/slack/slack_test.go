package slack

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/internal/notify/notifytest"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// hookToken is the secret part of the test webhook's URL, as in Slack's
// https://hooks.slack.com/services/T…/B…/<token>.
const hookToken = "XXXXsecretXXXXtokenXXXX"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func hookURL(srv *notifytest.Server) string {
	return srv.URL + "/services/T000/B000/" + hookToken
}

// payload is what Sacred's SlackObserver posts.
type payload struct {
	Username    string `json:"username"`
	IconEmoji   string `json:"icon_emoji"`
	Text        string `json:"text"`
	Attachments []struct {
		Text string `json:"text"`
	} `json:"attachments"`
}

func decode(t *testing.T, r notifytest.Request) payload {
	t.Helper()
	var p payload
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("the post is not JSON: %v: %s", err, r.Body)
	}
	return p
}

func open(t *testing.T, path string) *Observer {
	t.Helper()
	cfg, err := ParseConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(context.Background(), cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func startEvent(name string, t0 time.Time) *observer.StartEvent {
	ev := observertest.StartEvent()
	ev.ID = "7"
	ev.Experiment.Name = name
	ev.Time = t0
	return ev
}

// TestDefaultTexts: a local server standing in for Slack's webhook receives
// Sacred's default texts, byte for byte, for completed, failed and
// interrupted runs, as Sacred's payload (username, icon_emoji, text) with
// Sacred's headers.
func TestDefaultTexts(t *testing.T) {
	srv := notifytest.New(t)
	path := writeFile(t, "slack.json", `{"webhook_url": "`+hookURL(srv)+`"}`)
	t0 := time.Date(2026, 11, 27, 3, 7, 12, 269319000, time.UTC)
	ctx := context.Background()
	trace := []string{"command exited with status 1\n", "Traceback (most recent call last):\n", "  File \"train.py\", line 3, in <module>\n", "ValueError: boom\n"}
	runs := []struct {
		end  func(o *Observer) error
		want string
	}{
		{func(o *Observer) error {
			return o.Completed(ctx, &observer.CompletedEvent{StopTime: t0.Add(65*time.Second + 300*time.Millisecond), Result: 0.93, HasResult: true})
		}, ":white_check_mark: *train* completed after _1 minute, 5 seconds_ with result=`0.93`"},
		{func(o *Observer) error {
			return o.Failed(ctx, &observer.FailedEvent{StopTime: t0.Add(5 * time.Second), Trace: trace})
		}, ":x: *train* failed after _5 seconds_ with `ValueError: boom`"},
		{func(o *Observer) error {
			return o.Interrupted(ctx, &observer.InterruptedEvent{StopTime: t0.Add(2*time.Hour + 500*time.Millisecond), Status: observer.StatusInterrupted})
		}, ":warning: *train* interrupted after _2 hours_"},
		{func(o *Observer) error {
			return o.Completed(ctx, &observer.CompletedEvent{StopTime: t0.Add(31*24*time.Hour + 5*time.Second)})
		}, ":white_check_mark: *train* completed after _1 month, 1 day, 5 seconds_ with result=`None`"},
	}
	for _, r := range runs {
		o := open(t, path)
		if _, err := o.Started(ctx, startEvent("train", t0)); err != nil {
			t.Fatal(err)
		}
		if err := r.end(o); err != nil {
			t.Fatal(err)
		}
		if err := o.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != len(runs) {
		t.Fatalf("%d posts, want %d (Slack gets no start message)", len(reqs), len(runs))
	}
	for i, r := range reqs {
		if r.Method != "POST" || r.Path != "/services/T000/B000/"+hookToken {
			t.Errorf("post %d: %s %s", i, r.Method, r.Path)
		}
		if ct, acc := r.Header.Get("Content-Type"), r.Header.Get("Accept"); ct != "application/json" || acc != "text/plain" {
			t.Errorf("post %d: Content-Type %q, Accept %q; Sacred sends application/json and text/plain", i, ct, acc)
		}
		p := decode(t, r)
		if p.Username != "sacred-bot" || p.IconEmoji != ":angel:" {
			t.Errorf("post %d: username %q, icon %q", i, p.Username, p.IconEmoji)
		}
		if p.Text != runs[i].want {
			t.Errorf("post %d:\n got %q\nwant %q", i, p.Text, runs[i].want)
		}
	}
	// The failure carries the end of its trace.
	if a := decode(t, reqs[1]).Attachments; len(a) != 1 || !strings.Contains(a[0].Text, "line 3, in <module>\nValueError: boom") {
		t.Errorf("failed post's attachments: %+v", a)
	}
}

// TestConfigForms: the seed's JSON form with custom texts, the same as
// YAML, null texts falling back to the defaults (Sacred's `or`).
func TestConfigForms(t *testing.T) {
	srv := notifytest.New(t)
	files := map[string]string{
		"slack.json": `{
    "webhook_url": "` + hookURL(srv) + `",
    "icon": ":imp:",
    "bot_name": "my-sacred-bot",
    "completed_text": "YAY! {experiment[name]} completed with result=` + "`{result}`" + `",
    "interrupted_text": null,
    "failed_text": "Oh noes! {experiment[name]} failed saying ` + "`{error}`" + `"
}`,
		"slack.yaml": "webhook_url: " + hookURL(srv) + "\nicon: ':imp:'\nbot_name: my-sacred-bot\ncompleted_text: 'YAY! {experiment[name]} completed with result=`{result}`'\ninterrupted_text: null\nfailed_text: 'Oh noes! {experiment[name]} failed saying `{error}`'\n",
	}
	for name, content := range files {
		cfg, err := ParseConfig(writeFile(t, name, content))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.BotName != "my-sacred-bot" || cfg.Icon != ":imp:" || cfg.Priority != 10 {
			t.Errorf("%s: %+v", name, cfg)
		}
		if cfg.Texts["interrupted"] != DefaultInterruptedText {
			t.Errorf("%s: a null interrupted_text gives %q, want Sacred's default", name, cfg.Texts["interrupted"])
		}
		if cfg.Texts["completed"] != "YAY! {experiment[name]} completed with result=`{result}`" {
			t.Errorf("%s: completed_text %q", name, cfg.Texts["completed"])
		}
	}
	o := open(t, writeFile(t, "s.json", files["slack.json"]))
	ctx := context.Background()
	t0 := time.Now().UTC()
	if _, err := o.Started(ctx, startEvent("mnist", t0)); err != nil {
		t.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: t0, Result: map[string]any{"acc": 0.5, "n": int64(3)}, HasResult: true}); err != nil {
		t.Fatal(err)
	}
	if got := decode(t, srv.Requests()[0]); got.Text != "YAY! mnist completed with result=`{'acc': 0.5, 'n': 3}`" || got.Username != "my-sacred-bot" {
		t.Errorf("custom text: %+v", got)
	}
}

// TestConfigErrors: each mistake is one clear line, found when the file is
// read (not when the run ends), and never shows the webhook URL.
func TestConfigErrors(t *testing.T) {
	t.Setenv(EnvWebhookURL, "")
	secretURL := "https://hooks.slack.com/services/T0/B0/" + hookToken
	for _, c := range []struct{ name, content, want string }{
		// The seed docs' example: unclosed fields.
		{"doc.json", `{"webhook_url": "` + secretURL + `", "completed_text": "YAY! {ex_info[name] completed with result=` + "`{result}`" + `"}`, "expected '}'"},
		{"exinfo.json", `{"webhook_url": "` + secretURL + `", "failed_text": "{ex_info[name]} failed"}`, "unknown placeholder {ex_info[name]} (Sacred 0.8 calls it experiment"},
		{"unknown.json", `{"webhook_url": "` + secretURL + `", "completed_text": "{stop_tme}"}`, "unknown placeholder {stop_tme}"},
		{"wrongevent.json", `{"webhook_url": "` + secretURL + `", "completed_text": "{error}"}`, "completed_text: unknown placeholder {error}"},
		{"nourl.json", `{"bot_name": "x"}`, "has no webhook_url"},
		{"scheme.json", `{"webhook_url": "ftp://x/` + hookToken + `"}`, "want an http(s) URL"},
		{"key.json", `{"webhook_url": "` + secretURL + `", "channel": "#x"}`, "unknown key(s) channel"},
		{"type.json", `{"webhook_url": "` + secretURL + `", "icon": 3}`, "icon must be a text"},
		{"bad.json", `{"webhook_url": "` + secretURL + `",}`, "not valid JSON"},
		{"list.yaml", "- a\n", "must be a mapping"},
		{"slack.pickle", "x", "pickle files are not supported"},
		{"slack.txt", "x", "unknown config file type"},
		{"spec.json", `{"webhook_url": "` + secretURL + `", "completed_text": "{stop_time:%Q}"}`, "%Q is not supported"},
	} {
		_, err := ParseConfig(writeFile(t, c.name, c.content))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), hookToken) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: the error shows the secret or is not one line: %v", c.name, err)
		}
	}
	if _, err := ParseConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

// TestEnvWebhookURL: the variable gives the secret and wins over the file.
func TestEnvWebhookURL(t *testing.T) {
	srv := notifytest.New(t)
	path := writeFile(t, "slack.yml", "bot_name: b\n")
	t.Setenv(EnvWebhookURL, hookURL(srv))
	o := open(t, path)
	ctx := context.Background()
	t0 := time.Now().UTC()
	if _, err := o.Started(ctx, startEvent("x", t0)); err != nil {
		t.Fatal(err)
	}
	if err := o.Interrupted(ctx, &observer.InterruptedEvent{StopTime: t0, Status: observer.StatusTimeout}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Fatalf("%d posts", n)
	}
	if got := decode(t, srv.Requests()[0]).Text; got != ":warning: *x* interrupted after _less than a second_" {
		t.Errorf("text %q", got)
	}

	t.Setenv(EnvWebhookURL, "https://elsewhere.example/"+hookToken)
	cfg, err := ParseConfig(writeFile(t, "s.json", `{"webhook_url": "`+hookURL(srv)+`"}`))
	if err != nil || cfg.WebhookURL != "https://elsewhere.example/"+hookToken {
		t.Errorf("the variable does not win over the file: %v", err)
	}
}

// TestUnknownConfigKeyAtStart: a placeholder into the config that the run
// does not have is an error of Started, before the command runs.
func TestUnknownConfigKeyAtStart(t *testing.T) {
	srv := notifytest.New(t)
	o := open(t, writeFile(t, "slack.json", `{"webhook_url": "`+hookURL(srv)+`", "completed_text": "m={config[momentum]:.3f} {host_info[hostname]}"}`))
	ev := startEvent("x", time.Now().UTC())
	_, err := o.Started(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "completed_text: {config[momentum]:.3f}: config has no key 'momentum'") {
		t.Fatalf("Started: %v", err)
	}
	ev.Config["momentum"] = 0.01
	if _, err := o.Started(context.Background(), ev); err != nil {
		t.Fatalf("Started with momentum: %v", err)
	}
	if err := o.Completed(context.Background(), &observer.CompletedEvent{StopTime: ev.Time}); err != nil {
		t.Fatal(err)
	}
	if got := decode(t, srv.Requests()[0]).Text; got != "m=0.010 "+ev.Host.Hostname {
		t.Errorf("text %q", got)
	}
}

// TestHTTPErrors: Slack's error answers come back as errors naming the
// message and the answer, never the URL.
func TestHTTPErrors(t *testing.T) {
	srv := notifytest.New(t)
	srv.Answer(func(notifytest.Request) (int, string) { return 404, "no_service" })
	o := open(t, writeFile(t, "slack.json", `{"webhook_url": "`+hookURL(srv)+`"}`))
	ctx := context.Background()
	if _, err := o.Started(ctx, startEvent("x", time.Now().UTC())); err != nil {
		t.Fatal(err)
	}
	err := o.Completed(ctx, &observer.CompletedEvent{StopTime: time.Now().UTC()})
	if err == nil || err.Error() != "slack: posting the completed message: HTTP 404 no_service" {
		t.Errorf("error %v", err)
	}
	srv.Close()
	err = o.Completed(ctx, &observer.CompletedEvent{StopTime: time.Now().UTC()})
	if err == nil || strings.Contains(err.Error(), hookToken) || !strings.Contains(err.Error(), "the Slack webhook of") {
		t.Errorf("error %v", err)
	}
}

// TestConformance runs the sink tier on the kind, with the webhook's
// token declared secret.
func TestConformance(t *testing.T) {
	srv := notifytest.New(t)
	k, ok := observer.Lookup(Option)
	if !ok {
		t.Fatal("slack is not registered")
	}
	path := writeFile(t, "slack.yaml", "webhook_url: "+hookURL(srv)+"\n")
	var warn strings.Builder
	observertest.RunSink(t, observertest.Sink{
		Secrets: []string{hookToken},
		New: func(t *testing.T) observer.Observer {
			o, err := k.OpenObserver(context.Background(), path, observer.Settings{Warn: &warn})
			if err != nil {
				t.Fatal(err)
			}
			return o
		},
		Break: srv.Break,
		Stall: srv.Stall,
	})
	if strings.Contains(warn.String(), hookToken) {
		t.Errorf("a warning shows the token: %s", warn.String())
	}
}
