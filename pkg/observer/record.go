package observer

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) by a Reader for a run or file that is
// not in the store.
var ErrNotFound = errors.New("not found")

// Run is a run as read back from a store, in one shape for every store. It
// serves `sacred ls/show/files` and the conformance tests.
type Run struct {
	ID         string
	Status     string
	Command    string
	Experiment Experiment // Sources carry Name and MD5 where the store keeps them
	Host       *Host
	Meta       Meta
	Config     map[string]any
	Info       map[string]any
	Result     any
	HasResult  bool
	StartTime  time.Time // zero for queued runs
	Heartbeat  time.Time // zero before the first beat
	StopTime   time.Time // zero while running
	QueueTime  time.Time // zero unless queued
	FailTrace  []string
	// Output is the captured output as stored (for stores that cut it,
	// the full output where they keep it elsewhere).
	Output    []byte
	Metrics   []MetricSeries
	Artifacts []string // names, in the order reported
	Resources []ResourceEvent
}

// Reader reads runs back from a store.
type Reader interface {
	// Runs lists the ids of all runs, oldest first.
	Runs(ctx context.Context) ([]string, error)
	// Run fetches one run.
	Run(ctx context.Context, id string) (*Run, error)
	// Artifact opens the content of an artifact of a run.
	Artifact(ctx context.Context, id, name string) (io.ReadCloser, error)
	Close() error
}
