// Package webhook is the webhook observer (`--webhook URL`): it POSTs each
// event of a run to a URL as one JSON document of the sacred.event/v1
// schema (package eventjson), signed with HMAC-SHA256 when a secret is
// set, so that a run can be recorded by a receiver written in any
// language. It records nothing that can be read back (a sink).
//
// See docs/observers/webhook.md.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/eventjson"
	"github.com/sacred-go/sacred/pkg/observer/internal/notify"
)

// Option is the flag name (--webhook) and the key in sacred.yaml.
const Option = "webhook"

// EnvSecret is the variable holding the secret that signs every document.
const EnvSecret = "SACRED_WEBHOOK_SECRET"

// FlagTimeout is the kind's flag: the bound of one POST.
const FlagTimeout = "webhook-timeout"

// DefaultTimeout bounds one POST when --webhook-timeout is not given.
const DefaultTimeout = 10 * time.Second

// Headers of every POST.
const (
	// SignatureHeader is "sha256=" and the hex HMAC-SHA256 of the body
	// keyed with the secret; absent without a secret.
	SignatureHeader = "X-Sacred-Signature"
	// EventHeader is the document's event, e.g. "started".
	EventHeader = "X-Sacred-Event"
	// DeliveryHeader identifies the document: the same for the attempts
	// of one call, so that a receiver can drop a repeat.
	DeliveryHeader = "X-Sacred-Delivery"
)

// attempts bounds the POSTs of one call: a connection error, 408, 429 or
// 5xx answer is tried again after a short pause while the call's deadline
// leaves time. Longer outages are the retry decorator's business.
const attempts = 3

// firstPause is the pause before the second attempt; it doubles.
const firstPause = 250 * time.Millisecond

func init() {
	observer.Register(observer.Kind{
		Option: Option,
		Arg:    "URL",
		Title:  "webhook",
		Usage:  "POST every event to URL as JSON (schema sacred.event/v1), signed when " + EnvSecret + " is set",
		Remote: true,
		Parse:  func(value string) (any, error) { return ParseConfig(value) },
		Redact: Redact,
		New: func(ctx context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
			return New(ctx, cfg.(Config), s)
		},
		Flags: []observer.Flag{{
			Name:    FlagTimeout,
			Arg:     "DURATION",
			Usage:   "bound of one POST of the webhook observer",
			Default: DefaultTimeout.String(),
		}},
		Env: []string{EnvSecret},
	})
}

// Config is a parsed --webhook value.
type Config struct {
	// URL is where documents go; its credentials and query values may be
	// secrets and are never shown.
	URL string
}

// ParseConfig checks a webhook URL: http or https with a host. Its errors
// never quote the URL.
func ParseConfig(value string) (Config, error) {
	u, err := url.Parse(value)
	if err != nil {
		return Config{}, errors.New("webhook: not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return Config{}, fmt.Errorf("webhook: %s: want an http(s) URL such as https://example.org/sacred", Redact(value))
	}
	return Config{URL: value}, nil
}

// Redact returns the URL with its user information and every query value
// replaced by "***" (keeping a user name that comes with a password).
func Redact(value string) string {
	u, err := url.Parse(value)
	if err != nil {
		return "***"
	}
	userinfo := ""
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			userinfo = url.User(u.User.Username()).String() + ":***@"
		} else {
			userinfo = "***@"
		}
		u.User = nil
	}
	if u.RawQuery != "" {
		q := u.Query()
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			for range q[k] {
				parts = append(parts, url.QueryEscape(k)+"=***")
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	// url escapes '*' in user information, so it is put back by hand.
	return strings.Replace(u.String(), "://", "://"+userinfo, 1)
}

// secrets are the parts of the URL that must not be shown.
func secrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return []string{raw}
	}
	var s []string
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			s = append(s, p)
		} else {
			s = append(s, u.User.Username())
		}
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			if len(v) >= 3 {
				s = append(s, v)
			}
		}
	}
	return s
}

// Observer posts the events of one run.
type Observer struct {
	observer.Base
	url      string
	shown    string
	secrets  []string
	key      []byte // HMAC key, nil for none
	timeout  time.Duration
	client   *http.Client
	delivery string // random prefix of DeliveryHeader
	seq      int64
	id       string
	now      func() time.Time
}

// New returns a webhook observer for one run, with the secret of
// SACRED_WEBHOOK_SECRET and the timeout of --webhook-timeout. It does not
// connect: a webhook has nothing to ask before the first event.
func New(_ context.Context, cfg Config, s observer.Settings) (*Observer, error) {
	timeout := DefaultTimeout
	if v := s.Flag(FlagTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("webhook: --%s %q: want a positive duration such as 10s", FlagTimeout, v)
		}
		timeout = d
	}
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	o := &Observer{
		url: cfg.URL, shown: Redact(cfg.URL), secrets: secrets(cfg.URL),
		timeout: timeout, client: notify.NewClient(nil),
		delivery: hex.EncodeToString(nonce[:]), now: func() time.Time { return time.Now().UTC() },
	}
	if k := os.Getenv(EnvSecret); k != "" {
		o.key = []byte(k)
		o.secrets = append(o.secrets, k)
	}
	return o, nil
}

// Name is "webhook URL" with the URL's secrets redacted.
func (o *Observer) Name() string { return "webhook " + o.shown }

// Queued posts the queued event.
func (o *Observer) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	o.id = ev.ID
	o.seq++
	return ev.ID, o.post(ctx, eventjson.Start(eventjson.Queued, o.seq, ev))
}

// Started posts the started event. The webhook takes the id it is given.
func (o *Observer) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	o.id = ev.ID
	o.seq++
	return ev.ID, o.post(ctx, eventjson.Start(eventjson.Started, o.seq, ev))
}

// LogMetrics posts the new metric points.
func (o *Observer) LogMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	o.seq++
	return o.post(ctx, eventjson.Metrics(o.seq, o.id, ev, o.now()))
}

// Heartbeat posts the beat with the output new since the last one.
func (o *Observer) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	text, err := io.ReadAll(ev.NewOutput())
	if err != nil {
		return fmt.Errorf("webhook: reading the run's output: %w", err)
	}
	o.seq++
	return o.post(ctx, eventjson.Beat(o.seq, o.id, ev, text))
}

// Resource posts a resource.
func (o *Observer) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	o.seq++
	return o.post(ctx, eventjson.ResourceDoc(o.seq, o.id, ev, o.now()))
}

// Artifact posts an artifact's name and path (not its content).
func (o *Observer) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	o.seq++
	return o.post(ctx, eventjson.ArtifactDoc(o.seq, o.id, ev, o.now()))
}

// Completed posts the completed event.
func (o *Observer) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	o.seq++
	return o.post(ctx, eventjson.CompletedDoc(o.seq, o.id, ev))
}

// Interrupted posts the interrupted (or timeout) event.
func (o *Observer) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	o.seq++
	return o.post(ctx, eventjson.InterruptedDoc(o.seq, o.id, ev))
}

// Failed posts the failed event.
func (o *Observer) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	o.seq++
	return o.post(ctx, eventjson.FailedDoc(o.seq, o.id, ev))
}

// Close releases idle connections.
func (o *Observer) Close(context.Context) error {
	o.client.CloseIdleConnections()
	return nil
}

// post sends one document, trying again after a connection error or a
// 408, 429 or 5xx answer while attempts and the context's deadline allow.
func (o *Observer) post(ctx context.Context, doc *eventjson.Document) error {
	body, err := eventjson.Encode(doc)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	header := http.Header{
		"Content-Type": {"application/json"},
		"User-Agent":   {"sacred-webhook/1"},
		EventHeader:    {doc.Event},
		DeliveryHeader: {o.delivery + "-" + strconv.FormatInt(doc.Seq, 10)},
	}
	if o.key != nil {
		mac := hmac.New(sha256.New, o.key)
		mac.Write(body)
		header.Set(SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	pause := firstPause
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, o.timeout)
		resp, err := notify.Post(actx, o.client, o.url, o.shown, body, header, o.secrets...)
		cancel()
		retry := err != nil
		if err == nil {
			if resp.OK() {
				return nil
			}
			err = notify.Scrub(fmt.Errorf("%s answered HTTP %d %s", o.shown, resp.Status, resp.Text()), o.secrets...)
			retry = resp.Status >= 500 || resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusRequestTimeout
		}
		if !retry || attempt == attempts || ctx.Err() != nil || !timeLeft(ctx, pause) {
			return fmt.Errorf("webhook: posting the %s event: %w", doc.Event, err)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("webhook: posting the %s event: %w", doc.Event, err)
		}
		pause *= 2
	}
}

// timeLeft reports whether ctx leaves more than a pause before its
// deadline (always true without one).
func timeLeft(ctx context.Context, pause time.Duration) bool {
	d, ok := ctx.Deadline()
	return !ok || time.Until(d) > pause
}
