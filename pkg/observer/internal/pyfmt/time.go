package pyfmt

import (
	"fmt"
	"strings"
	"time"
)

// DateTime is Python's str() of a naive datetime in UTC:
// "2026-11-27 03:07:12.269319", without the fraction when the microseconds
// are 0.
func DateTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

// dateTimeRepr is Python's repr() of a naive datetime:
// datetime.datetime(2026, 11, 27, 3, 7, 12, 269319), the microseconds and
// then the seconds left out while they are 0.
func dateTimeRepr(t time.Time) string {
	t = t.UTC()
	f := []int{t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond() / 1000}
	for range 2 {
		if f[len(f)-1] == 0 {
			f = f[:len(f)-1]
		}
	}
	s := make([]string, len(f))
	for i, n := range f {
		s[i] = fmt.Sprint(n)
	}
	return "datetime.datetime(" + strings.Join(s, ", ") + ")"
}

// Elapsed is Sacred's td_format(stop - start): "1 hour, 2 minutes, 5
// seconds", years of 365 days and months of 30 days, "less than a second"
// under one second. Both times count in whole microseconds, as Python's
// datetimes do, and the seconds are truncated toward zero as int() does;
// a negative span gives "", as in Sacred.
func Elapsed(start, stop time.Time) string {
	d := stop.Truncate(time.Microsecond).Sub(start.Truncate(time.Microsecond))
	seconds := int64(d / time.Second)
	if seconds == 0 {
		return "less than a second"
	}
	periods := []struct {
		name    string
		seconds int64
	}{
		{"year", 60 * 60 * 24 * 365},
		{"month", 60 * 60 * 24 * 30},
		{"day", 60 * 60 * 24},
		{"hour", 60 * 60},
		{"minute", 60},
		{"second", 1},
	}
	var parts []string
	for _, p := range periods {
		if seconds >= p.seconds {
			n := seconds / p.seconds
			seconds %= p.seconds
			if n == 1 {
				parts = append(parts, fmt.Sprintf("%d %s", n, p.name))
			} else {
				parts = append(parts, fmt.Sprintf("%d %ss", n, p.name))
			}
		}
	}
	return strings.Join(parts, ", ")
}

// strftime formats t with Python's (C's) strftime directives, in the C
// locale; the datetime is naive, so %z and %Z are empty.
func strftime(t time.Time, layout string) (string, error) {
	t = t.UTC()
	var b strings.Builder
	for i := 0; i < len(layout); i++ {
		c := layout[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(layout) {
			return "", fmt.Errorf("strftime format %q ends with a lone %%", layout)
		}
		switch d := layout[i]; d {
		case '%':
			b.WriteByte('%')
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			fmt.Fprintf(&b, "%02d", h)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'f':
			fmt.Fprintf(&b, "%06d", t.Nanosecond()/1000)
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'w':
			fmt.Fprintf(&b, "%d", int(t.Weekday()))
		case 'b':
			b.WriteString(t.Month().String()[:3])
		case 'B':
			b.WriteString(t.Month().String())
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 'c':
			b.WriteString(t.Format("Mon Jan _2 15:04:05 2006"))
		case 'x':
			b.WriteString(t.Format("01/02/06"))
		case 'X':
			b.WriteString(t.Format("15:04:05"))
		case 'z', 'Z':
		default:
			return "", fmt.Errorf("strftime directive %%%c is not supported", d)
		}
	}
	return b.String(), nil
}
