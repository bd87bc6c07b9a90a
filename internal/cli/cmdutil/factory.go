// Package cmdutil holds what every sacred command shares, in the shape of
// gh's cmdutil: a Factory with the I/O streams, the config loader and the
// registered observer kinds; the flag values that check what they are
// given; and the mapping of errors to exit statuses.
package cmdutil

import (
	"os"
	"strings"
	"sync"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Factory gives commands what they need from the outside world, so that
// tests can hand them something else.
type Factory struct {
	// Version is sacred's version, set at build time.
	Version string
	// IOStreams are the standard streams.
	IOStreams *IOStreams
	// Environ is the process's environment.
	Environ []string
	// WorkingDir returns the working directory.
	WorkingDir func() (string, error)
	// Config reads sacred.yaml and the SACRED_* variables (once).
	Config func() (*Config, error)
	// Kinds returns the registered observer kinds.
	Kinds func() []observer.Kind
}

// New returns the factory of the real program.
func New(version string) *Factory {
	f := &Factory{
		Version:    version,
		IOStreams:  System(),
		Environ:    os.Environ(),
		WorkingDir: os.Getwd,
		Kinds:      observer.Kinds,
	}
	f.Config = f.configLoader()
	return f
}

// NewTest returns a factory over buffers with the given environment and
// working directory, and the buffers' streams.
func NewTest(environ []string, cwd string) *Factory {
	ios, _, _, _ := Test()
	f := &Factory{
		Version:    "test",
		IOStreams:  ios,
		Environ:    environ,
		WorkingDir: func() (string, error) { return cwd, nil },
		Kinds:      observer.Kinds,
	}
	f.Config = f.configLoader()
	return f
}

func (f *Factory) configLoader() func() (*Config, error) {
	var (
		once sync.Once
		cfg  *Config
		err  error
	)
	return func() (*Config, error) {
		once.Do(func() {
			var cwd string
			if cwd, err = f.WorkingDir(); err == nil {
				cfg, err = LoadConfig(cwd, f.Environ)
			}
		})
		return cfg, err
	}
}

// Getenv returns the value of an environment variable of f.Environ.
func (f *Factory) Getenv(key string) string {
	for i := len(f.Environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(f.Environ[i], key+"="); ok {
			return v
		}
	}
	return ""
}
