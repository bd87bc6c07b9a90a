package layout

import "github.com/sacred-go/sacred/pkg/observer"

// Parts names the JSON files of a run directory that a reader reads
// besides run.json: a listing reads only what its selection needs.
type Parts struct{ Config, Info, Metrics bool }

// AllParts is what reading a whole run takes.
var AllParts = Parts{Config: true, Info: true, Metrics: true}

// PartsFor are the parts a selection that reads the fields needs tells
// (readback.Request.Needs) has to read.
func PartsFor(needs func(field string) bool) Parts {
	return Parts{Config: needs("config"), Info: needs("info"), Metrics: needs("metrics")}
}

// ReadParts fills the Config, Info and Metrics of run from config.json,
// info.json and metrics.json, those p asks for. read returns a file's
// decoded content, nil when the file is missing; its errors are returned
// as they are.
func ReadParts(run *observer.Run, p Parts, read func(name string) (any, error)) error {
	for _, f := range []struct {
		want bool
		name string
		set  func(map[string]any)
	}{
		{p.Config, ConfigFile, func(m map[string]any) { run.Config = m }},
		{p.Info, InfoFile, func(m map[string]any) { run.Info = m }},
		{p.Metrics, MetricsFile, func(m map[string]any) { run.Metrics = ReadMetrics(m) }},
	} {
		if !f.want {
			continue
		}
		v, err := read(f.name)
		if err != nil {
			return err
		}
		f.set(obj(v))
	}
	return nil
}
