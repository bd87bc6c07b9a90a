// Package sacredcli is sacred's command line as a library, for a binary
// with observers of its own:
//
//	package main
//
//	import (
//		"os"
//
//		"example.org/lab/slackobs"
//		"github.com/sacred-go/sacred/pkg/sacredcli"
//	)
//
//	func main() { os.Exit(sacredcli.Main(slackobs.Kind)) }
//
// The built-in observers (file storage, MongoDB, SQL) are always there;
// each extra kind gets its flag, sacred.yaml key, SACRED_* variable and
// help line like them. See docs/writing-an-observer.md.
package sacredcli

import (
	"os"
	"runtime/debug"

	"github.com/sacred-go/sacred/internal/cli"
	"github.com/sacred-go/sacred/pkg/observer"
)

// Main registers kinds, runs sacred with os.Args and returns the exit
// status for os.Exit. It panics, as observer.Register does, when a kind
// is incomplete or takes a name or letter already taken.
func Main(kinds ...observer.Kind) int {
	for _, k := range kinds {
		observer.Register(k)
	}
	// The wrapper's live memory is small and bounded (output is spooled,
	// metrics are flushed early), but a burst of metric points leaves
	// garbage that the default GC pacing would let double the heap. A soft
	// limit keeps the footprint small; GOMEMLIMIT overrides it.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(48 << 20)
	}
	return cli.Main(os.Args[1:])
}
