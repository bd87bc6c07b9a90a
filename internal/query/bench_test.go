package query

import (
	"strconv"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// BenchmarkSelect10k is the in-process part of `sacred ls` over 10,000
// runs: a where over config and result, a sort, a limit.
func BenchmarkSelect10k(b *testing.B) {
	runs := make([]*observer.Run, 10000)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range runs {
		runs[i] = &observer.Run{ID: strconv.Itoa(i + 1), Status: "COMPLETED",
			Experiment: observer.Experiment{Name: "mnist_" + strconv.Itoa(i%7)},
			Config:     map[string]any{"lr": float64(i%100) / 1000, "opt": []string{"sgd", "adam"}[i%2]},
			Result:     float64(i%997) / 997, HasResult: true,
			StartTime: base.Add(time.Duration(i) * time.Minute), StopTime: base.Add(time.Duration(i+1) * time.Minute)}
	}
	q, err := Compile(Options{Name: "^mnist_[1-3]", Where: `config.lr > 0.01 && config.opt == "sgd" && result >= 0.5`,
		Sort: []string{"-result", "start_time"}, Limit: 20})
	if err != nil {
		b.Fatal(err)
	}
	now := base.Add(365 * 24 * time.Hour)
	b.ResetTimer()
	for b.Loop() {
		if _, err := q.Select(runs, now); err != nil {
			b.Fatal(err)
		}
	}
}
