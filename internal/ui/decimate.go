package ui

import (
	"math"
	"sort"
	"strconv"
)

// decimate picks the points of a series (xs sorted ascending) to draw over
// [from, to] on a chart px columns wide. When the range holds more than two
// points per column, each column keeps its smallest and its largest value,
// in their order, so every spike is drawn however far the chart is zoomed
// out (the min/max per pixel column of M4 without the first and last
// points, which a line through min and max already joins closely enough).
// Otherwise every point in the range is kept. The point just outside each
// end is kept too, so lines reach the chart's edges.
//
// NaN values are skipped when a column has other values, and drawn as a
// gap when the column has nothing else. n is the number of points in the
// range.
func decimate(xs, ys []float64, from, to float64, px int) (ox, oy []float64, n int) {
	i0 := sort.SearchFloat64s(xs, from)
	i1 := sort.Search(len(xs), func(i int) bool { return xs[i] > to })
	n = i1 - i0
	lo, hi := max(i0-1, 0), min(i1+1, len(xs))
	if n <= 2*px || to <= from {
		return xs[lo:hi], ys[lo:hi], n
	}
	ox = make([]float64, 0, 2*px+2)
	oy = make([]float64, 0, 2*px+2)
	if lo < i0 {
		ox, oy = append(ox, xs[lo]), append(oy, ys[lo])
	}
	width := (to - from) / float64(px)
	bucket := -1
	minI, maxI, nanI := -1, -1, -1
	flush := func() {
		switch {
		case minI < 0 && nanI >= 0:
			ox, oy = append(ox, xs[nanI]), append(oy, ys[nanI])
		case minI < 0:
		case minI == maxI:
			ox, oy = append(ox, xs[minI]), append(oy, ys[minI])
		default:
			a, b := minI, maxI
			if b < a {
				a, b = b, a
			}
			ox, oy = append(ox, xs[a], xs[b]), append(oy, ys[a], ys[b])
		}
		minI, maxI, nanI = -1, -1, -1
	}
	for i := i0; i < i1; i++ {
		b := int((xs[i] - from) / width)
		if b >= px {
			b = px - 1
		}
		if b != bucket {
			if bucket >= 0 {
				flush()
			}
			bucket = b
		}
		v := ys[i]
		if math.IsNaN(v) {
			if nanI < 0 {
				nanI = i
			}
			continue
		}
		if minI < 0 || v < ys[minI] {
			minI = i
		}
		if maxI < 0 || v > ys[maxI] {
			maxI = i
		}
	}
	if bucket >= 0 {
		flush()
	}
	if hi > i1 {
		ox, oy = append(ox, xs[i1]), append(oy, ys[i1])
	}
	return ox, oy, n
}

// appendNumbers appends a JSON array of numbers, each minus offset,
// rounded to digits significant digits (-1: exact); a value that is not
// finite is null (a gap in the chart).
func appendNumbers(b []byte, vs []float64, offset float64, digits int) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
			continue
		}
		v -= offset
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			b = strconv.AppendInt(b, int64(v), 10)
			continue
		}
		b = strconv.AppendFloat(b, v, 'g', digits, 64)
	}
	return append(b, ']')
}

// appendFixed appends a JSON array of numbers minus offset with at most
// three decimals (times in seconds, to the millisecond).
func appendFixed(b []byte, vs []float64, offset float64) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		v = math.Round((v-offset)*1000) / 1000
		if v == math.Trunc(v) {
			b = strconv.AppendInt(b, int64(v), 10)
			continue
		}
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	return append(b, ']')
}
