package tinydb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

var _ observer.Resumer = (*Observer)(nil)

// Resume takes up run ev.ID of the store (observer.Resumer): its document
// is read back field by field as encoded, so that what the next calls do
// not change is written again byte for byte; the resources, artifacts and
// metric series go on from their stored elements; and the full-output
// file, when the run has one, is opened for the next beats to write their
// ranges at their offsets (its size is the output stored so far; without
// it the output is captured_out, rebuilt from the beat's output).
//
// A document with a field this store does not write (not one of Sacred's
// or ours) is not taken up: saving it would lose that field.
func (o *Observer) Resume(ctx context.Context, ev *observer.StartEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.key != "" {
		return fmt.Errorf("tinydb: run %s was already started", o.id)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tinydb: %w", err)
	}
	display := filepath.Join(o.cfg.Dir, MetadataFile)
	data, err := os.ReadFile(o.st.path())
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("tinydb: no run %q in %s: %w", ev.ID, display, observer.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("tinydb: %w", err)
	}
	ix, err := scanIndex(data)
	if err != nil {
		return fmt.Errorf("tinydb: %w", &CorruptError{Path: display, Err: err})
	}
	var de *docEntry
	if ix.runs != nil {
		for i := range ix.runs.docs {
			if d := &ix.runs.docs[i]; d.hasRunID && d.runID == ev.ID {
				de = d
				break
			}
		}
	}
	if de == nil {
		return fmt.Errorf("tinydb: no run %q in %s: %w", ev.ID, display, observer.ErrNotFound)
	}
	d, err := splitDoc(data[de.start:de.end])
	if err != nil {
		return fmt.Errorf("tinydb: run %s in %s: %w", ev.ID, display, err)
	}
	var lists [2][][]byte
	for i, f := range []int{fResources, fArtifacts} {
		if d[f] == nil {
			continue
		}
		if lists[i], err = rawElements(d[f]); err != nil {
			return fmt.Errorf("tinydb: run %s: %s: %w", ev.ID, fieldNames[f], err)
		}
	}
	var m metrics
	if d[fMetrics] != nil {
		if m, err = readMetricsField(d[fMetrics]); err != nil {
			return fmt.Errorf("tinydb: run %s: metrics: %w", ev.ID, err)
		}
	}
	var outFile *os.File
	var outRel string
	if d[fCapturedOutFile] != nil {
		v, err := sacredjson.Unmarshal(d[fCapturedOutFile])
		rel, _ := v.(string)
		local := filepath.FromSlash(rel)
		if err != nil || rel == "" || !filepath.IsLocal(local) {
			return fmt.Errorf("tinydb: run %s: captured_out_file %s is not a file of the store", ev.ID, d[fCapturedOutFile])
		}
		if outFile, err = os.OpenFile(filepath.Join(o.st.dir, local), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
			return fmt.Errorf("tinydb: run %s: %w", ev.ID, err)
		}
		outRel = rel
	}
	o.d, o.key, o.id = d, de.key, ev.ID
	o.resources, o.artifacts, o.m = lists[0], lists[1], m
	o.outFile, o.outRel = outFile, outRel
	return nil
}

// splitDoc reads a document into its fields, each as its encoded bytes.
func splitDoc(b []byte) (doc, error) {
	var d doc
	s := &scanner{b: b}
	s.ws()
	if s.peek() != '{' {
		return d, s.fail("the document is not a JSON object")
	}
	s.pos++
	err := s.members(func(key []byte, raw bool) error {
		name := keyString(key, raw)
		f := -1
		for i, n := range fieldNames {
			if n == name {
				f = i
				break
			}
		}
		if f < 0 {
			return fmt.Errorf("it has a field %q that sacred does not write; it is not taken up, so that nothing of it is lost", name)
		}
		start := s.pos
		if err := s.skipValue(3); err != nil {
			return err
		}
		d[f] = bytes.Clone(b[start:s.pos]) // fields are rewritten in place
		return nil
	})
	return d, err
}

// rawElements splits an encoded JSON list into its encoded elements.
func rawElements(b []byte) ([][]byte, error) {
	s := &scanner{b: b}
	s.ws()
	if s.peek() != '[' {
		return nil, s.fail("expected a list")
	}
	s.pos++
	s.ws()
	var out [][]byte
	if s.peek() == ']' {
		return out, nil
	}
	for {
		s.ws()
		start := s.pos
		if err := s.skipValue(4); err != nil {
			return nil, err
		}
		out = append(out, bytes.Clone(b[start:s.pos]))
		s.ws()
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			return out, nil
		default:
			return nil, s.fail("expected ',' or ']' after a list element")
		}
	}
}

// readMetricsField reads the "metrics" field back into its series, their
// arrays kept as encoded elements.
func readMetricsField(b []byte) (metrics, error) {
	m := metrics{byName: map[string]*series{}}
	s := &scanner{b: b}
	s.ws()
	if s.peek() != '{' {
		return m, s.fail("expected an object")
	}
	s.pos++
	err := s.members(func(key []byte, raw bool) error {
		se := &series{name: keyString(key, raw)}
		if s.peek() != '{' {
			return s.fail("a series is not an object")
		}
		s.pos++
		err := s.members(func(k []byte, r bool) error {
			start := s.pos
			if err := s.skipValue(4); err != nil {
				return err
			}
			elems, err := rawElements(b[start:s.pos])
			if err != nil {
				return err
			}
			joined := bytes.Join(elems, []byte(", "))
			switch keyString(k, r) {
			case "steps":
				se.steps, se.n = joined, len(elems)
			case "timestamps":
				se.stamps = joined
			case "values":
				se.values = joined
			}
			return nil
		})
		if err != nil {
			return err
		}
		if old, dup := m.byName[se.name]; dup {
			m.series[slices.Index(m.series, old)] = se // Python keeps the last
		} else {
			m.series = append(m.series, se)
		}
		m.byName[se.name] = se
		return nil
	})
	return m, err
}
