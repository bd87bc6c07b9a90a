package runread

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestLenient(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	timeOf := func(v any) time.Time {
		if v == "t0" {
			return t0
		}
		return time.Time{}
	}
	ms := Metrics(map[string]any{
		"b": map[string]any{"steps": []any{int64(1), 2.0}, "values": []any{json.Number("0.5")}, "timestamps": []any{"t0"}},
		"a": "not an object",
	}, timeOf)
	if len(ms) != 2 || ms[0].Name != "a" || len(ms[0].Points) != 0 || ms[1].Name != "b" || len(ms[1].Points) != 2 {
		t.Fatalf("Metrics: %+v", ms)
	}
	p := ms[1].Points
	if p[0].Step != 1 || p[0].Value != 0.5 || !p[0].Time.Equal(t0) || p[1].Step != 2 || !math.IsNaN(p[1].Value) || !p[1].Time.IsZero() {
		t.Errorf("points %+v", p)
	}

	h := Host(map[string]any{"hostname": "h", "os": []any{"Linux"}, "cpu_count": json.Number("18446744073709551615"), "ENV": map[string]any{"A": int64(1)}})
	if h.Hostname != "h" || h.OS != [2]string{"Linux", ""} || h.CPUCount != -1 || h.ENV["A"] != "" || h.GPUs != nil {
		t.Errorf("Host: %+v", h)
	}

	m := Meta(map[string]any{"command": "main", "priority": int64(3), "queue_time": "t0", "options": []any{}}, timeOf)
	if m.Command != "main" || m.Priority == nil || *m.Priority != 3 || m.QueueTime == nil || !m.QueueTime.Equal(t0) || m.Options != nil {
		t.Errorf("Meta: %+v", m)
	}
	if m := Meta(nil, timeOf); m.Priority != nil || m.QueueTime != nil {
		t.Errorf("Meta(nil): %+v", m)
	}
}
