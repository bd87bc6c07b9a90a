package collect

import (
	"strings"
)

// pythonImports calls add with the dotted name of every absolute module
// that Python source src imports: `import a.b as c, d` gives a.b and d,
// `from a.b import c` gives a.b; relative imports (`from . import x`) are
// the script's own and are left out. Imports anywhere count (inside
// functions, try blocks, after `if`): Sacred records what the run
// imported, and a conditional import usually runs. Strings, docstrings and
// comments are skipped; lines joined by a backslash or open brackets are
// read as one statement.
func pythonImports(src string, add func(module string)) {
	var stmt strings.Builder
	depth := 0
	var quote string // the open string's delimiter, when inside one
	flush := func() {
		parseImportStatement(stmt.String(), add)
		stmt.Reset()
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if quote != "" {
			switch {
			case c == '\\':
				i++ // an escaped character, the delimiter included
			case strings.HasPrefix(src[i:], quote):
				i += len(quote) - 1
				quote = ""
			case c == '\n' && len(quote) == 1:
				quote = "" // an unterminated one-line string ends with the line
				if depth == 0 {
					flush()
				}
			}
			continue
		}
		switch c {
		case '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			i-- // the newline ends the statement below
		case '"', '\'':
			q := string(c)
			if strings.HasPrefix(src[i:], q+q+q) {
				q += q + q
			}
			quote = q
			i += len(q) - 1
			stmt.WriteString(" _ ") // a string stands in a statement, as a value
		case '\\':
			if i+1 < len(src) && src[i+1] == '\n' {
				i++ // line continuation
				stmt.WriteByte(' ')
			} else {
				stmt.WriteByte(c)
			}
		case '(', '[', '{':
			depth++
			stmt.WriteByte(c)
		case ')', ']', '}':
			if depth > 0 {
				depth--
			}
			stmt.WriteByte(c)
		case '\n':
			if depth == 0 {
				flush()
			} else {
				stmt.WriteByte(' ')
			}
		case ';':
			if depth == 0 {
				flush()
			} else {
				stmt.WriteByte(c)
			}
		default:
			stmt.WriteByte(c)
		}
	}
	flush()
}

// parseImportStatement reads one logical statement.
func parseImportStatement(s string, add func(string)) {
	s = strings.TrimSpace(s)
	// `try: import x`, `else: import y`, `if cond: import z` on one line.
	for _, kw := range []string{"try", "else", "finally", "except", "if", "elif", "with", "for", "while"} {
		if strings.HasPrefix(s, kw) && len(s) > len(kw) && (s[len(kw)] == ':' || s[len(kw)] == ' ' || s[len(kw)] == '(') {
			if i := strings.IndexByte(s, ':'); i >= 0 {
				s = strings.TrimSpace(s[i+1:])
			}
			break
		}
	}
	switch {
	case strings.HasPrefix(s, "import ") || strings.HasPrefix(s, "import\t"):
		for _, part := range strings.Split(s[len("import "):], ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), " ")
			name = strings.Trim(name, "()")
			if isDottedName(name) {
				add(name)
			}
		}
	case strings.HasPrefix(s, "from ") || strings.HasPrefix(s, "from\t"):
		f := strings.Fields(s)
		if len(f) >= 3 && f[2] == "import" && isDottedName(f[1]) {
			add(f[1])
		}
	}
}

// isDottedName reports whether s is an absolute dotted module name.
func isDottedName(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			return false
		}
		for i, r := range part {
			ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 127 || i > 0 && r >= '0' && r <= '9'
			if !ok {
				return false
			}
		}
	}
	return true
}
