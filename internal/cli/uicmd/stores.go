package uicmd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/ui"
	"github.com/sacred-go/sacred/pkg/observer"
)

// defaultDir is the file store shown when no store is named, where
// `sacred run` records by default.
const defaultDir = "runs"

// storeFlags are the observer flags of the stores to show, generated from
// the registered kinds, as `sacred run` has them.
type storeFlags struct {
	kinds     []observer.Kind
	vals      map[string]*[]string
	kindFlags []*pflag.Flag
}

func defineStoreFlags(fs *pflag.FlagSet, kinds []observer.Kind) *storeFlags {
	s := &storeFlags{kinds: kinds, vals: map[string]*[]string{}}
	for _, k := range kinds {
		if k.Open == nil {
			continue // a notifier: nothing to show
		}
		vals := new([]string)
		s.vals[k.Option] = vals
		arg := k.Arg
		if arg == "" {
			arg = "VALUE"
		}
		cmdutil.ArrayVarP(fs, vals, k.Option, k.Short, arg, "show the runs of the "+k.Title+" "+arg+" (repeatable)", nil)
		for _, kf := range k.Flags {
			var fl *pflag.Flag
			if kf.Bool {
				def, _ := strconv.ParseBool(kf.Default)
				fl = cmdutil.BoolVarP(fs, new(bool), kf.Name, "", def, kf.Usage)
			} else {
				fl = cmdutil.StringVarP(fs, new(string), kf.Name, "", kf.Default, kf.Arg, kf.Usage, nil)
			}
			s.kindFlags = append(s.kindFlags, fl)
		}
	}
	return s
}

// flagName is -F or --option.
func flagName(k observer.Kind) string {
	if k.Short != "" {
		return "-" + k.Short
	}
	return "--" + k.Option
}

func (s *storeFlags) readable() string {
	var out []string
	for _, k := range s.kinds {
		if k.Open != nil {
			out = append(out, flagName(k)+" "+k.Arg)
		}
	}
	return strings.Join(out, ", ")
}

// open opens a reader per store named, or ./runs. Labels are the values
// with their secrets removed.
func (s *storeFlags) open(ctx context.Context, f *cmdutil.Factory) ([]ui.Store, error) {
	settings := observer.Settings{Flags: map[string]string{}, Warn: f.IOStreams.ErrOut}
	for _, fl := range s.kindFlags {
		if fl.Changed || fl.DefValue != "" {
			settings.Flags[fl.Name] = fl.Value.String()
		}
	}
	type named struct {
		kind  observer.Kind
		value string
	}
	var want []named
	for _, k := range s.kinds {
		if vals, ok := s.vals[k.Option]; ok {
			for _, v := range *vals {
				want = append(want, named{k, v})
			}
		}
	}
	defaulted := false
	if len(want) == 0 {
		k, ok := observer.Lookup("file_storage")
		if !ok || k.Open == nil {
			return nil, cmdutil.FlagErrorf("no store given: name one with %s", s.readable())
		}
		want, defaulted = []named{{k, defaultDir}}, true
	}
	var stores []ui.Store
	for _, w := range want {
		shown := w.kind.RedactValue(w.value)
		r, err := w.kind.OpenReader(ctx, w.value, settings)
		if err != nil {
			closeStores(stores)
			if defaulted && errors.Is(err, observer.ErrNotFound) {
				return nil, cmdutil.FlagErrorf("no store given and ./%s does not exist: name one with %s", defaultDir, s.readable())
			}
			return nil, fmt.Errorf("%s %s: %w", flagName(w.kind), shown, err)
		}
		stores = append(stores, ui.Store{Label: shown, Reader: r})
	}
	return stores, nil
}

func closeStores(stores []ui.Store) {
	for _, s := range stores {
		_ = s.Reader.Close()
	}
}
