package collect

import (
	"bytes"
	"strings"
)

// gitConfig holds the variables of one git config file, as git names them
// for lookup: section and key lower-cased, the subsection as written
// ("remote.origin.url", "core.filemode"). Values keep their order: a
// multi-valued key has them all, the first first.
type gitConfig struct {
	values map[string][]string
	order  []string // the names in the order first seen
}

func (c *gitConfig) get(name string) (string, bool) {
	v := c.values[name]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true // git takes the last value of a single-valued key
}

func (c *gitConfig) bool(name string, def bool) bool {
	v, ok := c.get(name)
	if !ok {
		return def
	}
	return parseGitBool(v, def)
}

// parseGitConfig reads the syntax of git-config(1): [section],
// [section "subsection"] (escapes \" and \\), the old [section.subsection],
// name = value with quotes, the escapes \n \t \b \\ \", a backslash at the
// end of a line to continue it, and # or ; comments. A name without "="
// means true. Include directives are not followed (go-git did not follow
// them either): only the repository's own settings are read. Lines it
// cannot read are skipped rather than failing: what is read here only
// chooses a URL and two stat checks.
func parseGitConfig(data []byte) *gitConfig {
	c := &gitConfig{values: map[string][]string{}}
	p := configParser{data: data}
	section := ""
	for !p.eof() {
		p.skipSpace()
		switch ch := p.peek(); {
		case ch == '\n':
			p.i++
		case ch == '#' || ch == ';':
			p.skipLine()
		case ch == '[':
			s, ok := p.section()
			if !ok {
				section = ""
				p.skipLine()
				continue
			}
			section = s
		case isConfigKeyChar(ch):
			key := p.key()
			val, ok := "true", true
			p.skipSpace()
			if p.peek() == '=' {
				p.i++
				val, ok = p.value()
			} else {
				p.skipLine()
			}
			if ok && section != "" {
				name := section + "." + strings.ToLower(key)
				if _, seen := c.values[name]; !seen {
					c.order = append(c.order, name)
				}
				c.values[name] = append(c.values[name], val)
			}
		default:
			p.skipLine()
		}
	}
	return c
}

type configParser struct {
	data []byte
	i    int
}

func (p *configParser) eof() bool { return p.i >= len(p.data) }

func (p *configParser) peek() byte {
	if p.eof() {
		return '\n'
	}
	return p.data[p.i]
}

func (p *configParser) skipSpace() {
	for !p.eof() && (p.data[p.i] == ' ' || p.data[p.i] == '\t' || p.data[p.i] == '\r') {
		p.i++
	}
}

func (p *configParser) skipLine() {
	if j := bytes.IndexByte(p.data[p.i:], '\n'); j >= 0 {
		p.i += j + 1
	} else {
		p.i = len(p.data)
	}
}

func isConfigKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_'
}

// section reads a section header and returns the lookup prefix.
func (p *configParser) section() (string, bool) {
	p.i++ // [
	start := p.i
	for !p.eof() && isConfigKeyChar(p.data[p.i]) {
		p.i++
	}
	name := strings.ToLower(string(p.data[start:p.i]))
	if name == "" {
		return "", false
	}
	switch p.peek() {
	case ']':
		p.i++
		// [section.subsection], the old form: all lower case.
		return name, true
	case ' ', '\t':
		p.skipSpace()
		if p.peek() != '"' {
			return "", false
		}
		p.i++
		var sub []byte
		for {
			if p.eof() || p.data[p.i] == '\n' {
				return "", false
			}
			c := p.data[p.i]
			p.i++
			if c == '"' {
				break
			}
			if c == '\\' && !p.eof() && p.data[p.i] != '\n' {
				c = p.data[p.i]
				p.i++
			}
			sub = append(sub, c)
		}
		if p.peek() != ']' {
			return "", false
		}
		p.i++
		return name + "." + string(sub), true
	}
	return "", false
}

func (p *configParser) key() string {
	start := p.i
	for !p.eof() && isConfigKeyChar(p.data[p.i]) && p.data[p.i] != '.' {
		p.i++
	}
	return string(p.data[start:p.i])
}

// value reads from after "=" to the end of the line (or of the lines
// joined with a trailing backslash).
func (p *configParser) value() (string, bool) {
	var out []byte
	quoted := false
	pendingSpace := 0 // whitespace kept only when more value follows
	p.skipSpace()
	for {
		if p.eof() {
			return string(out), !quoted
		}
		c := p.data[p.i]
		p.i++
		switch {
		case c == '\n':
			return string(out), !quoted
		case c == '\r' && p.peek() == '\n':
			continue
		case !quoted && (c == '#' || c == ';'):
			p.skipLine()
			return string(out), true
		case !quoted && (c == ' ' || c == '\t'):
			if len(out) > 0 {
				pendingSpace++
			}
			continue
		case c == '"':
			quoted = !quoted
		case c == '\\':
			if p.eof() {
				return "", false
			}
			e := p.data[p.i]
			p.i++
			switch e {
			case '\n':
				continue // the line goes on
			case '\r':
				if p.peek() == '\n' {
					p.i++
					continue
				}
				return "", false
			case 'n':
				e = '\n'
			case 't':
				e = '\t'
			case 'b':
				e = '\b'
			case '\\', '"':
			default:
				p.skipLine()
				return "", false
			}
			out = appendPending(out, &pendingSpace)
			out = append(out, e)
		default:
			out = appendPending(out, &pendingSpace)
			out = append(out, c)
		}
		if c == '"' {
			out = appendPending(out, &pendingSpace)
		}
	}
}

func appendPending(out []byte, n *int) []byte {
	for ; *n > 0; *n-- {
		out = append(out, ' ')
	}
	return out
}
