// Package readbacktest offers a store held in memory for the tests of the
// reading commands: a reader as a third party could write it, with no
// Finder, so that the generic path is what is tested.
package readbacktest

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
)

// Memory is an observer.Reader and readback.FileOpener over runs in
// memory, oldest first. Files maps "kind\x00id\x00name" to content
// (kind: artifact, source or resource).
type Memory struct {
	RunList []*observer.Run
	Files   map[string]string
}

var _ readback.FileOpener = (*Memory)(nil)

// Key is the key of a file in Files.
func Key(kind, id, name string) string { return kind + "\x00" + id + "\x00" + name }

// Runs implements observer.Reader.
func (m *Memory) Runs(context.Context) ([]string, error) {
	ids := make([]string, len(m.RunList))
	for i, r := range m.RunList {
		ids[i] = r.ID
	}
	return ids, nil
}

// Run implements observer.Reader.
func (m *Memory) Run(_ context.Context, id string) (*observer.Run, error) {
	for _, r := range m.RunList {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, fmt.Errorf("memory: run %s: %w", id, observer.ErrNotFound)
}

func (m *Memory) open(kind, id, name string) (io.ReadCloser, error) {
	s, ok := m.Files[Key(kind, id, name)]
	if !ok {
		return nil, fmt.Errorf("memory: %s %s of run %s: %w", kind, name, id, observer.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader(s)), nil
}

// Artifact implements observer.Reader.
func (m *Memory) Artifact(_ context.Context, id, name string) (io.ReadCloser, error) {
	return m.open("artifact", id, name)
}

// OpenSource implements readback.FileOpener.
func (m *Memory) OpenSource(_ context.Context, id, name string) (io.ReadCloser, error) {
	return m.open("source", id, name)
}

// OpenResource implements readback.FileOpener.
func (m *Memory) OpenResource(_ context.Context, id, path string) (io.ReadCloser, error) {
	return m.open("resource", id, path)
}

// Close implements observer.Reader.
func (m *Memory) Close() error { return nil }
