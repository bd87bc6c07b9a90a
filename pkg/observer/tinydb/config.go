// Package tinydb is Sacred's TinyDbObserver (`-t DIR`, `--tiny_db=DIR`) and
// TinyDbReader for the sacred wrapper: runs go into DIR/metadata.json, a
// TinyDB 4 JSON database with one table "runs", and the files of a run
// (sources, resources, artifacts) into DIR/hashfs/, a HashFS store
// addressed by md5, byte for byte as Python Sacred writes them, so that
// Python's TinyDbReader reads our store and we read Sacred's.
//
// Unlike Sacred, several processes may record into one store at once: every
// change is a read-modify-write of metadata.json under a lock file, and the
// new content replaces the old atomically. Documents of other runs are
// copied as raw bytes, never decoded and re-encoded. See
// docs/observers/tinydb.md.
package tinydb

import (
	"context"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/internal/storedir"
)

// Option is the flag name (without dashes), the sacred.yaml key and the
// SACRED_TINY_DB variable.
const Option = "tiny_db"

// DefaultPriority is Sacred's: the TinyDbObserver sets none, so the base
// class's 0 applies.
const DefaultPriority = 0

// Names inside the store directory.
const (
	// MetadataFile is the TinyDB database.
	MetadataFile = "metadata.json"
	// HashFSDir holds the files, content-addressed by md5.
	HashFSDir = "hashfs"
	// LockFile is taken (flock) around every read-modify-write of
	// metadata.json. Python Sacred neither creates nor honours it.
	LockFile = "metadata.json.lock"
	// OutputDir holds the full output of runs whose output does not fit
	// in captured_out, or is not valid UTF-8 (see docs/observers/tinydb.md).
	OutputDir = "captured_out"
	// RunsTable is the TinyDB table Sacred writes.
	RunsTable = "runs"
)

// Format is the "format" field of the documents, as Sacred 0.8.7 writes it.
const Format = "TinyDbObserver-0.8.7"

func init() {
	observer.Register(observer.Kind{
		Option: Option,
		Short:  "t",
		Arg:    "DIR",
		Title:  "TinyDB",
		Usage:  "record to a TinyDB store in DIR: DIR/metadata.json and DIR/hashfs (Sacred's TinyDbObserver)",
		Parse:  func(value string) (any, error) { return ParseConfig(value) },
		New: func(ctx context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
			return New(ctx, cfg.(Config), s)
		},
		Open: func(ctx context.Context, cfg any, s observer.Settings) (observer.Reader, error) {
			return Open(ctx, cfg.(Config), s)
		},
	})
}

// Config is a parsed -t value.
type Config struct {
	// Dir is the directory as the user gave it (for messages).
	Dir string
	// Abs is Dir made absolute when the value was parsed; Sacred also
	// works on the absolute path.
	Abs string
}

// ParseConfig checks a -t value: a non-empty path that is a directory or
// does not exist yet (the observer creates it, as Sacred does).
func ParseConfig(value string) (Config, error) {
	abs, err := storedir.Abs("tinydb", "-t DIR", "(-t takes the directory that holds metadata.json)", value)
	if err != nil {
		return Config{}, err
	}
	return Config{Dir: value, Abs: abs}, nil
}
