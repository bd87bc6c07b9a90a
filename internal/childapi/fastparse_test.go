package childapi

import (
	"encoding/json"
	"reflect"
	"testing"
)

var flatSeeds = []string{
	`{"kind":"metric","name":"loss","value":0.31,"step":7}`,
	`{ "kind" : "metric" , "name" : "loss" , "value" : -1.5e-3 }`,
	`{"kind":"metric","name":"loss","value":1,"time":"2024-05-01T12:00:00Z"}`,
	`{"kind":"info","key":"a.b","value":{"c":1}}`,
	`{"kind":"info","key":"a","value":[1,2]}`,
	`{"kind":"result","value":null}`,
	`{"kind":"result","value":true}`,
	`{"kind":"artifact","path":"m.pt","name":"m.pt","content_type":"x/y","metadata":{"a":1}}`,
	`{"kind":"resource","path":"/a/b"}`,
	`{"kind":"metric","name":"l\u00f6ss","value":1}`,
	`{"kind":"metric","name":"löss","value":1}`,
	`{"Kind":"metric","name":"x","value":1}`,
	`{"kind":"metric","name":"x","value":01}`,
	`{"kind":"metric","name":"x","value":1.}`,
	`{"kind":"metric","name":"x","value":-}`,
	`{"kind":"metric","name":"x","value":1e}`,
	`{"kind":"metric","name":"x","value":nul}`,
	`{"kind":"metric","name":"x","value":NaN}`,
	`{"kind":"metric","name":3,"value":1}`,
	`{"kind":null,"name":"x","value":1}`,
	`{"kind":"metric","kind":"info"}`,
	`{"kind":"metric",}`,
	`{"kind":"metric"} x`,
	`{"kind":"metric"`,
	`{}`,
	`{"unknown":1}`,
	`[]`,
	`"kind"`,
	`{"kind":"a` + "\t" + `b"}`,
}

// parseBoth checks that whenever the fast path takes a line, encoding/json
// reads it the same way.
func parseBoth(t *testing.T, line string) {
	var fast wireMsg
	in := interner{}
	if !parseFlat([]byte(line), &fast, in.get) {
		return
	}
	var slow wireMsg
	if err := json.Unmarshal([]byte(line), &slow); err != nil {
		t.Fatalf("fast path took %q, encoding/json refuses it: %v", line, err)
	}
	// Raw values: compare bytes, nil and empty alike.
	norm := func(m *wireMsg) {
		for _, r := range []*json.RawMessage{&m.Value, &m.Step, &m.Metadata} {
			if len(*r) == 0 {
				*r = nil
			}
		}
	}
	norm(&fast)
	norm(&slow)
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q:\nfast %+v\nslow %+v", line, fast, slow)
	}
}

func TestParseFlatMatchesJSON(t *testing.T) {
	took := 0
	for _, l := range flatSeeds {
		parseBoth(t, l)
		var m wireMsg
		in := interner{}
		if parseFlat([]byte(l), &m, in.get) {
			took++
		}
	}
	if took < 8 {
		t.Errorf("the fast path took only %d of the plain lines", took)
	}
}

func FuzzParseFlat(f *testing.F) {
	for _, l := range flatSeeds {
		f.Add(l)
	}
	f.Fuzz(parseBoth)
}
