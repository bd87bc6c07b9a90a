// Package file is the file-storage observer (`-F DIR`, `--file_storage=DIR`):
// it writes each run into BASEDIR/<id>/ in exactly the layout of Python
// Sacred's FileStorageObserver, so that Sacredboard, Incense and Omniboard
// importers read it, and reads such directories back (Open).
//
// See docs/observers/file.md for the layout, what is written when, and where
// we deviate from Sacred.
package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Option is the flag name (without dashes) and the key in sacred.yaml and
// SACRED_* variables.
const Option = "file_storage"

// DefaultPriority is Sacred's FileStorageObserver priority.
const DefaultPriority = 20

// Names of the shared directories and of the files of a run directory.
const (
	SourcesDir   = "_sources"
	ResourcesDir = "_resources"
	TemplateName = "template.html"

	RunFile     = "run.json"
	ConfigFile  = "config.json"
	InfoFile    = "info.json"
	MetricsFile = "metrics.json"
	CoutFile    = "cout.txt"
)

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
		New: func(_ context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
			return NewFromConfig(cfg.(Config), s), nil
		},
		Open: func(_ context.Context, cfg any, _ observer.Settings) (observer.Reader, error) {
			return Open(cfg.(Config).Abs)
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
	if strings.TrimSpace(dir) == "" {
		return Config{}, errors.New("file storage: the directory is empty (use -F DIR)")
	}
	if strings.ContainsRune(dir, 0) {
		return Config{}, fmt.Errorf("file storage: the directory %q contains a NUL byte", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Config{}, fmt.Errorf("file storage: directory %q: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err == nil && !fi.IsDir():
		return Config{}, fmt.Errorf("file storage: %s exists and is not a directory", dir)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return Config{}, fmt.Errorf("file storage: checking directory %s: %w", dir, err)
	}
	return Config{BaseDir: dir, Abs: abs}, nil
}
