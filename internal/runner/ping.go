package runner

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// --ping speaks the pinging protocol of healthchecks.io, as runitor does:
// URL/start when the command starts; when it ends URL on success, else
// URL/<exit status> (URL/fail when there is none in 1..255, e.g. a run
// interrupted whose command still exited 0), with the tail of the output
// as the body. All pings of a run carry the same rid, so the service pairs
// the start with the end even when runs overlap.
const (
	// pingBodyMax bounds the body of the end ping: runitor's default;
	// healthchecks.io keeps the first 100 kB of a body.
	pingBodyMax = 10000
	pingTries   = 5
	// pingTryTimeout bounds one request; pingBackoff is the first pause
	// between tries, doubled after each.
	pingTryTimeout = 10 * time.Second
	pingBackoff    = 500 * time.Millisecond
)

// ParsePingURL checks a --ping URL: http or https with a host. Its errors
// never quote the URL, whose path is the check's secret (the flag's
// messages show it redacted).
func ParsePingURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL; want e.g. https://hc-ping.com/YOUR-CHECK-UUID")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("want an http(s) URL such as https://hc-ping.com/YOUR-CHECK-UUID")
	}
	return u, nil
}

// RedactPingURL shows a --ping URL without its secrets: its scheme and
// host only (the path holds the check's UUID or ping key).
func RedactPingURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "***"
	}
	return u.Scheme + "://" + u.Host + "/***"
}

// pinger sends a run's pings. The start ping goes in the background; the
// end ping follows it and is bounded by the end of the observers' flush,
// so the wrapper never waits longer for the pings.
type pinger struct {
	base   *url.URL
	host   string // for messages
	rid    string
	client *http.Client
	say    func(format string, args ...any)

	cancelStart context.CancelFunc
	startDone   <-chan struct{}
	failed      atomic.Bool // the end ping was not delivered
}

func newPinger(raw string, say func(string, ...any)) (*pinger, error) {
	u, err := ParsePingURL(raw)
	if err != nil {
		return nil, err
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return &pinger{base: u, host: u.Host, rid: newRID(), client: &http.Client{}, say: say}, nil
}

// newRID returns a random UUID (version 4), healthchecks.io's run id.
func newRID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// start sends URL/start in the background.
func (p *pinger) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancelStart = cancel
	p.startDone = goDo(func() {
		if err := p.send(ctx, "start", nil); err != nil && ctx.Err() == nil {
			p.say("--ping: the start ping to %s was not delivered: %v", p.host, err)
		}
	})
}

// end sends the end ping of a run with this status and exit status, and
// gives up at deadline. wait waits for it, at most until the deadline.
func (p *pinger) end(deadline time.Time, status string, code int, body []byte, flushTimeout time.Duration) (wait func()) {
	done := goDo(func() {
		if p.startDone != nil {
			// The start ping may still be on its way: it gets the first
			// half of the time, so that the service sees the start
			// before the end, and is then given up.
			waitAtMost(time.Until(deadline)/2, p.startDone)
			p.cancelStart()
			<-p.startDone
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		err := p.send(ctx, endPath(status, code), body)
		if err == nil {
			return
		}
		p.failed.Store(true)
		if ctx.Err() != nil {
			p.say("--ping: the end ping to %s was not delivered within --flush-timeout %s: %v", p.host, flushTimeout, err)
			return
		}
		p.say("--ping: the end ping to %s was not delivered: %v", p.host, err)
	})
	return func() { waitAtMost(time.Until(deadline)+callGrace, done) }
}

// endPath is the path after the check's URL that reports the run's end.
func endPath(status string, code int) string {
	switch {
	case code == 0 && status == observer.StatusCompleted:
		return ""
	case code >= 1 && code <= 255:
		return strconv.Itoa(code)
	}
	return "fail"
}

// send POSTs one ping, trying again with backoff after a network error, a
// 5xx or a 429, at most pingTries times and never past ctx.
func (p *pinger) send(ctx context.Context, suffix string, body []byte) error {
	u := *p.base
	if suffix != "" {
		u.Path += "/" + suffix
	}
	q := u.Query()
	q.Set("rid", p.rid)
	u.RawQuery = q.Encode()

	var last error
	pause := pingBackoff
	for try := 0; try < pingTries; try++ {
		if try > 0 {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return last
			case <-t.C:
			}
			pause *= 2
		}
		again, err := p.post(ctx, u.String(), body)
		if err == nil {
			return nil
		}
		last = err
		if !again || ctx.Err() != nil {
			return last
		}
	}
	return last
}

// post makes one request; again says whether trying again may help. Its
// errors never hold the URL.
func (p *pinger) post(ctx context.Context, u string, body []byte) (again bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, pingTryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("cannot make the request")
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("User-Agent", "sacred")
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, p.scrub(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("answered HTTP %s", resp.Status)
	}
	return false, fmt.Errorf("answered HTTP %s (check the URL)", resp.Status)
}

// scrub takes the URL's secret parts out of a message.
func (p *pinger) scrub(err error) error {
	msg := err.Error()
	secrets := []string{p.base.Path, p.base.RawQuery}
	if p.base.User != nil {
		secrets = append(secrets, p.base.User.String())
	}
	for _, s := range secrets {
		if len(s) > 1 {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return errors.New(msg)
}

// outputTail is the end ping's body: the last pingBodyMax bytes of the
// output, from the start of a line when one begins in their first half.
func outputTail(out observer.Output) []byte {
	if out == nil {
		return nil
	}
	size := out.Size()
	from := max(size-pingBodyMax, 0)
	buf := make([]byte, size-from)
	n, _ := out.ReadAt(buf, from)
	buf = buf[:n]
	if from > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 && i < len(buf)/2 {
			buf = buf[i+1:]
		}
	}
	return buf
}
