package query

import (
	"context"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/internal/readback/readbacktest"
	"github.com/sacred-go/sacred/pkg/observer"
)

// finder is a reader that selects through readback.Finder and records the
// request it was given.
type finder struct {
	*readbacktest.Memory
	req *readback.Request
}

func (f *finder) Find(_ context.Context, req *readback.Request) ([]*observer.Run, error) {
	f.req = req
	return f.RunList, nil
}

func TestFindThroughAFinderAndRunByRun(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	mem := &readbacktest.Memory{RunList: []*observer.Run{
		{ID: "1", Status: "COMPLETED", Config: map[string]any{"lr": 0.1}, Result: 0.5, HasResult: true},
		{ID: "2", Status: "COMPLETED", Config: map[string]any{"lr": 0.3}, Result: 0.9, HasResult: true},
		{ID: "3", Status: "FAILED", Config: map[string]any{"lr": 0.2}},
	}}
	q, err := Compile(Options{Where: `config.lr > 0.15 || info.x == 1`, Sort: []string{"-result"}, Columns: []string{"metrics.loss.last", "host.hostname"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &finder{Memory: mem}
	for name, r := range map[string]observer.Reader{"run by run": mem, "finder": f} {
		runs, err := q.Find(context.Background(), r, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 2 || runs[0].ID != "2" || runs[1].ID != "3" {
			t.Errorf("%s: got %v", name, runs)
		}
	}
	want := map[string]bool{"config": true, "info": true, "result": true, "metrics": true, "host": true}
	if len(f.req.Reads) != len(want) {
		t.Errorf("reads %v, want %v", f.req.Reads, want)
	}
	for k := range want {
		if !f.req.Needs(k) {
			t.Errorf("reads %v: no %s", f.req.Reads, k)
		}
	}
	if p := f.req.SQL("sqlite", true); p.Where == "" || p.From == "" {
		t.Errorf("sql plan %+v", p)
	}
	if p := f.req.Mongo(); len(p.Filter) == 0 {
		t.Errorf("mongo plan %+v", p)
	}
}
