// Package telegram is the Telegram notifier (`--telegram telegram.json`),
// Python Sacred's TelegramObserver: a message through the Telegram Bot API
// when a run starts (silently) and when it ends, with Sacred's config keys,
// default texts, placeholders, silent completion and proxy settings. It
// records nothing that can be read back (a sink).
//
// See docs/observers/telegram.md.
package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/internal/notify"
)

// Option is the flag name (--telegram) and the key in sacred.yaml.
const Option = "telegram"

// DefaultPriority is Sacred's TelegramObserver priority.
const DefaultPriority = 10

// EnvToken is the variable that gives the bot token (the secret) instead
// of, or over, the file's token.
const EnvToken = "SACRED_TELEGRAM_TOKEN"

// DefaultAPIURL is the Bot API's base URL; the file's api_url (ours)
// changes it, for a local Bot API server or a test.
const DefaultAPIURL = "https://api.telegram.org"

// Sacred's default texts, byte for byte.
const (
	DefaultStartedText     = "♻ *{experiment[name]}* started at _{start_time}_ on host `{host_info[hostname]}`"
	DefaultCompletedText   = "✅ *{experiment[name]}* completed after _{elapsed_time}_ with result=`{result}`"
	DefaultInterruptedText = "⚠ *{experiment[name]}* interrupted after _{elapsed_time}_"
	DefaultFailedText      = "❌ *{experiment[name]}* failed after _{elapsed_time}_ with `{error}`\n\nBacktrace:\n```{backtrace}```"
)

// startedBound bounds the started message, which holds the start of the
// run's command and is best effort.
const startedBound = 5 * time.Second

// maxText is the Bot API's limit on a message, in characters.
const maxText = 4096

func init() {
	observer.Register(observer.Kind{
		Option: Option,
		Arg:    "FILE",
		Title:  "Telegram",
		Usage:  "send Telegram messages when the run starts and ends (FILE: JSON or YAML with token and chat_id, as Sacred's TelegramObserver)",
		Remote: true,
		Parse:  func(value string) (any, error) { return ParseConfig(value) },
		New: func(ctx context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
			return New(ctx, cfg.(Config), s)
		},
		Env: []string{EnvToken},
	})
}

// known are the keys of Sacred's file, and ours (api_url).
var known = []string{"token", "chat_id", "silent_completion", "priority", "started_text", "completed_text", "interrupted_text", "failed_text", "proxy_url", "username", "password", "api_url"}

// Config is a parsed Telegram config file.
type Config struct {
	Path string // the file, as given
	// Token is the bot's token, a secret: it is never shown.
	Token string
	// ChatID is the chat's id: a number, or a text such as "@channel".
	ChatID any
	// Silent sends the completed message without a notification.
	Silent   bool
	Priority int
	// Texts are the message templates; an event without one sends
	// nothing (null in the file, as in Sacred).
	Texts map[notify.Event]string
	// Proxy, when set, is the proxy (http, https, socks5 or socks5h)
	// with its username and password. Without it the proxy of the
	// environment (HTTPS_PROXY) is used.
	Proxy *url.URL
	// APIURL is the Bot API's base URL.
	APIURL string
	// Unknown are keys of the file that mean nothing here; Sacred
	// ignores them too, New warns about them.
	Unknown []string

	messages *notify.Messages
}

// secrets are the config's values that must not be shown.
func (c Config) secrets() []string {
	s := []string{c.Token}
	if c.Proxy != nil {
		if p, ok := c.Proxy.User.Password(); ok {
			s = append(s, p)
		}
	}
	return s
}

// ParseConfig reads a Telegram config file: token (unless
// SACRED_TELEGRAM_TOKEN is set, which wins) and chat_id are required;
// silent_completion, priority, the four texts, proxy_url with username
// and password, and api_url are optional.
func ParseConfig(path string) (Config, error) {
	m, err := notify.LoadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("telegram: %w", err)
	}
	s := notify.NewSettings(path, m)
	cfg := Config{Path: path, Texts: map[notify.Event]string{}}
	fail := func(err error) (Config, error) { return Config{}, fmt.Errorf("telegram: %w", err) }

	fileToken, _, err := s.String("token")
	if err != nil {
		return fail(err)
	}
	cfg.Token, _ = notify.FromEnv(EnvToken, fileToken)
	if cfg.Token == "" {
		return fail(fmt.Errorf("%s has no token (and %s is not set): give the token @BotFather gave the bot", path, EnvToken))
	}
	if strings.ContainsAny(cfg.Token, "/?#% \t\n") {
		return fail(fmt.Errorf("%s: the token holds characters a Bot API token never has (/, ?, #, %%, spaces)", path))
	}
	chat, ok := s.Raw("chat_id")
	switch c := chat.(type) {
	case int64, string:
		if c == "" {
			ok = false
		}
		cfg.ChatID = c
	case int:
		cfg.ChatID = int64(c)
	case float64:
		if c != float64(int64(c)) {
			return fail(fmt.Errorf("%s: chat_id must be a whole number or a text such as \"@channel\"", path))
		}
		cfg.ChatID = int64(c)
	default:
		if ok && chat != nil {
			return fail(fmt.Errorf("%s: chat_id must be a number or a text such as \"@channel\"", path))
		}
		ok = false
	}
	if !ok {
		return fail(fmt.Errorf("%s has no chat_id: give the id of the chat the bot writes to", path))
	}
	if cfg.Silent, err = s.Bool("silent_completion", false); err != nil {
		return fail(err)
	}
	if cfg.Priority, err = s.Int("priority", DefaultPriority); err != nil {
		return fail(err)
	}
	defaults := map[notify.Event]string{
		notify.Started:     DefaultStartedText,
		notify.Completed:   DefaultCompletedText,
		notify.Interrupted: DefaultInterruptedText,
		notify.Failed:      DefaultFailedText,
	}
	for ev, def := range defaults {
		key := string(ev) + "_text"
		text, present, err := s.String(key)
		switch {
		case err != nil:
			return fail(err)
		case !s.Has(key):
			cfg.Texts[ev] = def
		case present && text != "":
			cfg.Texts[ev] = text
			// null (Sacred: no message) and "" (Telegram refuses an
			// empty message) send nothing.
		}
	}
	if cfg.Proxy, err = proxyURL(s); err != nil {
		return fail(err)
	}
	api, _, err := s.String("api_url")
	if err != nil {
		return fail(err)
	}
	if api == "" {
		api = DefaultAPIURL
	}
	if u, err := url.Parse(api); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return fail(fmt.Errorf("%s: api_url must be an http(s) URL without credentials, such as %s", path, DefaultAPIURL))
	}
	cfg.APIURL = strings.TrimRight(api, "/")
	cfg.Unknown = s.Unread()
	if cfg.messages, err = notify.Compile("telegram", cfg.Texts); err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return cfg, nil
}

// proxyURL reads proxy_url, username and password as Sacred does: socks5
// or http(s) proxies, the credentials from their own keys (or the URL).
func proxyURL(s *notify.Settings) (*url.URL, error) {
	raw, ok, err := s.String("proxy_url")
	if err != nil {
		return nil, err
	}
	user, hasUser, err := s.String("username")
	if err != nil {
		return nil, err
	}
	pass, hasPass, err := s.String("password")
	if err != nil {
		return nil, err
	}
	if !ok || raw == "" {
		return nil, nil
	}
	const want = "proxy_url must be PROTOCOL://PROXY_HOST[:PROXY_PORT] with PROTOCOL http, https, socks5 or socks5h"
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%s: %s", s.Path, want)
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("%s: %s, not %q", s.Path, want, u.Scheme)
	}
	if hasUser || hasPass {
		if !hasUser && u.User != nil {
			user = u.User.Username()
		}
		u.User = url.UserPassword(user, pass)
		if !hasPass {
			u.User = url.User(user)
		}
	}
	return u, nil
}

// Observer sends the messages of one run.
type Observer struct {
	observer.Base
	cfg    Config
	client *http.Client
	vars   map[string]any // Sacred's run dict, from Started
	warn   io.Writer
}

// New returns a Telegram observer for one run. It warns (once per run)
// about keys of the file it does not know.
func New(_ context.Context, cfg Config, s observer.Settings) (*Observer, error) {
	if cfg.messages == nil {
		m, err := notify.Compile("telegram", cfg.Texts)
		if err != nil {
			return nil, err
		}
		cfg.messages = m
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if len(cfg.Unknown) > 0 {
		fmt.Fprintf(s.Warner(), "sacred: telegram: %s: ignoring unknown key(s) %s (known: %s)\n", cfg.Path, strings.Join(cfg.Unknown, ", "), strings.Join(known, ", "))
	}
	return &Observer{cfg: cfg, client: notify.NewClient(cfg.Proxy), warn: s.Warner()}, nil
}

// Name is "telegram FILE": the token is a secret.
func (o *Observer) Name() string { return "telegram " + o.cfg.Path }

// Close releases the connections kept open for the next message.
func (o *Observer) Close(context.Context) error {
	o.client.CloseIdleConnections()
	return nil
}

// Priority is the file's priority, 10 by default as in Sacred.
func (o *Observer) Priority() int { return o.cfg.Priority }

// Started keeps Sacred's run dict, checks that every placeholder that uses
// it resolves (a wrong one stops the run now rather than losing the
// message at the end), and sends the started message without a
// notification. That message is best effort, as in Sacred: when it cannot
// be sent, a warning says why and the run goes on, since an error here
// would stop the run before its command starts.
func (o *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	vars := notify.StartVars(ev)
	if err := o.cfg.messages.Check(vars); err != nil {
		return "", fmt.Errorf("%w (in %s)", err, o.cfg.Path)
	}
	o.vars = vars
	ctx, cancel := context.WithTimeout(ctx, startedBound)
	defer cancel()
	if err := o.send(ctx, notify.Started, vars, true); err != nil {
		fmt.Fprintf(o.warn, "sacred: %v; the run goes on\n", err)
	}
	return ev.ID, nil
}

// Completed sends the completed message, silently with
// silent_completion.
func (o *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	if o.vars == nil {
		return errNoStart
	}
	return o.send(ctx, notify.Completed, notify.CompletedVars(o.vars, ev), o.cfg.Silent)
}

// Interrupted sends the interrupted message (also for a timeout).
func (o *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	if o.vars == nil {
		return errNoStart
	}
	return o.send(ctx, notify.Interrupted, notify.InterruptedVars(o.vars, ev), false)
}

// Failed sends the failed message with the end of the trace (bounded).
func (o *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	if o.vars == nil {
		return errNoStart
	}
	return o.send(ctx, notify.Failed, notify.FailedVars(o.vars, ev), false)
}

var errNoStart = errors.New("telegram: the run's start was not seen, so there is nothing to report")

// apiAnswer is the Bot API's answer.
type apiAnswer struct {
	OK          bool   `json:"ok"`
	ErrorCode   int    `json:"error_code"`
	Description string `json:"description"`
}

// send calls sendMessage with parse_mode Markdown, as Sacred does. When
// the Bot API cannot parse the Markdown (an error text with a stray _ or
// *), the message is sent again as plain text rather than lost.
func (o *Observer) send(ctx context.Context, ev notify.Event, vars map[string]any, silent bool) error {
	text, ok, err := o.cfg.messages.Render(ev, vars)
	if err != nil || !ok {
		return err
	}
	if utf8.RuneCountInString(text) > maxText {
		text = string([]rune(text)[:maxText-1]) + "…"
	}
	err = o.sendMessage(ctx, text, "Markdown", silent)
	var apiErr *apiError
	if errors.As(err, &apiErr) && apiErr.code == http.StatusBadRequest && strings.Contains(apiErr.desc, "can't parse entities") {
		err = o.sendMessage(ctx, text, "", silent)
	}
	if err != nil {
		return fmt.Errorf("telegram: sending the %s message: %w", ev, err)
	}
	return nil
}

type apiError struct {
	code int
	desc string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.desc, e.code) }

func (o *Observer) sendMessage(ctx context.Context, text, parseMode string, silent bool) error {
	req := map[string]any{
		"chat_id":              o.cfg.ChatID,
		"text":                 text,
		"disable_notification": silent,
	}
	if parseMode != "" {
		req["parse_mode"] = parseMode
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(req); err != nil {
		return err
	}
	target := o.cfg.APIURL + "/bot" + o.cfg.Token + "/sendMessage"
	shown := "the Telegram Bot API at " + o.cfg.APIURL
	resp, err := notify.Post(ctx, o.client, target, shown, body.Bytes(), http.Header{"Content-Type": {"application/json"}}, o.cfg.secrets()...)
	if err != nil {
		return err
	}
	var ans apiAnswer
	if json.Unmarshal(resp.Body, &ans) != nil {
		if resp.OK() {
			return notify.Scrub(fmt.Errorf("%s answered HTTP %d with something that is not the Bot API's JSON: %s", shown, resp.Status, resp.Text()), o.cfg.secrets()...)
		}
		return notify.Scrub(fmt.Errorf("%s answered HTTP %d: %s", shown, resp.Status, resp.Text()), o.cfg.secrets()...)
	}
	if !ans.OK || !resp.OK() {
		desc := ans.Description
		if desc == "" {
			desc = resp.Text()
		}
		return notify.Scrub(&apiError{code: resp.Status, desc: desc}, o.cfg.secrets()...)
	}
	return nil
}
