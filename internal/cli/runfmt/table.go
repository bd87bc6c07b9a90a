package runfmt

import (
	"encoding/csv"
	"io"
	"strings"
	"unicode/utf8"
)

// Table is rows of cells printed three ways: aligned and cut to a width
// for a terminal, tab-separated, or CSV. The first row added is the
// header.
type Table struct {
	rows [][]string
	// Keep marks the columns never shortened to fit (ids, statuses).
	Keep map[int]bool
}

// Add adds a row.
func (t *Table) Add(cells ...string) { t.rows = append(t.rows, cells) }

// Len is the number of rows, the header included.
func (t *Table) Len() int { return len(t.rows) }

// WriteAligned writes the table with columns separated by two spaces,
// shortening the widest cells (with "…") until a line fits in width.
func (t *Table) WriteAligned(w io.Writer, width int) error {
	if len(t.rows) == 0 {
		return nil
	}
	n := 0
	for _, r := range t.rows {
		n = max(n, len(r))
	}
	widths := make([]int, n)
	for _, r := range t.rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(oneLine(c)))
		}
	}
	total := func() int {
		s := 2 * (n - 1)
		for _, w := range widths {
			s += w
		}
		return s
	}
	// Take one column at a time off the widest column that may shrink,
	// down to a floor of 8 characters.
	for total() > width {
		best := -1
		for i, w := range widths {
			if t.Keep[i] || w <= 8 {
				continue
			}
			if best < 0 || w > widths[best] {
				best = i
			}
		}
		if best < 0 {
			break // as narrow as it gets: the terminal wraps the rest
		}
		widths[best]--
	}
	var b strings.Builder
	for _, r := range t.rows {
		b.Reset()
		for i := range n {
			c := ""
			if i < len(r) {
				c = fit(oneLine(r[i]), widths[i])
			}
			b.WriteString(c)
			if i < n-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		line := strings.TrimRight(b.String(), " ") + "\n"
		if _, err := io.WriteString(w, line); err != nil {
			return err
		}
	}
	return nil
}

// WriteTSV writes tab-separated lines, tabs and newlines in cells
// escaped.
func (t *Table) WriteTSV(w io.Writer) error {
	for _, r := range t.rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = Escape(c)
		}
		if _, err := io.WriteString(w, strings.Join(cells, "\t")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// WriteCSV writes RFC 4180 CSV.
func (t *Table) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.WriteAll(t.rows); err != nil {
		return err
	}
	return cw.Error()
}

func oneLine(s string) string {
	if !strings.ContainsAny(s, "\n\r\t") {
		return s
	}
	return strings.NewReplacer("\n", " ", "\r", " ", "\t", " ").Replace(s)
}

// fit cuts s to n characters, marking the cut with "…".
func fit(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
