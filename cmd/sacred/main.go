// Command sacred runs any command as an observed, reproducible experiment
// run. See `sacred run --help`.
package main

import (
	"os"

	"github.com/sacred-go/sacred/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
