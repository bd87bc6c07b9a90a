package tinydb

import (
	"strconv"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// Sacred's TinyDbObserver drops metrics. We keep them in the run's
// document under "metrics", which Sacred's reader passes through:
//
//	"metrics": {"loss": {"steps": [0, 1], "timestamps": ["{TinyDate}:...", ...], "values": [0.5, 0.25]}}
//
// the shape of the file store's metrics.json, with timestamps tagged so
// that Python's reader turns them into datetimes. Each series keeps its
// arrays encoded; a beat appends the new points' text and the field is
// assembled from those bytes, never re-encoded.

// metrics holds the series of one run, in the order names first appeared.
type metrics struct {
	series []*series
	byName map[string]*series
}

type series struct {
	name string
	// The encoded elements of each array, separated by ", ".
	steps, stamps, values []byte
	n                     int
}

func (m *metrics) add(ms []observer.MetricSeries) {
	for _, s := range ms {
		if len(s.Points) == 0 {
			continue
		}
		if m.byName == nil {
			m.byName = map[string]*series{}
		}
		se := m.byName[s.Name]
		if se == nil {
			se = &series{name: s.Name}
			m.byName[s.Name] = se
			m.series = append(m.series, se)
		}
		for _, p := range s.Points {
			if se.n > 0 {
				se.steps = append(se.steps, ", "...)
				se.stamps = append(se.stamps, ", "...)
				se.values = append(se.values, ", "...)
			}
			se.steps = strconv.AppendInt(se.steps, p.Step, 10)
			se.stamps = appendDate(se.stamps, p.Time)
			se.values = sacredjson.AppendFloat(se.values, p.Value)
			se.n++
		}
	}
}

// encode appends the "metrics" field's value.
func (m *metrics) encode(dst []byte) []byte {
	dst = append(dst, '{')
	for i, s := range m.series {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = sacredjson.AppendString(dst, s.name)
		dst = append(dst, `: {"steps": [`...)
		dst = append(dst, s.steps...)
		dst = append(dst, `], "timestamps": [`...)
		dst = append(dst, s.stamps...)
		dst = append(dst, `], "values": [`...)
		dst = append(dst, s.values...)
		dst = append(dst, "]}"...)
	}
	return append(dst, '}')
}
