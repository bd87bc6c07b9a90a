package observer

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Kind declares one kind of observer: everything the program needs to know
// about it. The command line's flags, the sacred.yaml keys, the SACRED_*
// variables, meta.options, the help text and the lists in error messages
// are all generated from the registered kinds, so a new observer is one
// package and one Register call, and a binary outside this module adds one
// by importing its package (see pkg/sacredcli).
//
// A kind's value is the string given to its flag (a directory, a URL, a
// config file). Parse turns it into the kind's own config, as restic's
// backends' ParseConfig does; New and Open receive that config.
type Kind struct {
	// Option is Sacred's long option name without dashes, e.g.
	// "file_storage". It names the flag (--file_storage, also accepted as
	// --file-storage), the sacred.yaml key, the SACRED_FILE_STORAGE
	// variable and the meta.options key "--file_storage".
	Option string
	// Short is the one-letter flag, e.g. "F"; empty for none.
	Short string
	// Arg names the value in help, e.g. "DIR" or "URL".
	Arg string
	// Title names the observer in messages, e.g. "file storage".
	Title string
	// Usage is the one-line help of the flag.
	Usage string
	// Remote is true for an observer that talks to a server over the
	// network (what --queue wraps).
	Remote bool

	// Parse checks a value and returns the kind's config. It may look at
	// the local file system but must not connect anywhere. Its errors
	// never contain the secrets of the value.
	Parse func(value string) (any, error)
	// Redact returns the value with passwords and tokens removed, for
	// records and messages. Nil means the value holds no secret.
	Redact func(value string) string
	// New opens an observer for one run. It may connect, so that a wrong
	// URL or an unreachable server is reported before the child starts.
	New func(ctx context.Context, cfg any, s Settings) (Observer, error)
	// Open opens a reader over the store; nil for a sink (a notifier, a
	// webhook) whose records cannot be read back.
	Open func(ctx context.Context, cfg any, s Settings) (Reader, error)

	// Flags are the kind's own settings beyond its value (e.g. a report
	// template, an S3 region). They get a flag, a sacred.yaml key and a
	// SACRED_* variable like everything else, and reach New and Open in
	// Settings.Flags.
	Flags []Flag

	// Env names environment variables the kind reads by itself, beyond
	// the generated SACRED_* ones: secrets that must not be given on a
	// command line, such as SACRED_WEBHOOK_SECRET. The CLI takes them out
	// of the child's environment like the generated ones and lists them
	// in help.
	Env []string
}

// Flag is a setting of one kind, given as --NAME VALUE (or --NAME for a
// boolean).
type Flag struct {
	Name    string // e.g. "s3-region"; unique among all kinds and sacred's own flags
	Arg     string // names the value in help, e.g. "REGION"; unused for booleans
	Usage   string
	Bool    bool
	Default string // "" for none; "true"/"false" for booleans
}

// Settings are the run-wide settings an observer may need besides its
// config.
type Settings struct {
	// Flags holds the values of the kinds' Flags that were set, by name.
	Flags map[string]string
	// Warn receives one-line warnings meant for the user's stderr. It may
	// be nil: use Settings.Warner.
	Warn io.Writer
}

// Flag returns the value of a kind's flag, or "" when it was not set.
func (s Settings) Flag(name string) string { return s.Flags[name] }

// Warner returns Warn, or io.Discard when it is nil.
func (s Settings) Warner() io.Writer {
	if s.Warn == nil {
		return io.Discard
	}
	return s.Warn
}

// OpenObserver parses value with the kind and opens an observer.
func (k Kind) OpenObserver(ctx context.Context, value string, s Settings) (Observer, error) {
	cfg, err := k.Parse(value)
	if err != nil {
		return nil, err
	}
	return k.New(ctx, cfg, s)
}

// OpenReader parses value with the kind and opens a reader. It fails for
// a sink.
func (k Kind) OpenReader(ctx context.Context, value string, s Settings) (Reader, error) {
	if k.Open == nil {
		return nil, fmt.Errorf("%s: runs cannot be read back from this observer", k.Title)
	}
	cfg, err := k.Parse(value)
	if err != nil {
		return nil, err
	}
	return k.Open(ctx, cfg, s)
}

// RedactValue returns value with its secrets removed.
func (k Kind) RedactValue(value string) string {
	if k.Redact == nil {
		return value
	}
	return k.Redact(value)
}

// EnvVar is the environment variable that sets the kind's value, e.g.
// SACRED_FILE_STORAGE.
func (k Kind) EnvVar() string { return EnvVar(k.Option) }

// EnvVar is the SACRED_* variable of a flag or option name:
// "file_storage" and "flush-timeout" give SACRED_FILE_STORAGE and
// SACRED_FLUSH_TIMEOUT.
func EnvVar(name string) string {
	return "SACRED_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Kind{}
)

// Register makes an observer kind available under its option name. It
// panics on a duplicate option, short letter or flag, or on a kind missing
// Option, Parse or New, as database/sql.Register does.
func Register(k Kind) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if k.Option == "" || k.Parse == nil || k.New == nil {
		panic("observer: Register needs Option, Parse and New")
	}
	if strings.ContainsAny(k.Option, " -=") {
		panic(fmt.Sprintf("observer: Register: option %q must be a word with underscores", k.Option))
	}
	if k.Title == "" {
		k.Title = k.Option
	}
	if _, dup := registry[k.Option]; dup {
		panic(fmt.Sprintf("observer: Register called twice for %q", k.Option))
	}
	for _, o := range registry {
		if k.Short != "" && o.Short == k.Short {
			panic(fmt.Sprintf("observer: Register %q: short flag -%s is taken by %q", k.Option, k.Short, o.Option))
		}
		for _, f := range k.Flags {
			for _, g := range o.Flags {
				if f.Name == g.Name {
					panic(fmt.Sprintf("observer: Register %q: flag --%s is taken by %q", k.Option, f.Name, o.Option))
				}
			}
		}
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

// Kinds returns the registered kinds sorted by option name.
func Kinds() []Kind {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]Kind, 0, len(registry))
	for _, k := range registry {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Option < out[j].Option })
	return out
}

// Options lists the registered option names, sorted.
func Options() []string {
	ks := Kinds()
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Option
	}
	return names
}

// RedactValue returns value redacted by the kind registered for option, or
// value unchanged when the kind has no secrets or is unknown.
func RedactValue(option, value string) string {
	if k, ok := Lookup(option); ok {
		return k.RedactValue(value)
	}
	return value
}

// SacredOptions are the observer options of Python Sacred 0.8.7's command
// line. Sacred writes each of them into meta.options (null when not given),
// so records carry them whether or not this binary has the kind.
var SacredOptions = []string{"file_storage", "mongo_db", "s3", "sql", "tiny_db"}
