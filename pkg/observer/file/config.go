// Package file is the file-storage observer (`-F DIR`, `--file_storage=DIR`):
// it writes each run into BASEDIR/<id>/ in exactly the layout of Python
// Sacred's FileStorageObserver, so that Sacredboard, Incense and Omniboard
// importers read it, and reads such directories back (Open). The layout
// itself (names, records, metrics.json) is package layout, shared with the
// other stores on it.
//
// Like every observer package it offers ParseConfig, Redact, New and Open,
// registered in this file. See docs/observers/file.md for the layout, what
// is written when, and where we deviate from Sacred.
package file

import (
	"context"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/internal/storedir"
)

// Option is the flag name (without dashes) and the key in sacred.yaml and
// SACRED_* variables.
const Option = "file_storage"

// DefaultPriority is Sacred's FileStorageObserver priority.
const DefaultPriority = 20

// FlagTemplate is the kind's own flag: the report template rendered when
// the run ends (default: BASEDIR/template.html when it exists).
const FlagTemplate = "template"

func init() {
	observer.Register(observer.Kind{
		Option: Option,
		Short:  "F",
		Arg:    "DIR",
		Title:  "file storage",
		Usage:  "record to file storage in DIR (Sacred's FileStorageObserver layout)",
		Parse:  func(value string) (any, error) { return ParseConfig(value) },
		Redact: Redact,
		New: func(ctx context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
			return New(ctx, cfg.(Config), s)
		},
		Open: func(ctx context.Context, cfg any, s observer.Settings) (observer.Reader, error) {
			return Open(ctx, cfg.(Config), s)
		},
		Flags: []observer.Flag{{
			Name:  FlagTemplate,
			Arg:   "FILE",
			Usage: "report template for file storage (default: DIR/template.html when it exists)",
		}},
	})
}

// Config is a parsed and checked -F value.
type Config struct {
	// BaseDir is the directory as the user gave it. Sacred builds the
	// store paths of resources from it (relative stays relative).
	BaseDir string
	// Abs is BaseDir made absolute when the value was parsed.
	Abs string
}

// ParseConfig checks a -F value: a non-empty path that is a directory or
// does not exist yet (it is created when the run starts). A "file://"
// prefix is accepted and removed.
func ParseConfig(value string) (Config, error) {
	dir := strings.TrimPrefix(value, "file://")
	abs, err := storedir.Abs("file storage", "-F DIR", "", dir)
	if err != nil {
		return Config{}, err
	}
	return Config{BaseDir: dir, Abs: abs}, nil
}

// Redact returns value unchanged: a directory holds no secret. It is here
// so that every observer package offers the same ParseConfig, Redact, New
// and Open.
func Redact(value string) string { return value }
