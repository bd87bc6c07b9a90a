// Command sacred-jsonl is sacred with one more observer: --jsonl FILE.
package main

import (
	"os"

	"github.com/sacred-go/sacred/examples/jsonlines/jsonl"
	"github.com/sacred-go/sacred/pkg/sacredcli"
)

func main() { os.Exit(sacredcli.Main(jsonl.Kind)) }
