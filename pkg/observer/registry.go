package observer

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
)

// Settings are the run-wide options a factory may need besides its flag
// value.
type Settings struct {
	// Template is the report template given with --template, or empty.
	Template string
	// Warn receives one-line warnings meant for the user's stderr.
	Warn io.Writer
}

// Factory builds an observer from the value of its flag. It validates the
// value and may connect, so that a wrong URL or an unreachable server is
// reported before the child starts. Errors never contain credentials.
type Factory func(ctx context.Context, value string, s Settings) (Observer, error)

// Kind describes one kind of observer and the flag that selects it.
type Kind struct {
	// Option is Sacred's long option name without dashes, e.g.
	// "file_storage"; it is also the key in sacred.yaml and SACRED_* env.
	Option string
	New    Factory
	// Redact returns the flag value with passwords and tokens removed, for
	// records and messages. Nil means the value holds no secret.
	Redact func(value string) string
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Kind{}
)

// Register makes an observer kind available under its option name. It
// panics on a duplicate, as database/sql.Register does.
func Register(k Kind) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if k.Option == "" || k.New == nil {
		panic("observer: Register with empty option or nil factory")
	}
	if _, dup := registry[k.Option]; dup {
		panic(fmt.Sprintf("observer: Register called twice for %q", k.Option))
	}
	registry[k.Option] = k
}

// Lookup returns the kind registered for an option name.
func Lookup(option string) (Kind, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	k, ok := registry[option]
	return k, ok
}

// Options lists the registered option names, sorted.
func Options() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// RedactValue returns value redacted by the kind registered for option, or
// value unchanged when the kind has no secrets or is unknown.
func RedactValue(option, value string) string {
	if k, ok := Lookup(option); ok && k.Redact != nil {
		return k.Redact(value)
	}
	return value
}
