//go:build !unix

package tinydb

import "time"

func cpuTime() time.Duration { return 0 }
