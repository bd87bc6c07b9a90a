package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// NoDeadline bounds a post whose context has no deadline: a notifier must
// never hold the end of a run for long.
const NoDeadline = 30 * time.Second

// maxAnswer is how much of a response is read.
const maxAnswer = 64 << 10

// NewClient returns an HTTP client for a notifier: through proxy when it is
// set, else through the proxy of the environment (HTTPS_PROXY, ...).
// Timeouts come from each call's context.
func NewClient(proxy *url.URL) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if proxy != nil {
		tr.Proxy = http.ProxyURL(proxy)
	}
	return &http.Client{Transport: tr}
}

// Response is what a server answered.
type Response struct {
	Status int
	Body   []byte // at most 64 KiB
}

// OK reports a 2xx status.
func (r *Response) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Text is the start of the body, one line, for messages.
func (r *Response) Text() string {
	s := strings.Join(strings.Fields(string(r.Body)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Post sends body to target with the given headers. Its errors name the
// destination as shown and never quote target, which may hold a token;
// secrets are scrubbed from them as well.
func Post(ctx context.Context, c *http.Client, target, shown string, body []byte, header http.Header, secrets ...string) (*Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, NoDeadline)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, Scrub(fmt.Errorf("post to %s: bad URL", shown), secrets...)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text quotes the URL
		}
		return nil, Scrub(fmt.Errorf("post to %s: %w", shown, err), secrets...)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, Scrub(fmt.Errorf("post to %s: reading the answer: %w", shown, err), secrets...)
	}
	return &Response{Status: resp.StatusCode, Body: data}, nil
}

// Scrub returns err with every secret (and its URL-escaped forms) replaced
// by "***" in its text; errors.Is and errors.As still see err.
func Scrub(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, f := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			msg = strings.ReplaceAll(msg, f, "***")
		}
	}
	return &scrubbed{msg: msg, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
