package telegram

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/internal/notify/notifytest"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

const token = "123456789:AAEsecretTokenFromBotFather"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// botAPI is a local server standing in for the Bot API: it answers
// sendMessage as Telegram does.
func botAPI(t *testing.T) *notifytest.Server {
	srv := notifytest.New(t)
	srv.Answer(func(notifytest.Request) (int, string) { return 200, `{"ok":true,"result":{"message_id":1}}` })
	return srv
}

// message is a sendMessage request.
type message struct {
	ChatID              any    `json:"chat_id"`
	Text                string `json:"text"`
	ParseMode           string `json:"parse_mode"`
	DisableNotification bool   `json:"disable_notification"`
}

func messages(t *testing.T, srv *notifytest.Server) []message {
	t.Helper()
	var out []message
	for _, r := range srv.Requests() {
		if r.Path != "/bot"+token+"/sendMessage" || r.Method != "POST" {
			t.Errorf("request %s %s, want POST /bot<token>/sendMessage", r.Method, r.Path)
		}
		var m message
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("not JSON: %s", r.Body)
		}
		out = append(out, m)
	}
	return out
}

func open(t *testing.T, path string, warn io.Writer) *Observer {
	t.Helper()
	cfg, err := ParseConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	o, err := New(context.Background(), cfg, observer.Settings{Warn: warn})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func startEvent(t0 time.Time) *observer.StartEvent {
	ev := observertest.StartEvent()
	ev.ID = "7"
	ev.Experiment.Name = "train"
	ev.Time = t0
	ev.Host.Hostname = "gpu-node-3"
	return ev
}

// TestDefaultTexts: the Bot API receives Sacred's default texts for the
// start (silent) and for completed, failed and interrupted runs, with
// parse_mode Markdown and disable_notification as Sacred sets it.
func TestDefaultTexts(t *testing.T) {
	srv := botAPI(t)
	for _, silent := range []bool{false, true} {
		t.Run("silent_completion="+strconv.FormatBool(silent), func(t *testing.T) {
			srv := botAPI(t)
			path := writeFile(t, "telegram.json", `{"token": "`+token+`", "chat_id": 4242, "silent_completion": `+strconv.FormatBool(silent)+`, "api_url": "`+srv.URL+`"}`)
			t0 := time.Date(2026, 11, 27, 3, 7, 12, 269319000, time.UTC)
			ctx := context.Background()
			o := open(t, path, nil)
			if _, err := o.Started(ctx, startEvent(t0)); err != nil {
				t.Fatal(err)
			}
			if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: t0.Add(3*time.Hour + time.Second), Result: []any{int64(1), "a"}, HasResult: true}); err != nil {
				t.Fatal(err)
			}
			ms := messages(t, srv)
			want := []message{
				{4242.0, "♻ *train* started at _2026-11-27 03:07:12.269319_ on host `gpu-node-3`", "Markdown", true},
				{4242.0, "✅ *train* completed after _3 hours, 1 second_ with result=`[1, 'a']`", "Markdown", silent},
			}
			if len(ms) != 2 || ms[0] != want[0] || ms[1] != want[1] {
				t.Errorf("messages:\n got %+v\nwant %+v", ms, want)
			}
		})
	}

	path := writeFile(t, "telegram.yaml", "token: "+token+"\nchat_id: '@lab'\napi_url: "+srv.URL+"\n")
	t0 := time.Date(2026, 11, 27, 3, 7, 12, 0, time.UTC)
	ctx := context.Background()
	o := open(t, path, nil)
	if _, err := o.Started(ctx, startEvent(t0)); err != nil {
		t.Fatal(err)
	}
	trace := []string{"command exited with status 1\n", "Traceback (most recent call last):\n", "ValueError: boom\n"}
	if err := o.Failed(ctx, &observer.FailedEvent{StopTime: t0.Add(61 * time.Second), Trace: trace}); err != nil {
		t.Fatal(err)
	}
	o = open(t, path, nil)
	if _, err := o.Started(ctx, startEvent(t0)); err != nil {
		t.Fatal(err)
	}
	if err := o.Interrupted(ctx, &observer.InterruptedEvent{StopTime: t0.Add(48 * time.Hour), Status: observer.StatusInterrupted}); err != nil {
		t.Fatal(err)
	}
	want := []message{
		{"@lab", "♻ *train* started at _2026-11-27 03:07:12_ on host `gpu-node-3`", "Markdown", true},
		{"@lab", "❌ *train* failed after _1 minute, 1 second_ with `ValueError: boom`\n\nBacktrace:\n```command exited with status 1\nTraceback (most recent call last):\nValueError: boom\n```", "Markdown", false},
		{"@lab", "♻ *train* started at _2026-11-27 03:07:12_ on host `gpu-node-3`", "Markdown", true},
		{"@lab", "⚠ *train* interrupted after _2 days_", "Markdown", false},
	}
	ms := messages(t, srv)
	if len(ms) != len(want) {
		t.Fatalf("%d messages, want %d: %+v", len(ms), len(want), ms)
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("message %d:\n got %+v\nwant %+v", i, ms[i], want[i])
		}
	}
}

// TestTexts: null disables a message (as in Sacred), a missing key keeps
// the default, a custom text is used; the backtrace is bounded.
func TestTexts(t *testing.T) {
	srv := botAPI(t)
	path := writeFile(t, "t.json", `{"token": "`+token+`", "chat_id": 1, "api_url": "`+srv.URL+`", "started_text": null, "completed_text": "{_id:>4}|{config[seed]}|{command}"}`)
	ctx := context.Background()
	t0 := time.Now().UTC()
	o := open(t, path, nil)
	ev := startEvent(t0)
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: t0}); err != nil {
		t.Fatal(err)
	}
	long := make([]string, 200)
	for i := range long {
		long[i] = strings.Repeat("x", 50) + " line " + strconv.Itoa(i) + "\n"
	}
	o = open(t, path, nil)
	if _, err := o.Started(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := o.Failed(ctx, &observer.FailedEvent{StopTime: t0, Trace: long}); err != nil {
		t.Fatal(err)
	}
	ms := messages(t, srv)
	if len(ms) != 2 {
		t.Fatalf("messages: %+v (a null started_text sends nothing)", ms)
	}
	if want := "   7|" + fmt.Sprint(ev.Config["seed"]) + "|" + ev.Command; ms[0].Text != want {
		t.Errorf("custom text %q, want %q", ms[0].Text, want)
	}
	f := ms[1].Text
	if len(f) > 3000 || !strings.Contains(f, "with `"+strings.Repeat("x", 50)+" line 199`") || !strings.Contains(f, "```…\n") || !strings.HasSuffix(f, " line 199\n```") || strings.Contains(f, " line 150\n") {
		t.Errorf("failed message with a long trace (%d bytes):\n%s", len(f), f)
	}
}

// TestMarkdownFallback: a message the Bot API cannot parse as Markdown is
// sent again as plain text rather than lost.
func TestMarkdownFallback(t *testing.T) {
	srv := notifytest.New(t)
	srv.Answer(func(r notifytest.Request) (int, string) {
		if strings.Contains(string(r.Body), `"parse_mode"`) {
			return 400, `{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 40"}`
		}
		return 200, `{"ok":true,"result":{}}`
	})
	o := open(t, writeFile(t, "t.json", `{"token": "`+token+`", "chat_id": 1, "api_url": "`+srv.URL+`", "started_text": null}`), nil)
	ctx := context.Background()
	if _, err := o.Started(ctx, startEvent(time.Now().UTC())); err != nil {
		t.Fatal(err)
	}
	if err := o.Failed(ctx, &observer.FailedEvent{StopTime: time.Now().UTC(), Trace: []string{"NameError: name 'my_var' is not defined\n"}}); err != nil {
		t.Fatal(err)
	}
	ms := messages(t, srv)
	if len(ms) != 2 || ms[0].ParseMode != "Markdown" || ms[1].ParseMode != "" || ms[0].Text != ms[1].Text {
		t.Errorf("messages: %+v", ms)
	}
}

// TestAPIErrors: the Bot API's error comes back with its description,
// never with the token; a failed start message warns and lets the run go
// on.
func TestAPIErrors(t *testing.T) {
	srv := notifytest.New(t)
	srv.Answer(func(notifytest.Request) (int, string) {
		return 400, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`
	})
	var warn strings.Builder
	o := open(t, writeFile(t, "t.json", `{"token": "`+token+`", "chat_id": 1, "api_url": "`+srv.URL+`"}`), &warn)
	ctx := context.Background()
	if id, err := o.Started(ctx, startEvent(time.Now().UTC())); err != nil || id != "7" {
		t.Fatalf("Started: %q, %v", id, err)
	}
	if want := "sacred: telegram: sending the started message: Bad Request: chat not found (HTTP 400); the run goes on\n"; warn.String() != want {
		t.Errorf("warning %q, want %q", warn.String(), want)
	}
	err := o.Completed(ctx, &observer.CompletedEvent{StopTime: time.Now().UTC()})
	if err == nil || err.Error() != "telegram: sending the completed message: Bad Request: chat not found (HTTP 400)" {
		t.Errorf("Completed: %v", err)
	}
	srv.Close()
	err = o.Completed(ctx, &observer.CompletedEvent{StopTime: time.Now().UTC()})
	if err == nil || strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "AAEsecret") {
		t.Errorf("Completed against a closed server: %v", err)
	}
}

// TestConfig: required keys, the token from the environment, unknown keys
// warned about (Sacred ignores them), mistakes as one line without the
// token.
func TestConfig(t *testing.T) {
	t.Setenv(EnvToken, "")
	for _, c := range []struct{ name, content, want string }{
		{"notoken.json", `{"chat_id": 1}`, "has no token"},
		{"nochat.json", `{"token": "` + token + `"}`, "has no chat_id"},
		{"chat.json", `{"token": "` + token + `", "chat_id": 1.5}`, "chat_id must be a whole number"},
		{"silent.json", `{"token": "` + token + `", "chat_id": 1, "silent_completion": "yes"}`, "silent_completion must be true or false"},
		{"proxy.json", `{"token": "` + token + `", "chat_id": 1, "proxy_url": "ftp://proxy:21"}`, "proxy_url must be PROTOCOL://PROXY_HOST"},
		{"api.json", `{"token": "` + token + `", "chat_id": 1, "api_url": "https://u:p@x"}`, "api_url must be an http(s) URL without credentials"},
		{"placeholder.json", `{"token": "` + token + `", "chat_id": 1, "started_text": "{stop_time}"}`, "started_text: unknown placeholder {stop_time}"},
		{"tokenchars.json", `{"token": "a/b` + token + `", "chat_id": 1}`, "characters a Bot API token never has"},
	} {
		_, err := ParseConfig(writeFile(t, c.name, c.content))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		} else if strings.Contains(err.Error(), "AAEsecret") {
			t.Errorf("%s: the error shows the token: %v", c.name, err)
		}
	}

	t.Setenv(EnvToken, token)
	var warn strings.Builder
	path := writeFile(t, "t.yml", "chat_id: 5\ntoken: not-this-one\nparse_mode: HTML\n")
	o := open(t, path, &warn)
	if o.cfg.Token != token || o.Priority() != 10 || o.Name() != "telegram "+path {
		t.Errorf("config %+v, name %q", o.cfg, o.Name())
	}
	if !strings.Contains(warn.String(), "ignoring unknown key(s) parse_mode") {
		t.Errorf("warning %q", warn.String())
	}
}

// TestHTTPProxy: proxy_url with username and password, as Sacred builds
// them into http://user:pass@host.
func TestHTTPProxy(t *testing.T) {
	proxy := botAPI(t) // answers in the Bot API's place, as a proxy would forward
	path := writeFile(t, "t.json", `{"token": "`+token+`", "chat_id": 1, "api_url": "http://api.telegram.example",
		"proxy_url": "`+proxy.URL+`", "username": "alice", "password": "pr0xy-pass"}`)
	o := open(t, path, nil)
	if _, err := o.Started(context.Background(), startEvent(time.Now().UTC())); err != nil {
		t.Fatal(err)
	}
	reqs := proxy.Requests()
	if len(reqs) != 1 || !reqs[0].Proxied {
		t.Fatalf("the proxy got %+v", reqs)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pr0xy-pass"))
	if got := reqs[0].Header.Get("Proxy-Authorization"); got != want {
		t.Errorf("Proxy-Authorization %q, want %q", got, want)
	}
}

// TestSOCKS5Proxy: a socks5 proxy_url with username and password reaches
// the Bot API through the proxy.
func TestSOCKS5Proxy(t *testing.T) {
	api := botAPI(t)
	socks := startSOCKS5(t, "alice", "s0cks-pass")
	path := writeFile(t, "t.yaml", "token: "+token+"\nchat_id: 1\napi_url: "+api.URL+"\nproxy_url: socks5://"+socks.addr+"\nusername: alice\npassword: s0cks-pass\n")
	o := open(t, path, nil)
	if _, err := o.Started(context.Background(), startEvent(time.Now().UTC())); err != nil {
		t.Fatal(err)
	}
	o.Close(context.Background())
	if n := socks.connects(); n == 0 {
		t.Error("nothing went through the SOCKS5 proxy")
	}
	if len(messages(t, api)) == 0 {
		t.Error("the Bot API got nothing")
	}

	// Wrong credentials: the error says so without the password or token.
	path = writeFile(t, "bad.yaml", "token: "+token+"\nchat_id: 1\napi_url: "+api.URL+"\nproxy_url: socks5://"+socks.addr+"\nusername: alice\npassword: wrong-pass\n")
	o = open(t, path, nil)
	o.vars = map[string]any{}
	err := o.Completed(context.Background(), &observer.CompletedEvent{StopTime: time.Now().UTC()})
	if err == nil || strings.Contains(err.Error(), "wrong-pass") || strings.Contains(err.Error(), "AAEsecret") {
		t.Errorf("wrong proxy password: %v", err)
	}
	o.Close(context.Background())
}

// socks5 is a minimal SOCKS5 proxy with username/password authentication
// (RFC 1928, RFC 1929), CONNECT only.
type socks5 struct {
	addr       string
	user, pass string
	mu         sync.Mutex
	n          int
}

func (s *socks5) connects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func startSOCKS5(t *testing.T, user, pass string) *socks5 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &socks5{addr: ln.Addr().String(), user: user, pass: pass}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(c)
			}()
		}
	}()
	return s
}

func (s *socks5) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 262)
	// Greeting: VER NMETHODS METHODS; we pick username/password (2).
	if _, err := io.ReadFull(c, buf[:2]); err != nil || buf[0] != 5 {
		return
	}
	if _, err := io.ReadFull(c, buf[:buf[1]]); err != nil {
		return
	}
	c.Write([]byte{5, 2})
	// RFC 1929: VER ULEN UNAME PLEN PASSWD.
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return
	}
	u := make([]byte, buf[1])
	io.ReadFull(c, u)
	io.ReadFull(c, buf[:1])
	p := make([]byte, buf[0])
	io.ReadFull(c, p)
	if string(u) != s.user || string(p) != s.pass {
		c.Write([]byte{1, 1})
		return
	}
	c.Write([]byte{1, 0})
	// Request: VER CMD RSV ATYP DST.ADDR DST.PORT.
	if _, err := io.ReadFull(c, buf[:4]); err != nil || buf[1] != 1 {
		return
	}
	var host string
	switch buf[3] {
	case 1:
		io.ReadFull(c, buf[:4])
		host = net.IP(buf[:4]).String()
	case 3:
		io.ReadFull(c, buf[:1])
		h := make([]byte, buf[0])
		io.ReadFull(c, h)
		host = string(h)
	default:
		return
	}
	io.ReadFull(c, buf[:2])
	port := binary.BigEndian.Uint16(buf[:2])
	up, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	defer up.Close()
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	c.SetDeadline(time.Time{})
	done := make(chan struct{})
	go func() { io.Copy(up, c); up.Close(); close(done) }()
	io.Copy(c, up)
	c.Close()
	<-done
}

// TestConformance runs the sink tier on the kind, with the token
// declared secret.
func TestConformance(t *testing.T) {
	srv := botAPI(t)
	k, ok := observer.Lookup(Option)
	if !ok {
		t.Fatal("telegram is not registered")
	}
	path := writeFile(t, "telegram.json", `{"token": "`+token+`", "chat_id": 1, "api_url": "`+srv.URL+`"}`)
	var warn strings.Builder
	var mu sync.Mutex
	observertest.RunSink(t, observertest.Sink{
		Secrets: []string{token, "AAEsecretTokenFromBotFather"},
		New: func(t *testing.T) observer.Observer {
			mu.Lock()
			defer mu.Unlock()
			o, err := k.OpenObserver(context.Background(), path, observer.Settings{Warn: lockedWriter{&mu, &warn}})
			if err != nil {
				t.Fatal(err)
			}
			return o
		},
		Break: srv.Break,
		Stall: srv.Stall,
	})
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(warn.String(), "AAEsecret") {
		t.Errorf("a warning shows the token: %s", warn.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
