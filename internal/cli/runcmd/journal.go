package runcmd

// --journal: observers whose events go through the durable queue
// (pkg/observer/queue) — a journal on local disk first, then the store
// from a background worker. Sacred's -q/--queue keeps its meaning (record
// a QUEUED run), so the durable queue has a name of its own.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/queue"
)

// Values of --journal besides observer names.
const (
	journalRemote = "remote" // every observer that talks to a server (Kind.Remote)
	journalAll    = "all"
	journalNone   = "none"
)

// defineJournalFlags defines --journal[=OBSERVERS] and --journal-dir.
func (o *RunOptions) defineJournalFlags(fs *pflag.FlagSet, kinds []observer.Kind) {
	fl := cmdutil.StringVarP(fs, &o.Journal, "journal", "", "", "OBSERVERS", journalUsage(kinds), checkJournal(kinds))
	fl.NoOptDefVal = journalRemote
	cmdutil.StringVarP(fs, &o.JournalDir, "journal-dir", "", "", "DIR",
		"directory of the journals (default $XDG_STATE_HOME/sacred/queue, else ~/.local/state/sacred/queue)", checkNotEmpty)
	cmdutil.MarkConfigurable(fs, "journal", "journal-dir")
}

// journalUsage is --journal's help, its example named from the kinds
// built in.
func journalUsage(kinds []observer.Kind) string {
	var remote []string
	for _, k := range kinds {
		if k.Remote && len(remote) < 2 {
			remote = append(remote, k.Option)
		}
	}
	example := ""
	if len(remote) > 0 {
		example = " (" + strings.Join(remote, ",") + ")"
	}
	return "journal the events on local disk first, then send them to the store in the background, so that a store that is down loses nothing (replay what is left with sacred sync); alone: every observer that talks to a server; or a comma list of observers" + example + ", all or none"
}

func checkNotEmpty(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("the value is empty")
	}
	return nil
}

// checkJournal refuses a --journal value that names no observer kind.
func checkJournal(kinds []observer.Kind) func(string) error {
	return func(v string) error {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			switch name {
			case journalRemote, journalAll, journalNone:
				continue
			}
			if _, ok := kindNamed(kinds, name); !ok {
				opts := make([]string, len(kinds))
				for i, k := range kinds {
					opts[i] = k.Option
				}
				return fmt.Errorf("%q is no observer: want remote (the default), all, none, or a comma list of %s", name, strings.Join(opts, ", "))
			}
		}
		return nil
	}
}

// kindNamed finds a kind by option name, with dashes or underscores, or
// by its short letter.
func kindNamed(kinds []observer.Kind, name string) (observer.Kind, bool) {
	n := strings.ReplaceAll(strings.TrimLeft(name, "-"), "-", "_")
	for _, k := range kinds {
		if k.Option == n || (k.Short != "" && k.Short == n) {
			return k, true
		}
	}
	return observer.Kind{}, false
}

// journaled tells whether the observers of kind k go through the journal.
func (o *RunOptions) journaled(k observer.Kind) bool {
	if o.Journal == "" {
		return false
	}
	names := strings.Split(o.Journal, ",")
	for i := range names {
		names[i] = strings.TrimSpace(names[i])
	}
	if slices.Contains(names, journalNone) {
		return false
	}
	if slices.Contains(names, journalAll) || (k.Remote && slices.Contains(names, journalRemote)) {
		return true
	}
	for _, n := range names {
		if nk, ok := kindNamed(o.kinds, n); ok && nk.Option == k.Option {
			return true
		}
	}
	return false
}

// journalDir is --journal-dir or the default directory.
func (o *RunOptions) journalDir() (string, error) {
	if o.JournalDir != "" {
		return o.JournalDir, nil
	}
	return queue.DefaultDir(os.Getenv)
}

// openJournaled wraps the observer of kind k with value val in the
// durable queue. The store is opened by the queue's worker, so a store
// that is down does not keep the command from starting.
func (o *RunOptions) openJournaled(k observer.Kind, val string, settings observer.Settings) (observer.Observer, error) {
	dir, err := o.journalDir()
	if err != nil {
		return nil, err
	}
	redacted := k.RedactValue(val)
	return queue.New(func(ctx context.Context) (observer.Observer, error) {
		return k.OpenObserver(ctx, val, settings)
	}, queue.Options{
		Dir: dir, Option: k.Option, Title: k.Title, Value: redacted, Secret: redacted != val,
		Warn: settings.Warn,
	})
}
