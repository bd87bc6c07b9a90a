// Command sacred runs any command as an observed, reproducible experiment
// run. See `sacred run --help`.
package main

import (
	"os"

	"github.com/sacred-go/sacred/pkg/sacredcli"
)

func main() { os.Exit(sacredcli.Main()) }
