package retry

import (
	"fmt"
	"strings"
)

// Pending is what a wrapped observer holds because the inner observer has
// not accepted it yet.
type Pending struct {
	Points      int64 // metric points
	OutputBytes int64 // output not yet stored: the latest beat's To minus what the store acknowledged
	Files       int   // artifacts and resources
	Beat        bool  // a heartbeat (info, result, output range) not yet stored
	Final       bool  // the final status (only during the final flush)
}

// Empty tells whether nothing is pending.
func (p Pending) Empty() bool {
	return p.Points == 0 && p.OutputBytes == 0 && p.Files == 0 && !p.Beat && !p.Final
}

// String lists what is pending in words, e.g. "120 metric points, 3.2 MB
// of output, 2 artifacts or resources, the final status"; "nothing" when
// it is empty.
func (p Pending) String() string {
	var parts []string
	if p.Points > 0 {
		parts = append(parts, plural(p.Points, "metric point", "metric points"))
	}
	if p.OutputBytes > 0 {
		parts = append(parts, formatBytes(p.OutputBytes)+" of output")
	} else if p.Beat {
		// Output is what a beat mostly carries; without any, what is
		// left is its info and result.
		parts = append(parts, "the last heartbeat")
	}
	if p.Files > 0 {
		parts = append(parts, plural(int64(p.Files), "artifact or resource", "artifacts or resources"))
	}
	if p.Final {
		parts = append(parts, "the final status")
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// formatBytes writes n in decimal units with one decimal, as "3.2 MB".
func formatBytes(n int64) string {
	if n < 1000 {
		return plural(n, "byte", "bytes")
	}
	v := float64(n)
	for _, unit := range []string{"kB", "MB", "GB", "TB"} {
		v /= 1000
		if v < 999.95 || unit == "TB" {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	panic("unreachable")
}
