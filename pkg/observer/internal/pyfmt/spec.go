package pyfmt

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// spec is a parsed format spec:
// [[fill]align][sign][z][#][0][width][grouping][.precision][type].
type spec struct {
	fill      rune // 0: not given
	align     byte // 0, '<', '>', '^' or '='
	sign      byte // 0, '+', '-' or ' '
	z, alt    bool
	zero      bool
	width     int
	grouping  byte // 0, ',' or '_'
	precision int  // -1: not given
	typ       byte // 0: not given
}

func isAlign(c byte) bool { return c == '<' || c == '>' || c == '^' || c == '=' }

func parseSpec(s string) (spec, error) {
	sp := spec{precision: -1}
	i := 0
	if r, size := utf8.DecodeRuneInString(s); size > 0 && size < len(s) && isAlign(s[size]) {
		sp.fill, sp.align = r, s[size]
		i = size + 1
	} else if len(s) > 0 && isAlign(s[0]) {
		sp.align = s[0]
		i = 1
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-' || s[i] == ' ') {
		sp.sign = s[i]
		i++
	}
	if i < len(s) && s[i] == 'z' {
		sp.z = true
		i++
	}
	if i < len(s) && s[i] == '#' {
		sp.alt = true
		i++
	}
	if i < len(s) && s[i] == '0' {
		sp.zero = true
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > start {
		w, err := strconv.Atoi(s[start:i])
		if err != nil || w > 1<<16 {
			return sp, fmt.Errorf("format spec %q: width too large", s)
		}
		sp.width = w
	}
	if i < len(s) && (s[i] == ',' || s[i] == '_') {
		sp.grouping = s[i]
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return sp, fmt.Errorf("format spec %q: missing precision after '.'", s)
		}
		p, err := strconv.Atoi(s[start:i])
		if err != nil || p > 1<<10 {
			return sp, fmt.Errorf("format spec %q: precision too large", s)
		}
		sp.precision = p
	}
	if i < len(s) {
		if i+1 != len(s) || !strings.ContainsRune("bcdeEfFgGnosxX%", rune(s[i])) {
			return sp, fmt.Errorf("invalid format spec %q", s)
		}
		sp.typ = s[i]
	}
	return sp, nil
}

// CheckSpec reports whether spec is well formed for a value that is a
// datetime (strftime codes) or not (the format mini-language), before the
// value is known.
func CheckSpec(spec string, datetime bool) error {
	if spec == "" {
		return nil
	}
	if datetime {
		_, err := strftime(time.Time{}, spec)
		return err
	}
	_, err := parseSpec(spec)
	return err
}

// FormatSpec is Python's format(v, spec).
func FormatSpec(v any, specText string) (string, error) {
	if specText == "" {
		return Str(v), nil
	}
	if t, ok := v.(time.Time); ok {
		// datetime.__format__ is strftime.
		return strftime(t, specText)
	}
	sp, err := parseSpec(specText)
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return sp.formatString(x)
	case bool:
		// bool is an int with a non-empty spec.
		if x {
			return sp.formatInt(big.NewInt(1))
		}
		return sp.formatInt(big.NewInt(0))
	case float64:
		return sp.formatFloat(x)
	case float32:
		return sp.formatFloat(float64(x))
	case json.Number:
		if isIntText(string(x)) {
			n, _ := new(big.Int).SetString(string(x), 10)
			return sp.formatInt(n)
		}
		f, err := x.Float64()
		if err != nil {
			return "", err
		}
		return sp.formatFloat(f)
	}
	if s, ok := toInt(v); ok {
		n, _ := new(big.Int).SetString(s, 10)
		return sp.formatInt(n)
	}
	return "", fmt.Errorf("format spec %q cannot be applied to %s (only to strings, numbers and datetimes)", specText, typeName(v))
}

func (sp spec) formatString(s string) (string, error) {
	switch {
	case sp.typ != 0 && sp.typ != 's':
		return "", fmt.Errorf("unknown format code '%c' for a string", sp.typ)
	case sp.sign != 0:
		return "", errors.New("sign not allowed in a string format spec")
	case sp.alt:
		return "", errors.New("alternate form (#) not allowed in a string format spec")
	case sp.align == '=':
		return "", errors.New("'=' alignment not allowed in a string format spec")
	case sp.grouping != 0:
		return "", fmt.Errorf("cannot specify '%c' with a string", sp.grouping)
	}
	if sp.precision >= 0 && utf8.RuneCountInString(s) > sp.precision {
		s = string([]rune(s)[:sp.precision])
	}
	if sp.zero && sp.fill == 0 {
		sp.fill = '0'
	}
	return sp.pad("", s, '<'), nil
}

func (sp spec) formatInt(n *big.Int) (string, error) {
	switch sp.typ {
	case 'e', 'E', 'f', 'F', 'g', 'G', '%':
		f, _ := new(big.Float).SetInt(n).Float64()
		return sp.formatFloat(f)
	}
	if sp.precision >= 0 {
		return "", errors.New("precision not allowed in an integer format spec")
	}
	neg := n.Sign() < 0
	abs := new(big.Int).Abs(n)
	var prefix, digits string
	groupEvery := 3
	switch sp.typ {
	case 0, 'd', 'n':
		digits = abs.Text(10)
	case 'b':
		prefix, digits, groupEvery = "0b", abs.Text(2), 4
	case 'o':
		prefix, digits, groupEvery = "0o", abs.Text(8), 4
	case 'x':
		prefix, digits, groupEvery = "0x", abs.Text(16), 4
	case 'X':
		prefix, digits, groupEvery = "0X", strings.ToUpper(abs.Text(16)), 4
	case 'c':
		if sp.sign != 0 || sp.alt {
			return "", errors.New("sign and # are not allowed with format code 'c'")
		}
		if !n.IsInt64() || n.Int64() < 0 || n.Int64() > utf8.MaxRune {
			return "", fmt.Errorf("%%c arg not in range(0x110000): %s", n)
		}
		return sp.pad("", string(rune(n.Int64())), '>'), nil
	default:
		return "", fmt.Errorf("unknown format code '%c' for an int", sp.typ)
	}
	if !sp.alt {
		prefix = ""
	}
	if sp.grouping == ',' && sp.typ != 0 && sp.typ != 'd' {
		return "", fmt.Errorf("cannot specify ',' with '%c'", sp.typ)
	}
	if sp.grouping != 0 {
		digits = group(digits, groupEvery, sp.grouping)
	}
	return sp.pad(sp.signText(neg)+prefix, digits, '>'), nil
}

func (sp spec) signText(neg bool) string {
	switch {
	case neg:
		return "-"
	case sp.sign == '+':
		return "+"
	case sp.sign == ' ':
		return " "
	}
	return ""
}

func (sp spec) formatFloat(f float64) (string, error) {
	switch sp.typ {
	case 'b', 'c', 'd', 'o', 'x', 'X':
		return "", fmt.Errorf("unknown format code '%c' for a float", sp.typ)
	}
	if sp.grouping == '_' && sp.typ == 'n' || sp.grouping == ',' && sp.typ == 'n' {
		return "", errors.New("cannot specify a grouping with 'n'")
	}
	neg := math.Signbit(f) && !math.IsNaN(f)
	abs := math.Abs(f)
	suffix := ""
	prec := sp.precision
	var body string
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		body = "inf"
		if math.IsNaN(f) {
			body = "nan"
		}
		if sp.typ == 'E' || sp.typ == 'F' || sp.typ == 'G' {
			body = strings.ToUpper(body)
		}
		if sp.typ == '%' {
			body += "%"
		}
		return sp.pad(sp.signText(neg), body, '>'), nil
	case sp.typ == 'f' || sp.typ == 'F' || sp.typ == '%':
		if prec < 0 {
			prec = 6
		}
		if sp.typ == '%' {
			abs *= 100
			suffix = "%"
		}
		body = strconv.FormatFloat(abs, 'f', prec, 64)
		if sp.alt && prec == 0 {
			body += "."
		}
	case sp.typ == 'e' || sp.typ == 'E':
		if prec < 0 {
			prec = 6
		}
		body = strconv.FormatFloat(abs, 'e', prec, 64)
		if sp.alt && prec == 0 {
			body = strings.Replace(body, "e", ".e", 1)
		}
		if sp.typ == 'E' {
			body = strings.ToUpper(body)
		}
	case sp.typ == 'g' || sp.typ == 'G' || sp.typ == 'n':
		if sp.alt {
			return "", errors.New("the alternate form (#) of 'g' is not supported")
		}
		if prec < 0 {
			prec = 6
		}
		if prec == 0 {
			prec = 1
		}
		body = strconv.FormatFloat(abs, 'g', prec, 64)
		if sp.typ == 'G' {
			body = strings.ToUpper(body)
		}
	case prec < 0:
		// No type and no precision: repr.
		body = floatStr(abs)
	default:
		// No type with a precision: like 'g', but fixed notation keeps a
		// digit after the point, so the exponent form starts one decimal
		// exponent earlier (at p-1).
		if prec == 0 {
			prec = 1
		}
		body = shortG(abs, prec)
	}
	if sp.z && neg && isZeroText(body) {
		neg = false
	}
	if sp.grouping != 0 {
		intEnd := strings.IndexFunc(body, func(r rune) bool { return r < '0' || r > '9' })
		if intEnd < 0 {
			intEnd = len(body)
		}
		body = group(body[:intEnd], 3, sp.grouping) + body[intEnd:]
	}
	return sp.pad(sp.signText(neg), body+suffix, '>'), nil
}

// shortG is Python's float formatting with a precision and no type.
func shortG(abs float64, prec int) string {
	e := strconv.FormatFloat(abs, 'e', prec-1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= prec-1 {
		// Exponent form with trailing zeros removed.
		mant, ex, _ := strings.Cut(e, "e")
		if strings.Contains(mant, ".") {
			mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
		}
		return mant + "e" + ex
	}
	s := strconv.FormatFloat(abs, 'f', prec-1-exp, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(s, "0")
		if strings.HasSuffix(s, ".") {
			s += "0"
		}
	} else {
		s += ".0"
	}
	return s
}

func isZeroText(s string) bool {
	return strings.Trim(s, "0.") == "" || strings.HasPrefix(strings.Trim(s, "0."), "e")
}

// group inserts sep every n digits from the right.
func group(digits string, n int, sep byte) string {
	if len(digits) <= n {
		return digits
	}
	var b strings.Builder
	first := len(digits) % n
	if first > 0 {
		b.WriteString(digits[:first])
	}
	for i := first; i < len(digits); i += n {
		if b.Len() > 0 {
			b.WriteByte(sep)
		}
		b.WriteString(digits[i : i+n])
	}
	return b.String()
}

// pad applies fill, alignment and width to sign+body. defAlign is the
// type's default alignment; the '0' flag means fill '0' with '=' for
// numbers.
func (sp spec) pad(sign, body string, defAlign byte) string {
	fill, align := sp.fill, sp.align
	if sp.zero && defAlign == '>' {
		if fill == 0 {
			fill = '0'
		}
		if align == 0 {
			align = '='
		}
	}
	if fill == 0 {
		fill = ' '
	}
	if align == 0 {
		align = defAlign
	}
	n := sp.width - utf8.RuneCountInString(sign) - utf8.RuneCountInString(body)
	if n <= 0 {
		return sign + body
	}
	f := strings.Repeat(string(fill), n)
	switch align {
	case '<':
		return sign + body + f
	case '^':
		left := strings.Repeat(string(fill), n/2)
		return left + sign + body + strings.Repeat(string(fill), n-n/2)
	case '=':
		return sign + f + body
	default:
		return f + sign + body
	}
}
