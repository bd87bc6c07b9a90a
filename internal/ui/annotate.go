package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Annotator is a reader whose store keeps notes and tags of runs beside
// their records, where another tool shows them too (MongoDB: Omniboard's
// omniboard.notes and omniboard.tags). Stores written by a running sacred
// (the file store's run.json, SQL rows, TinyDB's one file) have none: the
// UI writing there could race the wrapper and lose a beat.
type Annotator interface {
	// Annotations returns the notes and tags of a run (empty when none).
	Annotations(ctx context.Context, id string) (notes string, tags []string, err error)
	// Annotate replaces the notes and tags of a run.
	Annotate(ctx context.Context, id, notes string, tags []string) error
}

// Bounds of what a page may write.
const (
	notesMax = 64 << 10
	tagsMax  = 64
	tagMax   = 100
)

// addAnnotations adds the run's notes and tags to a run page's answer, and
// whether the page may edit them.
func (s *Server) addAnnotations(ctx context.Context, store int, id string, out map[string]any) {
	a, ok := s.stores[store].store.Reader.(Annotator)
	out["annotate"] = ok && !s.opts.ReadOnly
	if !ok {
		return
	}
	notes, tags, err := a.Annotations(ctx, id)
	if err != nil {
		out["annotations_error"] = err.Error()
		return
	}
	out["notes"], out["tags"] = notes, tags
}

// apiAnnotate sets a run's notes and tags: a JSON body {"notes": "...",
// "tags": ["..."]} for ?store=&id=.
func (s *Server) apiAnnotate(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	store, err := s.runRef(v.Get("store"), v.Get("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.opts.ReadOnly {
		apiError(w, http.StatusForbidden, "sacred ui runs with --read-only: notes and tags cannot be changed")
		return
	}
	a, ok := s.stores[store].store.Reader.(Annotator)
	if !ok {
		apiError(w, http.StatusNotImplemented, fmt.Sprintf("%s keeps no notes or tags (only MongoDB does, in Omniboard's fields)", s.stores[store].store.Label))
		return
	}
	var body struct {
		Notes string   `json:"notes"`
		Tags  []string `json:"tags"`
	}
	r.Body = http.MaxBytesReader(w, r.Body, notesMax+tagsMax*tagMax*4+1024)
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		apiError(w, http.StatusBadRequest, `give a JSON object {"notes": "...", "tags": ["..."]}`)
		return
	}
	if len(body.Notes) > notesMax || len(body.Tags) > tagsMax {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("notes: at most %d KiB; tags: at most %d", notesMax>>10, tagsMax))
		return
	}
	tags := make([]string, 0, len(body.Tags))
	seen := map[string]bool{}
	for _, t := range body.Tags {
		t = strings.TrimSpace(t)
		if t == "" || seen[t] {
			continue
		}
		if utf8.RuneCountInString(t) > tagMax {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("tag %.20q...: at most %d characters", t, tagMax))
			return
		}
		seen[t] = true
		tags = append(tags, t)
	}
	if err := a.Annotate(r.Context(), v.Get("id"), body.Notes, tags); err != nil {
		s.runError(w, store, v.Get("id"), err)
		return
	}
	s.runs.forget(runKey{store, v.Get("id")})
	writeJSON(w, http.StatusOK, map[string]any{"notes": body.Notes, "tags": tags})
}
