package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is a local HTTP server that stands in for Slack's webhook,
// Telegram's Bot API or a webhook receiver: it records every body with
// its path and headers.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	posts []post
}

type post struct {
	path   string
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, answer string) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.posts = append(r.posts, post{req.URL.Path, req.Header.Clone(), body})
		r.mu.Unlock()
		io.WriteString(w, answer)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) all() []post {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]post(nil), r.posts...)
}

// fileRun is what the file store recorded of a run.
type fileRun struct {
	id, name, status string
	start, stop      time.Time
	result           any
	trace            []string
	hostname         string
	cout             string
}

func readRuns(t *testing.T, dir string) []fileRun {
	t.Helper()
	ids := runDirs(t, dir)
	sort.Slice(ids, func(i, j int) bool { return len(ids[i]) < len(ids[j]) || len(ids[i]) == len(ids[j]) && ids[i] < ids[j] })
	var out []fileRun
	for _, id := range ids {
		m := readJSON(t, filepath.Join(dir, id, "run.json"))
		r := fileRun{id: id, status: m["status"].(string), result: m["result"]}
		r.name = m["experiment"].(map[string]any)["name"].(string)
		r.hostname = m["host"].(map[string]any)["hostname"].(string)
		r.start = parseTime(t, m["start_time"].(string))
		r.stop = parseTime(t, m["stop_time"].(string))
		if tr, ok := m["fail_trace"].([]any); ok {
			for _, l := range tr {
				r.trace = append(r.trace, l.(string))
			}
		}
		r.cout = readFile(t, filepath.Join(dir, id, "cout.txt"))
		out = append(out, r)
	}
	return out
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	for _, layout := range []string{"2006-01-02T15:04:05.999999Z", "2006-01-02T15:04:05.999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			return v
		}
	}
	t.Fatalf("not a time: %q", s)
	return time.Time{}
}

// tdFormat is Sacred's td_format (sacred/observers/base.py), written
// again here so that the test does not share the code it checks.
func tdFormat(start, stop time.Time) string {
	seconds := int64(stop.Sub(start) / time.Second)
	if seconds == 0 {
		return "less than a second"
	}
	var parts []string
	for _, p := range []struct {
		name string
		n    int64
	}{{"year", 365 * 86400}, {"month", 30 * 86400}, {"day", 86400}, {"hour", 3600}, {"minute", 60}, {"second", 1}} {
		if seconds >= p.n {
			v := seconds / p.n
			seconds %= p.n
			s := fmt.Sprintf("%d %s", v, p.name)
			if v != 1 {
				s += "s"
			}
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}

// pyStr is Python's str() of a naive datetime.
func pyStr(t time.Time) string {
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

// notifyRuns are three runs: one completes with a result, one fails, one
// times out. Each returns the exit status it must end with.
var notifyRuns = []struct {
	args []string
	code int
}{
	{[]string{"--", "sh", "-c", `echo training; test -z "$SACRED_SLACK_WEBHOOK_URL$SACRED_WEBHOOK_SECRET$SACRED_TELEGRAM_TOKEN" || echo LEAK; sacred log result 0.93`}, 0},
	{[]string{"--", "sh", "-c", "echo epoch 1; echo 'Traceback (most recent call last):' >&2; echo 'ValueError: boom' >&2; exit 3"}, 3},
	{[]string{"--timeout", "1s", "--", "sleep", "30"}, 143},
}

// TestNotifySlackTelegramDefaultTexts: through the binary, local servers
// standing in for Slack's webhook and Telegram's Bot API receive Sacred's
// default texts for a completed, a failed and a timed-out run, with the
// times and trace the file store recorded; the child's exit status is
// kept, and the secrets (given in the environment) reach neither the
// child nor any record.
func TestNotifySlackTelegramDefaultTexts(t *testing.T) {
	const hookToken = "XXXXe2eSlackTokenXXXX"
	const botToken = "987654:AAe2eBotToken"
	slack := newReceiver(t, "ok")
	tg := newReceiver(t, `{"ok":true,"result":{"message_id":1}}`)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slack.json"), []byte(`{"bot_name": "lab-bot"}`), 0o600)
	os.WriteFile(filepath.Join(dir, "telegram.yaml"), []byte("chat_id: 4242\nsilent_completion: true\napi_url: "+tg.URL+"\n"), 0o600)
	env := []string{pathWithSacred(), "SACRED_SLACK_WEBHOOK_URL=" + slack.URL + "/services/T0/B0/" + hookToken, "SACRED_TELEGRAM_TOKEN=" + botToken}
	for _, r := range notifyRuns {
		args := append([]string{"run", "-F", "runs", "-n", "train", "--slack", "slack.json", "--telegram", "telegram.yaml"}, r.args...)
		res := sacred(t, dir, env, args...)
		if res.code != r.code {
			t.Fatalf("sacred %v: exit %d, want %d\n%s", args, res.code, r.code, res.stderr)
		}
		if strings.Contains(res.stderr, hookToken) || strings.Contains(res.stderr, "AAe2eBotToken") || strings.Contains(res.stderr, "could not") {
			t.Errorf("stderr: %s", res.stderr)
		}
	}
	runs := readRuns(t, filepath.Join(dir, "runs"))
	if len(runs) != 3 {
		t.Fatalf("%d runs", len(runs))
	}
	wantStatus := []string{"COMPLETED", "FAILED", "TIMEOUT"}
	for i, r := range runs {
		if r.status != wantStatus[i] {
			t.Fatalf("run %s: status %s, want %s", r.id, r.status, wantStatus[i])
		}
		if strings.Contains(r.cout, "LEAK") {
			t.Errorf("the child saw a secret variable")
		}
		raw := readFile(t, filepath.Join(dir, "runs", r.id, "run.json"))
		if strings.Contains(raw, hookToken) || strings.Contains(raw, "AAe2eBotToken") {
			t.Errorf("run %s records a secret", r.id)
		}
	}

	// Slack: one message per run, at its end.
	wantSlack := []string{
		":white_check_mark: *train* completed after _" + tdFormat(runs[0].start, runs[0].stop) + "_ with result=`0.93`",
		":x: *train* failed after _" + tdFormat(runs[1].start, runs[1].stop) + "_ with `ValueError: boom`",
		":warning: *train* interrupted after _" + tdFormat(runs[2].start, runs[2].stop) + "_",
	}
	posts := slack.all()
	if len(posts) != 3 {
		t.Fatalf("Slack got %d posts, want 3", len(posts))
	}
	for i, p := range posts {
		var m struct{ Username, Icon_emoji, Text string }
		if err := json.Unmarshal(p.body, &m); err != nil {
			t.Fatal(err)
		}
		if p.path != "/services/T0/B0/"+hookToken || m.Username != "lab-bot" || m.Icon_emoji != ":angel:" || m.Text != wantSlack[i] {
			t.Errorf("Slack post %d to %s: %+v\nwant text %q", i, p.path, m, wantSlack[i])
		}
	}

	// Telegram: a silent start and an end per run.
	type msg struct {
		ChatID              int    `json:"chat_id"`
		Text                string `json:"text"`
		ParseMode           string `json:"parse_mode"`
		DisableNotification bool   `json:"disable_notification"`
	}
	var want []msg
	for i, r := range runs {
		want = append(want, msg{4242, "♻ *train* started at _" + pyStr(r.start) + "_ on host `" + r.hostname + "`", "Markdown", true})
		switch i {
		case 0:
			want = append(want, msg{4242, "✅ *train* completed after _" + tdFormat(r.start, r.stop) + "_ with result=`0.93`", "Markdown", true})
		case 1:
			want = append(want, msg{4242, "❌ *train* failed after _" + tdFormat(r.start, r.stop) + "_ with `ValueError: boom`\n\nBacktrace:\n```" + strings.Join(r.trace, "") + "```", "Markdown", false})
		case 2:
			want = append(want, msg{4242, "⚠ *train* interrupted after _" + tdFormat(r.start, r.stop) + "_", "Markdown", false})
		}
	}
	tgPosts := tg.all()
	if len(tgPosts) != len(want) {
		t.Fatalf("Telegram got %d messages, want %d", len(tgPosts), len(want))
	}
	for i, p := range tgPosts {
		var m msg
		if err := json.Unmarshal(p.body, &m); err != nil {
			t.Fatal(err)
		}
		if p.path != "/bot"+botToken+"/sendMessage" || m != want[i] {
			t.Errorf("Telegram message %d to %s:\n got %+v\nwant %+v", i, p.path, m, want[i])
		}
	}
}

// execExample is the Python observer of docs/observers/exec.md: the first
// python block, taken from the document so that the two cannot drift.
func execExample(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	doc := readFile(t, filepath.Join(filepath.Dir(file), "..", "..", "docs", "observers", "exec.md"))
	_, rest, ok := strings.Cut(doc, "```python\n")
	code, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/observers/exec.md has no python block")
	}
	return code
}

// TestNotifyExecExampleAndWebhookMatchFileStore: through the binary, the
// Python example of docs/observers/exec.md and a webhook receiver record
// the same runs (ids, names, statuses, times, results, output) as the file
// store; every document is signed with SACRED_WEBHOOK_SECRET.
func TestNotifyExecExampleAndWebhookMatchFileStore(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required under CI: the exec observer's documented example is written in it")
		}
		t.Skip("python3 is not installed: the exec observer's documented example is written in it")
	}
	const key = "e2e-hmac-key"
	hook := newReceiver(t, "ok")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "csv_observer.py"), []byte(execExample(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{pathWithSacred(), "SACRED_WEBHOOK_SECRET=" + key}
	for _, r := range notifyRuns {
		args := append([]string{"run", "-F", "runs", "--observer-exec", "python3 csv_observer.py runs.csv", "--webhook", hook.URL + "/sacred?token=e2e-query-token"}, r.args...)
		res := sacred(t, dir, env, args...)
		if res.code != r.code {
			t.Fatalf("sacred %v: exit %d, want %d\n%s", args, res.code, r.code, res.stderr)
		}
		if strings.Contains(res.stderr, "observer") && strings.Contains(res.stderr, "could not") {
			t.Errorf("an observer failed: %s", res.stderr)
		}
	}
	runs := readRuns(t, filepath.Join(dir, "runs"))
	if len(runs) != 3 {
		t.Fatalf("%d runs in the file store", len(runs))
	}
	for _, r := range runs {
		raw := readFile(t, filepath.Join(dir, "runs", r.id, "run.json"))
		if strings.Contains(raw, "e2e-query-token") || strings.Contains(raw, key) {
			t.Errorf("run %s records a secret", r.id)
		}
	}

	// The CSV of the Python example.
	f, err := os.Open(filepath.Join(dir, "runs.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || strings.Join(rows[0], ",") != "id,name,start_time,status,stop_time,result" {
		t.Fatalf("runs.csv:\n%v", rows)
	}
	wantResult := []string{"0.93", "null", "null"}
	for i, r := range runs {
		row := rows[i+1]
		if row[0] != r.id || row[1] != r.name || row[3] != r.status || row[5] != wantResult[i] {
			t.Errorf("CSV row %v, file store: id %s name %s status %s", row, r.id, r.name, r.status)
		}
		if !parseTime(t, row[2]).Equal(r.start) || !parseTime(t, row[4]).Equal(r.stop) {
			t.Errorf("CSV row %v: times differ from the file store's %v, %v", row, r.start, r.stop)
		}
	}

	// The webhook's documents, by run.
	type doc struct {
		Schema string  `json:"schema"`
		Event  string  `json:"event"`
		Seq    int     `json:"seq"`
		RunID  *string `json:"run_id"`
		Time   string  `json:"time"`
		Status string  `json:"status"`
		Result any     `json:"result"`
		Output *struct {
			From, To int
			Text     string
		} `json:"output"`
		Run *struct {
			Experiment struct{ Name string } `json:"experiment"`
		} `json:"run"`
	}
	byRun := map[string][]doc{}
	for _, p := range hook.all() {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write(p.body)
		if p.header.Get("X-Sacred-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("a document's signature does not match: %s", p.body)
		}
		var d doc
		if err := json.Unmarshal(p.body, &d); err != nil {
			t.Fatalf("not JSON: %s", p.body)
		}
		if d.Schema != "sacred.event/v1" || d.RunID == nil {
			t.Fatalf("document %s", p.body)
		}
		byRun[*d.RunID] = append(byRun[*d.RunID], d)
	}
	if len(byRun) != 3 {
		t.Fatalf("the webhook heard of %d runs", len(byRun))
	}
	for i, r := range runs {
		docs := byRun[r.id]
		first, last := docs[0], docs[len(docs)-1]
		if first.Event != "started" || first.Run == nil || first.Run.Experiment.Name != r.name || !parseTime(t, first.Time).Equal(r.start) {
			t.Errorf("run %s: first document %+v", r.id, first)
		}
		if last.Status != r.status || !parseTime(t, last.Time).Equal(r.stop) || fmt.Sprint(last.Result) != fmt.Sprint(r.result) {
			t.Errorf("run %s: last document %+v, file store %s %v %v", r.id, last, r.status, r.stop, r.result)
		}
		var out strings.Builder
		for j, d := range docs {
			if d.Seq != j+1 {
				t.Errorf("run %s: document %d has seq %d", r.id, j, d.Seq)
			}
			if d.Output != nil {
				if d.Output.From != out.Len() {
					t.Errorf("run %s: output from %d after %d bytes", r.id, d.Output.From, out.Len())
				}
				out.WriteString(d.Output.Text)
			}
		}
		if out.String() != r.cout {
			t.Errorf("run %d: the webhook's output %q, the file store's %q", i, out.String(), r.cout)
		}
	}
}

// TestNotifyStalledSinksDoNotHoldExit: through the binary, a Slack webhook
// and a Telegram Bot API that accept and never answer, and a webhook
// receiver and an exec observer that stop answering after the start (at
// the start they are stores: failing it stops the run), do not keep
// the wrapper past --flush-timeout (plus the bounded close); it exits with
// the child's status and says which observers did not record the end.
func TestNotifyStalledSinksDoNotHoldExit(t *testing.T) {
	release := make(chan struct{})
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Sacred-Event") == "started" {
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); stalled.Close() })
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slack.json"), []byte(`{"webhook_url": "`+stalled.URL+`/hook"}`), 0o600)
	os.WriteFile(filepath.Join(dir, "telegram.json"), []byte(`{"token": "1:x", "chat_id": 1, "api_url": "`+stalled.URL+`"}`), 0o600)
	res := sacredNoHang(t, dir, nil, "run", "-F", "runs", "--flush-timeout", "1s",
		"--slack", "slack.json", "--telegram", "telegram.json", "--webhook", stalled.URL+"/events",
		"--observer-exec", `read line; echo '{"ok": true}'; sleep 600`,
		"--", "sh", "-c", "exit 7")
	if res.code != 7 {
		t.Fatalf("exit %d, want the child's 7\n%s", res.code, res.stderr)
	}
	for _, name := range []string{"slack slack.json", "webhook " + stalled.URL + "/events", "observer-exec read line;"} {
		if !strings.Contains(res.stderr, "observer "+name) {
			t.Errorf("stderr does not name the observer %q:\n%s", name, res.stderr)
		}
	}
	t.Logf("stderr:\n%s", res.stderr)
	if !strings.Contains(res.stderr, "sending the started message") {
		t.Errorf("no warning about Telegram's start message:\n%s", res.stderr)
	}
	runs := readRuns(t, filepath.Join(dir, "runs"))
	if len(runs) != 1 || runs[0].status != "FAILED" {
		t.Errorf("the file store's run: %+v", runs)
	}
}
