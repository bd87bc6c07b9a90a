package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sacred-go/sacred/internal/query"
)

// ping is how often a quiet stream sends a comment, so that proxies and
// the browser keep it open and a closed page is noticed.
const ping = 15 * time.Second

// liveMetricPoints bounds the new points of one metric sent as they are;
// beyond it the page asks for the series again, decimated.
const liveMetricPoints = 2000

// eventStream writes server-sent events.
type eventStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startStream(w http.ResponseWriter) *eventStream {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	return &eventStream{w: w, rc: rc}
}

func (e *eventStream) send(event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(e.w, "event: %s\ndata: %s\n\n", event, b); err != nil {
		return err
	}
	return e.rc.Flush()
}

func (e *eventStream) comment() error {
	if _, err := e.w.Write([]byte(": ping\n\n")); err != nil {
		return err
	}
	return e.rc.Flush()
}

// streamContext ends with the request or with the server.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// apiLiveRun follows one run: ?store=&id=&out=OFFSET&counts={"loss":N}
// say what the page has. Events: "output" (text from an offset), "metric"
// (new points of one metric, or reset when there are too many to send),
// "run" (status, heartbeat, result, info and artifacts when they change),
// and "end" once the run is finished and everything was sent.
func (s *Server) apiLiveRun(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	store, err := s.runRef(v.Get("store"), v.Get("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := v.Get("id")
	out, _ := strconv.Atoi(v.Get("out"))
	counts := map[string]int{}
	if c := v.Get("counts"); c != "" {
		if err := json.Unmarshal([]byte(c), &counts); err != nil {
			apiError(w, http.StatusBadRequest, `counts: give a JSON object of metric point counts, e.g. {"loss":12}`)
			return
		}
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	f, err := s.runs.get(ctx, store, id, s.opts.Poll)
	if err != nil {
		s.runError(w, store, id, err)
		return
	}
	ev := startStream(w)
	q, _ := query.Compile(query.Options{DeadAfter: s.opts.DeadAfter})
	var lastState string
	lastSent := time.Now()
	for {
		sent := false
		run := f.run
		// Output: from the page's offset, in pieces that end on a whole
		// character.
		for out < len(run.Output) {
			to := min(out+outputChunk, len(run.Output))
			for j := to - 1; j >= out && j >= to-utf8.UTFMax; j-- {
				if utf8.RuneStart(run.Output[j]) {
					if !utf8.FullRune(run.Output[j:to]) && !finished(run) {
						to = j
					}
					break
				}
			}
			if to <= out {
				break
			}
			text := strings.ToValidUTF8(string(run.Output[out:to]), "\uFFFD")
			if ev.send("output", map[string]any{"from": out, "to": to, "text": text}) != nil {
				return
			}
			out, sent = to, true
		}
		for _, m := range run.Metrics {
			have := counts[m.Name]
			if len(m.Points) <= have {
				continue
			}
			msg := map[string]any{"name": m.Name, "count": len(m.Points)}
			if len(m.Points)-have > liveMetricPoints || have > len(m.Points) {
				msg["reset"] = true
			} else {
				pts := make([][3]any, 0, len(m.Points)-have)
				for _, p := range m.Points[have:] {
					var t any
					if !p.Time.IsZero() {
						t = float64(p.Time.UnixMilli()) / 1000
					}
					pts = append(pts, [3]any{p.Step, t, plainFloat(p.Value)})
				}
				msg["points"] = pts
			}
			if ev.send("metric", msg) != nil {
				return
			}
			counts[m.Name], sent = len(m.Points), true
		}
		state := map[string]any{
			"status": q.Status(run, s.now()), "heartbeat": timeJSON(run.Heartbeat), "stop_time": timeJSON(run.StopTime),
			"has_result": run.HasResult, "result": plain(run.Result), "info": plain(run.Info),
			"artifacts": run.Artifacts, "finished": finished(run), "fail_trace": run.FailTrace,
		}
		if d, ok, _ := query.Field(run, "duration", s.now()); ok {
			state["duration"] = d
		}
		b, _ := json.Marshal(state)
		if string(b) != lastState {
			lastState = string(b)
			if ev.send("run", json.RawMessage(b)) != nil {
				return
			}
			sent = true
		}
		if finished(run) {
			_ = ev.send("end", map[string]any{})
			return
		}
		if sent {
			lastSent = time.Now()
		} else if time.Since(lastSent) >= ping {
			if ev.comment() != nil {
				return
			}
			lastSent = time.Now()
		}
		// Read again after the poll interval, longer for a run that is
		// slow to read.
		pause := max(s.opts.Poll, 3*f.cost)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		nf, err := s.runs.get(ctx, store, id, s.opts.Poll)
		if err != nil {
			if ctx.Err() == nil {
				_ = ev.send("failure", map[string]string{"error": err.Error()})
			}
			return
		}
		f = nf
	}
}

// apiLiveRuns tells the runs table what changed: one "changed" event per
// scan of a store that found new, changed or removed runs, with their ids
// (or all, when the page is too far behind to tell). ?v= lists the
// versions the page has, one per store.
func (s *Server) apiLiveRuns(w http.ResponseWriter, r *http.Request) {
	have := make([]uint64, len(s.stores))
	for i, p := range splitList(r.URL.Query().Get("v")) {
		if i < len(have) {
			n, _ := strconv.ParseUint(p, 10, 64)
			have[i] = n
		}
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	notify := make(chan struct{}, 1)
	for _, c := range s.stores {
		done := c.subscribe()
		defer done()
		next := c.next()
		go func() {
			for {
				select {
				case <-next:
				case <-ctx.Done():
					return
				}
				// Take the next change's channel before telling, so that
				// no change falls between the two.
				next = c.next()
				select {
				case notify <- struct{}{}:
				default:
				}
			}
		}()
	}
	ev := startStream(w)
	for {
		for i, c := range s.stores {
			ids, now, all := c.since(have[i])
			if now != have[i] {
				if ev.send("changed", map[string]any{"store": i, "version": now, "ids": ids, "all": all}) != nil {
					return
				}
				have[i] = now
			}
		}
		t := time.NewTimer(ping)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-notify:
			t.Stop()
		case <-t.C:
			if ev.comment() != nil {
				return
			}
		}
	}
}
