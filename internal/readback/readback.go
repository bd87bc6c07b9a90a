// Package readback holds the optional interfaces a store's reader
// (observer.Reader) implements to serve `sacred ls/show/files/compare`
// better than the generic way: selecting runs where the data is (Finder)
// and giving back source and resource files (FileOpener).
//
// It is a leaf package on purpose: the readers import it to name the
// request they are given, internal/query builds that request, and the
// readers' tests may import internal/query without an import cycle.
// A reader of a third party need not implement any of this: query.Find
// falls back on Reader.Runs and Reader.Run.
package readback

import (
	"context"
	"errors"
	"io"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Finder is a reader that selects runs where the data is.
type Finder interface {
	// Find returns the runs the request's push-down selects (perhaps
	// more, never fewer), oldest first, or in SQLPlan.OrderBy's order
	// for an SQL store. The runs carry everything the request Reads;
	// their Output is never read (it is left nil).
	Find(ctx context.Context, req *Request) ([]*observer.Run, error)
}

// Request is a selection of runs as a store is given it. Select in
// process confirms whatever the store returns, so a store may ignore the
// plans and return every run.
type Request struct {
	// Reads tells which top-level fields of a run the selection reads
	// (its where, sort keys and columns), beyond id, name, status,
	// command, result and the times, which every run must carry:
	// "config", "info", "metrics", "meta", "host", "experiment",
	// "fail_trace", "artifacts". A store may fill more.
	Reads map[string]bool
	// Mongo returns the plan for Sacred's runs collection.
	Mongo func() MongoPlan
	// SQL returns the plan for a database of Sacred's schema in dialect
	// ("sqlite", "postgresql" or "mysql"); extended tells that our
	// run_extra table exists.
	SQL func(dialect string, extended bool) SQLPlan
}

// Needs tells whether the selection reads a top-level field.
func (r *Request) Needs(field string) bool { return r.Reads[field] }

// MongoPlan is a find over the runs collection.
type MongoPlan struct {
	Filter bson.D
}

// SQLPlan is a selection over run r LEFT JOIN experiment e (and, when
// extended, LEFT JOIN run_extra x); placeholders are the dialect's own.
type SQLPlan struct {
	From, Where string
	Args        []any
	OrderBy     string
	// Limit is the number of rows to fetch, 0 for all.
	Limit int
}

// FileOpener is a reader that gives back the source files and resources
// of a run, besides its artifacts (observer.Reader.Artifact).
type FileOpener interface {
	// OpenSource opens the stored copy of a source file, named as in
	// Experiment.Sources. A source recorded without its content is an
	// error wrapping ErrNotStored.
	OpenSource(ctx context.Context, id, name string) (io.ReadCloser, error)
	// OpenResource opens the stored copy of a resource, named by its
	// path as in Run.Resources.
	OpenResource(ctx context.Context, id, path string) (io.ReadCloser, error)
}

// ErrNotStored is wrapped by FileOpener's errors for a file the run
// names but whose content the store did not keep.
var ErrNotStored = errors.New("content not stored")
