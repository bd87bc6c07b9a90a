// Package storeflags names the stores that `sacred ls`, `show`, `files`
// and `compare` read: the same observer flags as `sacred run` (-F DIR,
// -m URL, -s URL, -t DIR, ...), generated from the registered kinds, or
// the observers set in sacred.yaml and SACRED_*, or ./runs as `run`
// records by default. It also finds the run an argument names.
package storeflags

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file"
)

// DefaultDir is the file store read when no store is named, as `sacred
// run` records to it.
const DefaultDir = "runs"

// Flags are the STORE flags of one command.
type Flags struct {
	kinds     []observer.Kind
	vals      map[string]*[]string
	kindFlags []*pflag.Flag
}

// Define adds one repeatable flag per observer kind (and the kinds' own
// flags) to fs. The commands' own flags use no short letter that a kind
// could take (only those sacred run uses too, which no kind may). Sinks get theirs too, so that naming one says clearly
// that it cannot be read, rather than "unknown flag".
func Define(fs *pflag.FlagSet, kinds []observer.Kind) *Flags {
	s := &Flags{kinds: kinds, vals: map[string]*[]string{}}
	var conf []string
	for _, k := range kinds {
		vals := new([]string)
		s.vals[k.Option] = vals
		usage := "read runs from the " + k.Title + " " + orDefault(k.Arg, "VALUE") + " (repeatable)"
		if k.Open == nil {
			usage = k.Title + ": cannot be read back (a notifier)"
		}
		cmdutil.ArrayVarP(fs, vals, k.Option, k.Short, orDefault(k.Arg, "VALUE"), usage, nil)
		conf = append(conf, k.Option)
		for _, kf := range k.Flags {
			var fl *pflag.Flag
			if kf.Bool {
				def, _ := strconv.ParseBool(kf.Default)
				fl = cmdutil.BoolVarP(fs, new(bool), kf.Name, "", def, kf.Usage)
			} else {
				fl = cmdutil.StringVarP(fs, new(string), kf.Name, "", kf.Default, orDefault(kf.Arg, "VALUE"), kf.Usage, nil)
			}
			s.kindFlags = append(s.kindFlags, fl)
			conf = append(conf, kf.Name)
		}
	}
	cmdutil.MarkConfigurable(fs, conf...)
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Store is one store being read.
type Store struct {
	// Label names the store in a table and in messages: the value as
	// given, redacted, prefixed by the flag when two stores share it.
	Label  string
	Kind   observer.Kind
	Reader observer.Reader
	// Value is the store's value as given (it may hold a password), and
	// Settings the kinds' settings, for a command that also writes to the
	// store (sacred reap opens an observer with them).
	Value    string
	Settings observer.Settings
}

// Close closes the readers of stores.
func Close(stores []Store) {
	for _, s := range stores {
		_ = s.Reader.Close()
	}
}

// Use opens the stores (see Open), calls fn and closes them.
func (s *Flags) Use(f *cmdutil.Factory, c *cobra.Command, fn func([]Store) error) error {
	// The soft memory limit sacredcli.Main sets is for the wrapper of
	// `sacred run`; a reading command holds the runs it selects (about
	// 7 KB each), and under that limit the collector would run without
	// pause over 10,000 runs. GOMEMLIMIT still rules when set.
	if f.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(math.MaxInt64)
	}
	stores, err := s.Open(context.Background(), f, c)
	if err != nil {
		return err
	}
	defer Close(stores)
	return fn(stores)
}

// Open opens the stores named by the flags of c, else by sacred.yaml and
// SACRED_*, else ./runs. Stores come in the order of the kinds (sorted by
// option name), then of the values. Nothing is written to any store.
func (s *Flags) Open(ctx context.Context, f *cmdutil.Factory, c *cobra.Command) ([]Store, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, cmdutil.FlagErrorWrap(err)
	}
	if _, err := cfg.ApplyKnown(c.Flags()); err != nil {
		return nil, cmdutil.FlagErrorWrap(err)
	}
	settings := observer.Settings{Flags: map[string]string{}, Warn: f.IOStreams.ErrOut}
	for _, fl := range s.kindFlags {
		if v := fl.Value.String(); v != "" {
			settings.Flags[fl.Name] = v
		}
	}
	type named struct {
		kind  observer.Kind
		value string
	}
	var want []named
	for _, k := range s.kinds {
		for _, v := range *s.vals[k.Option] {
			if k.Open == nil {
				return nil, cmdutil.FlagErrorf("%s: runs cannot be read back from a %s; name a store with %s", flagName(k), k.Title, readable(s.kinds))
			}
			want = append(want, named{k, v})
		}
	}
	defaulted := false
	if len(want) == 0 {
		k, ok := observer.Lookup(file.Option)
		if !ok || k.Open == nil {
			return nil, cmdutil.FlagErrorf("no store given: name one with %s", readable(s.kinds))
		}
		want, defaulted = []named{{k, DefaultDir}}, true
	}
	labels := map[string]int{}
	for _, w := range want {
		labels[w.kind.RedactValue(w.value)]++
	}
	var stores []Store
	for _, w := range want {
		r, err := w.kind.OpenReader(ctx, w.value, settings)
		if err != nil {
			Close(stores)
			shown := w.kind.RedactValue(w.value)
			if defaulted && errors.Is(err, observer.ErrNotFound) {
				return nil, fmt.Errorf("no store given and ./%s does not exist: name one with %s, or set one in sacred.yaml", DefaultDir, readable(s.kinds))
			}
			if errors.Is(err, observer.ErrNotFound) {
				return nil, fmt.Errorf("%s %s: no such store: %w", flagName(w.kind), shown, err)
			}
			return nil, fmt.Errorf("%s %s: %w", flagName(w.kind), shown, err)
		}
		label := w.kind.RedactValue(w.value)
		if labels[label] > 1 {
			label = flagName(w.kind) + " " + label
		}
		stores = append(stores, Store{Label: label, Kind: w.kind, Reader: r, Value: w.value, Settings: settings})
	}
	return stores, nil
}

// flagName is -F or --option.
func flagName(k observer.Kind) string {
	if k.Short != "" {
		return "-" + k.Short
	}
	return "--" + k.Option
}

// readable lists the flags of the kinds that have a reader.
func readable(kinds []observer.Kind) string {
	var out []string
	for _, k := range kinds {
		if k.Open != nil {
			out = append(out, flagName(k)+" "+orDefault(k.Arg, "VALUE"))
		}
	}
	if len(out) == 0 {
		return "an observer flag (none of this build's observers can be read)"
	}
	return strings.Join(out, ", ")
}
