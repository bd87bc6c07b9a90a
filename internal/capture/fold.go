package capture

import "strings"

// FoldCR renders carriage returns and backspaces as a terminal would, like
// Sacred's apply_backspaces_and_linefeeds: the text is split on \n, and in
// each line \r moves the cursor to column 0 without clearing, \b moves it
// one left (not past 0), and other characters overwrite at the cursor or
// append. A \r that is the very last character is kept, so that the next
// chunk can still overwrite the line.
func FoldCR(s string) string {
	if !strings.ContainsAny(s, "\r\b") {
		return s
	}
	trailingCR := strings.HasSuffix(s, "\r")
	if trailingCR {
		s = s[:len(s)-1]
	}
	lines := strings.Split(s, "\n")
	var line []rune
	for i, l := range lines {
		if !strings.ContainsAny(l, "\r\b") {
			continue
		}
		line = line[:0]
		col := 0
		for _, r := range l {
			switch r {
			case '\r':
				col = 0
			case '\b':
				if col > 0 {
					col--
				}
			default:
				if col < len(line) {
					line[col] = r
				} else {
					line = append(line, r)
				}
				col++
			}
		}
		lines[i] = string(line)
	}
	out := strings.Join(lines, "\n")
	if trailingCR {
		out += "\r"
	}
	return out
}
