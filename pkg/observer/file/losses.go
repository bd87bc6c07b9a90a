package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// losses is what the run's record lacks, as of the last call of each kind.
// Under the observer contract a failed call comes again with its data
// (the retry decorator resends it), so what the last call could not store
// is exactly what is missing; a later success clears it. The observer keeps
// no data for retry, only this account, which it reports when the run ends
// (see finish).
type losses struct {
	outStored, outWant int64    // cout.txt holds output [0, outStored) of [0, outWant)
	points             int      // metric points the last LogMetrics could not store
	info               bool     // info.json is older than the last info
	artifacts          []string // names whose last call failed
	resources          []string // paths whose last call failed
	trace              bool     // fail_trace was cut to fit the disk
	cause              error    // the last error, for its root cause
}

func (l *losses) add(list *[]string, name string) {
	if !slices.Contains(*list, name) {
		*list = append(*list, name)
	}
}

func (l *losses) remove(list *[]string, name string) {
	*list = slices.DeleteFunc(*list, func(s string) bool { return s == name })
}

// note remembers err (when not nil) as the latest cause and returns it.
func (l *losses) note(err error) error {
	if err != nil {
		l.cause = err
	}
	return err
}

// summary says what is missing, or "" when nothing is.
func (l *losses) summary() string {
	var parts []string
	if l.outStored < l.outWant {
		parts = append(parts, fmt.Sprintf("output bytes %d to %d (%s) of cout.txt",
			l.outStored, l.outWant, humanBytes(l.outWant-l.outStored)))
	}
	switch {
	case l.points == 1:
		parts = append(parts, "1 metric point")
	case l.points > 1:
		parts = append(parts, fmt.Sprintf("%d metric points", l.points))
	}
	if l.info {
		parts = append(parts, "the latest info")
	}
	for _, a := range l.artifacts {
		parts = append(parts, fmt.Sprintf("artifact %q", a))
	}
	for _, r := range l.resources {
		parts = append(parts, "resource "+r)
	}
	if l.trace {
		parts = append(parts, "most of fail_trace")
	}
	if len(parts) == 0 {
		return ""
	}
	s := strings.Join(parts, ", ")
	if c := rootCause(l.cause); c != "" {
		s += " (" + c + ")"
	}
	return s
}

// rootCause is the system's own words for why an operation failed, e.g.
// "no space left on device", or the whole message when there are none.
func rootCause(err error) string {
	if err == nil {
		return ""
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err.Error()
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
