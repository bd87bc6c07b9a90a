package childapi

// parseFlat decodes the common case of a protocol line (a flat object of
// known keys with plain strings, numbers and literals) without reflection;
// that is most of the cost of a metric line. Anything else (escapes, nested
// values, unknown keys, other spellings) returns false and the caller uses
// encoding/json, so both paths accept exactly the same lines. Raw values
// alias line, which the caller handles before reading the next line.
func parseFlat(line []byte, m *wireMsg, intern func([]byte) string) bool {
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false
	}
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		return skipWS(line, i+1) == len(line)
	}
	for {
		k, j, ok := plainString(line, i)
		if !ok {
			return false
		}
		i = skipWS(line, j)
		if i >= len(line) || line[i] != ':' {
			return false
		}
		i = skipWS(line, i+1)
		if i >= len(line) {
			return false
		}
		var raw []byte
		var s []byte
		isStr := false
		switch c := line[i]; {
		case c == '"':
			s, j, ok = plainString(line, i)
			if !ok {
				return false
			}
			raw, isStr = line[i:j], true
		case c == '-' || (c >= '0' && c <= '9'):
			j, ok = jsonNumber(line, i)
			if !ok {
				return false
			}
			raw = line[i:j]
		case c == 'n' || c == 't' || c == 'f':
			j = literal(line, i)
			if j < 0 {
				return false
			}
			raw = line[i:j]
		default:
			return false // objects and arrays: leave them to encoding/json
		}
		i = j
		str := func(dst *string) bool {
			switch {
			case isStr:
				*dst = intern(s)
			case string(raw) == "null":
				*dst = "" // as encoding/json: null leaves a string empty
			default:
				return false
			}
			return true
		}
		switch string(k) {
		case "kind":
			ok = str(&m.Kind)
		case "name":
			ok = str(&m.Name)
		case "key":
			ok = str(&m.Key)
		case "time":
			ok = str(&m.Time)
		case "path":
			ok = str(&m.Path)
		case "content_type":
			ok = str(&m.ContentType)
		case "value":
			m.Value = raw
		case "step":
			m.Step = raw
		case "metadata":
			m.Metadata = raw
		default:
			return false
		}
		if !ok {
			return false // e.g. a number where a string belongs: the slow path says so
		}
		i = skipWS(line, i)
		if i >= len(line) {
			return false
		}
		switch line[i] {
		case ',':
			i = skipWS(line, i+1)
		case '}':
			return skipWS(line, i+1) == len(line)
		default:
			return false
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a string without escapes or control characters at
// b[i] == '"'; it returns the content and the index after the closing quote.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			// escapes, control characters and non-ASCII (which encoding/json
			// checks for valid UTF-8) take the slow path
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// jsonNumber checks the JSON number grammar at b[i] and returns its end.
func jsonNumber(b []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func literal(b []byte, i int) int {
	for _, l := range []string{"null", "true", "false"} {
		if len(b)-i >= len(l) && string(b[i:i+len(l)]) == l {
			return i + len(l)
		}
	}
	return -1
}
