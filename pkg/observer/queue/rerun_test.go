package queue

import (
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// The journal keeps meta.rerun_of, so that a journaled rerun names its
// original in the store too.
func TestJournalKeepsRerunOf(t *testing.T) {
	for _, ref := range []*observer.RunRef{nil, {Kind: "file_storage", Store: "runs", ID: "3"}} {
		ev := observertest.StartEvent()
		ev.Meta.RerunOf = ref
		payload, err := encodeDoc(recStarted, encodeStart(ev, make([]uint64, len(ev.Experiment.Sources))))
		if err != nil {
			t.Fatal(err)
		}
		d, err := decodeDoc(payload)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeStart(d)
		if err != nil {
			t.Fatal(err)
		}
		if (got.ev.Meta.RerunOf == nil) != (ref == nil) || ref != nil && *got.ev.Meta.RerunOf != *ref {
			t.Errorf("rerun_of %+v came back as %+v", ref, got.ev.Meta.RerunOf)
		}
	}
}
