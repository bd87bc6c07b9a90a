// Package slack is the Slack notifier (`--slack slack.json`), Python
// Sacred's SlackObserver: when a run ends it posts one message to a Slack
// incoming webhook, with Sacred's config keys, default texts and
// placeholders. It records nothing that can be read back (a sink).
//
// See docs/observers/slack.md.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/internal/notify"
)

// Option is the flag name (--slack) and the key in sacred.yaml.
const Option = "slack"

// DefaultPriority is Sacred's SlackObserver priority.
const DefaultPriority = 10

// EnvWebhookURL is the variable that gives the webhook URL (the secret)
// instead of, or over, the file's webhook_url.
const EnvWebhookURL = "SACRED_SLACK_WEBHOOK_URL"

// Sacred's default texts, byte for byte.
const (
	DefaultCompletedText   = ":white_check_mark: *{experiment[name]}* completed after _{elapsed_time}_ with result=`{result}`"
	DefaultInterruptedText = ":warning: *{experiment[name]}* interrupted after _{elapsed_time}_"
	DefaultFailedText      = ":x: *{experiment[name]}* failed after _{elapsed_time}_ with `{error}`"
)

func init() {
	observer.Register(observer.Kind{
		Option: Option,
		Arg:    "FILE",
		Title:  "Slack",
		Usage:  "post a Slack message when the run ends (FILE: JSON or YAML with webhook_url, as Sacred's SlackObserver)",
		Remote: true,
		Parse:  func(value string) (any, error) { return ParseConfig(value) },
		New: func(ctx context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
			return New(ctx, cfg.(Config), s)
		},
		Env: []string{EnvWebhookURL},
	})
}

// Config is a parsed Slack config file.
type Config struct {
	Path string // the file, as given
	// WebhookURL is the incoming webhook, a secret: it is never shown.
	WebhookURL string
	BotName    string
	Icon       string
	Priority   int
	// Texts are the message templates; Sacred's defaults where the file
	// has none (null and "" included, as in Sacred).
	Texts map[notify.Event]string

	messages *notify.Messages
}

// ParseConfig reads a Slack config file: webhook_url (required unless
// SACRED_SLACK_WEBHOOK_URL is set, which wins), bot_name, icon, priority,
// completed_text, interrupted_text, failed_text. Other keys are refused,
// as Sacred's constructor refuses them.
func ParseConfig(path string) (Config, error) {
	m, err := notify.LoadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("slack: %w", err)
	}
	s := notify.NewSettings(path, m)
	cfg := Config{Path: path, Texts: map[notify.Event]string{}}
	fileURL, _, err := s.String("webhook_url")
	if err != nil {
		return Config{}, fmt.Errorf("slack: %w", err)
	}
	var fromEnv bool
	cfg.WebhookURL, fromEnv = notify.FromEnv(EnvWebhookURL, fileURL)
	where := path + ": webhook_url"
	if fromEnv {
		where = EnvWebhookURL
	}
	if cfg.WebhookURL == "" {
		return Config{}, fmt.Errorf("slack: %s has no webhook_url (and %s is not set): give the URL of the Slack incoming webhook", path, EnvWebhookURL)
	}
	if err := checkURL(cfg.WebhookURL); err != nil {
		return Config{}, fmt.Errorf("slack: %s: %w", where, err)
	}
	if cfg.BotName, err = stringOr(s, "bot_name", "sacred-bot"); err != nil {
		return Config{}, err
	}
	if cfg.Icon, err = stringOr(s, "icon", ":angel:"); err != nil {
		return Config{}, err
	}
	if cfg.Priority, err = s.Int("priority", DefaultPriority); err != nil {
		return Config{}, fmt.Errorf("slack: %w", err)
	}
	defaults := map[notify.Event]string{
		notify.Completed:   DefaultCompletedText,
		notify.Interrupted: DefaultInterruptedText,
		notify.Failed:      DefaultFailedText,
	}
	for ev, def := range defaults {
		// Sacred: `completed_text or default`.
		if cfg.Texts[ev], err = stringOr(s, string(ev)+"_text", def); err != nil {
			return Config{}, err
		}
	}
	if extra := s.Unread(); len(extra) > 0 {
		return Config{}, fmt.Errorf("slack: %s: unknown key(s) %s (known: webhook_url, bot_name, icon, priority, completed_text, interrupted_text, failed_text)", path, strings.Join(extra, ", "))
	}
	if cfg.messages, err = notify.Compile("slack", cfg.Texts); err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return cfg, nil
}

// stringOr returns the text at key, or def when it is absent, null or
// empty.
func stringOr(s *notify.Settings, key, def string) (string, error) {
	v, ok, err := s.String(key)
	if err != nil {
		return "", fmt.Errorf("slack: %w", err)
	}
	if !ok || v == "" {
		return def, nil
	}
	return v, nil
}

// checkURL checks a webhook URL without ever quoting it.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return errors.New("want an http(s) URL such as https://hooks.slack.com/services/T…/B…/…")
	}
	return nil
}

// Observer posts the end of one run to Slack.
type Observer struct {
	observer.Base
	cfg    Config
	client *http.Client
	vars   map[string]any // Sacred's run dict, from Started
}

// New returns a Slack observer for one run. It does not connect: Slack
// offers no check of a webhook that posts nothing.
func New(_ context.Context, cfg Config, _ observer.Settings) (*Observer, error) {
	if cfg.messages == nil {
		m, err := notify.Compile("slack", cfg.Texts)
		if err != nil {
			return nil, err
		}
		cfg.messages = m
	}
	if err := checkURL(cfg.WebhookURL); err != nil {
		return nil, fmt.Errorf("slack: webhook_url: %w", err)
	}
	return &Observer{cfg: cfg, client: notify.NewClient(nil)}, nil
}

// Name is "slack FILE": the webhook URL is a secret.
func (o *Observer) Name() string { return "slack " + o.cfg.Path }

// Close releases the connections kept open for the next message.
func (o *Observer) Close(context.Context) error {
	o.client.CloseIdleConnections()
	return nil
}

// Priority is the file's priority, 10 by default as in Sacred.
func (o *Observer) Priority() int { return o.cfg.Priority }

// Started keeps Sacred's run dict and checks that every placeholder that
// uses it resolves ({config[lr]}), so that a wrong one stops the run now
// rather than losing the message at the end.
func (o *Observer) Started(_ context.Context, ev *observer.StartEvent) (string, error) {
	vars := notify.StartVars(ev)
	if err := o.cfg.messages.Check(vars); err != nil {
		return "", fmt.Errorf("%w (in %s)", err, o.cfg.Path)
	}
	o.vars = vars
	return ev.ID, nil
}

// Completed posts the completed message.
func (o *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	if o.vars == nil {
		return errNoStart
	}
	return o.post(ctx, notify.Completed, notify.CompletedVars(o.vars, ev), nil)
}

// Interrupted posts the interrupted message (also for a timeout).
func (o *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	if o.vars == nil {
		return errNoStart
	}
	return o.post(ctx, notify.Interrupted, notify.InterruptedVars(o.vars, ev), nil)
}

// Failed posts the failed message with, as an attachment, the end of the
// fail trace (bounded) when it says more than the error line.
func (o *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	if o.vars == nil {
		return errNoStart
	}
	vars := notify.FailedVars(o.vars, ev)
	var attach []attachment
	if len(ev.Trace) > 1 {
		attach = []attachment{{Color: "danger", Text: "```" + vars["backtrace"].(string) + "```"}}
	}
	return o.post(ctx, notify.Failed, vars, attach)
}

var errNoStart = errors.New("slack: the run's start was not seen, so there is nothing to report")

type attachment struct {
	Color string `json:"color"`
	Text  string `json:"text"`
}

// post sends Sacred's payload: username, icon_emoji and text.
func (o *Observer) post(ctx context.Context, ev notify.Event, vars map[string]any, attach []attachment) error {
	text, ok, err := o.cfg.messages.Render(ev, vars)
	if err != nil || !ok {
		return err
	}
	payload := struct {
		Username    string       `json:"username"`
		IconEmoji   string       `json:"icon_emoji"`
		Text        string       `json:"text"`
		Attachments []attachment `json:"attachments,omitempty"`
	}{o.cfg.BotName, o.cfg.Icon, text, attach}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(payload); err != nil {
		return fmt.Errorf("slack: encoding the %s message: %w", ev, err)
	}
	header := http.Header{"Content-Type": {"application/json"}, "Accept": {"text/plain"}}
	resp, err := notify.Post(ctx, o.client, o.cfg.WebhookURL, "the Slack webhook of "+o.cfg.Path, body.Bytes(), header, o.cfg.WebhookURL)
	if err != nil {
		return fmt.Errorf("slack: posting the %s message: %w", ev, err)
	}
	if !resp.OK() {
		return notify.Scrub(fmt.Errorf("slack: posting the %s message: HTTP %d %s", ev, resp.Status, resp.Text()), o.cfg.WebhookURL)
	}
	return nil
}
