package storeflags

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/internal/query"
	"github.com/sacred-go/sacred/pkg/observer"
)

// RunArgsUsage explains the run arguments of show, files and compare.
const RunArgsUsage = `A run is named by its id, or by a negative index from the latest
(-1 the latest, -2 the one before), as Sacred's TinyDbReader counts.
With several stores, an id is taken from the first store that has it and
an index counts in the first store.`

// FindRun returns the run arg names (see RunArgsUsage), read whole
// (output included), and the store it came from.
func FindRun(ctx context.Context, stores []Store, arg string) (Store, *observer.Run, error) {
	if i, ok := NegativeIndex(arg); ok {
		st := stores[0]
		ids, err := st.Reader.Runs(ctx)
		if err != nil {
			return Store{}, nil, err
		}
		j := i + len(ids)
		if j < 0 {
			return Store{}, nil, fmt.Errorf("%s: %w", st.Label, &query.IndexError{Index: i, Count: len(ids)})
		}
		run, err := st.Reader.Run(ctx, ids[j])
		return st, run, err
	}
	if strings.TrimSpace(arg) == "" {
		return Store{}, nil, errors.New("the run id is empty; give an id or -1 for the latest run")
	}
	for _, st := range stores {
		run, err := st.Reader.Run(ctx, arg)
		if errors.Is(err, observer.ErrNotFound) {
			continue
		}
		if err != nil {
			return Store{}, nil, err
		}
		return st, run, nil
	}
	labels := make([]string, len(stores))
	for i, st := range stores {
		labels[i] = st.Label
	}
	return Store{}, nil, fmt.Errorf("no run %q in %s: `sacred ls` lists the runs; -1 is the latest", arg, strings.Join(labels, ", "))
}

// NegativeIndex reads "-N" (N > 0) as the index -N.
func NegativeIndex(s string) (int, bool) {
	if len(s) < 2 || len(s) > 10 || s[0] != '-' {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n >= 0 || strings.ContainsAny(s[1:], "+-") {
		return 0, false
	}
	return n, true
}

// annotRunArgs marks a command whose positional arguments may be negative
// indices.
const annotRunArgs = "sacred-run-args"

// MarkRunArgs lets cmd take negative indices (-1) as positional
// arguments; see PositionalNumbers.
func MarkRunArgs(cmd *cobra.Command) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[annotRunArgs] = "true"
}

// PositionalNumbers rewrites the arguments of a command marked with
// MarkRunArgs so that negative numbers (`sacred show -1`) are positional
// arguments rather than unknown flags: the flags and their values first,
// then "--" and the positional arguments in their order. Arguments of any
// other command are returned unchanged.
func PositionalNumbers(root *cobra.Command, args []string) []string {
	if len(args) == 0 {
		return args
	}
	c, _, err := root.Find(args[:1])
	if err != nil || c == root || c.Annotations[annotRunArgs] == "" {
		return args
	}
	fs := c.Flags()
	var flags, pos []string
	moved := false
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			pos = append(pos, rest[i+1:]...)
			i = len(rest)
		case isNumber(a):
			pos = append(pos, a)
			moved = moved || strings.HasPrefix(a, "-")
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if takesValue(fs, a) && i+1 < len(rest) {
				flags = append(flags, rest[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	if !moved {
		return args
	}
	out := append([]string{args[0]}, flags...)
	out = append(out, "--")
	return append(out, pos...)
}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// takesValue tells whether a flag given as a (without "=value") takes the
// next argument as its value.
func takesValue(fs *pflag.FlagSet, a string) bool {
	if strings.Contains(a, "=") {
		return false
	}
	var fl *pflag.Flag
	if name, ok := strings.CutPrefix(a, "--"); ok {
		fl = fs.Lookup(name)
	} else if len(a) == 2 {
		fl = fs.ShorthandLookup(a[1:])
	} else {
		return false // -Fruns: the value is attached
	}
	return fl != nil && fl.NoOptDefVal == ""
}
