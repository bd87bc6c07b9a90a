package comparecmd

import (
	"context"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/readback/readbacktest"
	"github.com/sacred-go/sacred/pkg/observer"
)

func TestCompare(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	m := &readbacktest.Memory{RunList: []*observer.Run{
		{ID: "1", Status: "COMPLETED", Experiment: observer.Experiment{Name: "a"}, StartTime: start, StopTime: start.Add(2 * time.Second),
			Config: map[string]any{"epochs": int64(3), "opt": map[string]any{"lr": 0.1, "name": "sgd"}}, Result: 0.5, HasResult: true,
			Metrics: []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{{Value: 3}, {Value: 1}, {Value: 2}}}}},
		{ID: "2", Status: "FAILED", Experiment: observer.Experiment{Name: "a"}, StartTime: start,
			Config: map[string]any{"epochs": 3.0, "opt": map[string]any{"lr": 0.2, "name": "sgd"}, "extra": true}},
	}}
	ios, _, out, _ := cmdutil.Test()
	o := &CompareOptions{IO: ios, Runs: []string{"1", "-1"}, Stores: []storeflags.Store{{Label: "mem", Reader: m}}}
	if err := Compare(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	want := "field\t1\t2\n" +
		"name\ta\ta\n" +
		"status\tCOMPLETED\tFAILED\n" +
		"duration\t2\t\n" +
		"result\t0.5\t\n" +
		"config.extra\t\ttrue\n" +
		"config.opt.lr\t0.1\t0.2\n" +
		"metrics.loss.last\t2\t\n" +
		"metrics.loss.min\t1\t\n" +
		"metrics.loss.max\t3\t\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	out.Reset()
	o.JSON, o.All = true, true
	if err := Compare(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"runs":[{"id":"1","store":"mem","name":"a","status":"COMPLETED","duration":2.0,"result":0.5},` +
		`{"id":"2","store":"mem","name":"a","status":"FAILED","duration":null,"result":null}],` +
		`"config":{"epochs":[3,3.0],"extra":[null,true],"opt.lr":[0.1,0.2],"opt.name":["sgd","sgd"]},` +
		`"metrics":{"loss":{"last":[2.0,null],"max":[3.0,null],"min":[1.0,null]}}}` + "\n"
	if out.String() != wantJSON {
		t.Errorf("json\n%s\nwant\n%s", out, wantJSON)
	}
}
