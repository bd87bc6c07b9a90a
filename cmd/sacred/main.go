// Command sacred runs any command as an observed, reproducible experiment
// run. See `sacred run --help`.
package main

import (
	"os"
	"runtime/debug"

	"github.com/sacred-go/sacred/internal/cli"
)

func main() {
	// The wrapper's live memory is small and bounded (output is spooled,
	// metrics are flushed early), but a burst of metric points leaves
	// garbage that the default GC pacing would let double the heap. A soft
	// limit keeps the footprint small; GOMEMLIMIT overrides it.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(48 << 20)
	}
	os.Exit(cli.Main(os.Args[1:]))
}
