package query

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SyntaxError is a malformed expression: where it is and what is wrong.
// Error gives one line; Context gives the expression's line with a caret
// under the column, for a terminal.
type SyntaxError struct {
	Line, Column int // 1-based; columns count characters, not bytes
	Msg          string
	src          string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// Context returns the line of the expression the error is on and a caret
// line pointing at the column, without a trailing newline.
func (e *SyntaxError) Context() string {
	lines := strings.Split(e.src, "\n")
	if e.Line < 1 || e.Line > len(lines) {
		return ""
	}
	l := strings.Map(func(r rune) rune {
		if r == '\t' {
			return ' ' // a tab would shift the caret
		}
		return r
	}, lines[e.Line-1])
	return "  " + l + "\n  " + strings.Repeat(" ", e.Column-1) + "^"
}

// The expression language's syntax tree. Every node knows the byte offset
// it starts at, for errors.
type node interface{ offset() int }

type (
	litNode struct {
		at int
		v  any // float64, string, bool or nil
	}
	listNode struct {
		at    int
		elems []any // literal values only
	}
	pathNode struct {
		at   int
		segs []string
	}
	callNode struct {
		at   int
		fn   string
		path *pathNode // the only argument of every function we have
	}
	notNode struct {
		at int
		x  node
	}
	andNode struct{ l, r node }
	orNode  struct{ l, r node }
	cmpNode struct {
		at   int
		op   string // == != < <= > >= =~ !~ in "not in"
		l, r node
		re   *regexp.Regexp // compiled right side of =~ and !~
	}
)

func (n *litNode) offset() int  { return n.at }
func (n *listNode) offset() int { return n.at }
func (n *pathNode) offset() int { return n.at }
func (n *callNode) offset() int { return n.at }
func (n *notNode) offset() int  { return n.at }
func (n *andNode) offset() int  { return n.l.offset() }
func (n *orNode) offset() int   { return n.l.offset() }
func (n *cmpNode) offset() int  { return n.l.offset() }

// functions is the whole whitelist of callable names.
var functions = map[string]string{
	"exists": "exists(PATH) is true when the field is present, even if null",
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tString
	tOp // operators and punctuation
)

type token struct {
	kind tokKind
	text string // the source text (for strings: the decoded value)
	at   int    // byte offset
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return strconv.Quote(t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

type parser struct {
	src  string
	toks []token
	i    int
}

// parseExpr parses a whole --where expression.
func parseExpr(src string) (node, error) {
	p := &parser{src: src}
	if err := p.lex(); err != nil {
		return nil, err
	}
	if p.peek().kind == tEOF {
		return nil, p.errAt(0, "empty expression; write a condition such as status == \"COMPLETED\"")
	}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t.at, "unexpected %s after a complete condition; join conditions with && or ||", t.describe())
	}
	return n, nil
}

// parsePath parses a lone field path (a --sort key or a --columns entry).
func parsePath(src string) (*pathNode, error) {
	p := &parser{src: src}
	if err := p.lex(); err != nil {
		return nil, err
	}
	t := p.peek()
	if t.kind != tIdent {
		return nil, p.errAt(t.at, "expected a field such as config.lr or result, found %s", t.describe())
	}
	n, err := p.path()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t.at, "unexpected %s after the field", t.describe())
	}
	return n, nil
}

func (p *parser) errAt(off int, format string, args ...any) error {
	if off > len(p.src) {
		off = len(p.src)
	}
	line := 1 + strings.Count(p.src[:off], "\n")
	start := strings.LastIndex(p.src[:off], "\n") + 1
	col := 1 + utf8.RuneCountInString(p.src[start:off])
	return &SyntaxError{Line: line, Column: col, Msg: fmt.Sprintf(format, args...), src: p.src}
}

var ops = []string{"==", "!=", "<=", ">=", "=~", "!~", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",", ".", "-"}

func (p *parser) lex() error {
	s := p.src
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return p.errAt(i, "the expression is not valid UTF-8")
		case unicode.IsSpace(r):
			i += size
		case r == '_' || unicode.IsLetter(r):
			j := i + size
			for j < len(s) {
				r, n := utf8.DecodeRuneInString(s[j:])
				if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					break
				}
				j += n
			}
			p.toks = append(p.toks, token{tIdent, s[i:j], i})
			i = j
		case r >= '0' && r <= '9':
			j := i
			for j < len(s) && (isDigit(s[j]) || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
				((s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E'))) {
				j++
			}
			// A path segment after a dot is a plain integer: "layers.0.size"
			// must not lex "0." as a number.
			if len(p.toks) > 0 && p.toks[len(p.toks)-1].text == "." && p.toks[len(p.toks)-1].kind == tOp {
				j = i
				for j < len(s) && isDigit(s[j]) {
					j++
				}
			}
			p.toks = append(p.toks, token{tNumber, s[i:j], i})
			i = j
		case r == '"' || r == '\'':
			v, n, err := unquote(s[i:])
			if err != nil {
				return p.errAt(i+n, "%s", err.Error())
			}
			p.toks = append(p.toks, token{tString, v, i})
			i += n
		default:
			found := false
			for _, op := range ops {
				if strings.HasPrefix(s[i:], op) {
					p.toks = append(p.toks, token{tOp, op, i})
					i += len(op)
					found = true
					break
				}
			}
			if !found {
				hint := ""
				switch r {
				case '=':
					hint = "; compare with =="
				case '&':
					hint = "; write && or and"
				case '|':
					hint = "; write || or or"
				}
				return p.errAt(i, "unexpected character %q%s", r, hint)
			}
		}
	}
	p.toks = append(p.toks, token{kind: tEOF, at: len(s)})
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// unquote decodes a string literal in double or single quotes with the
// escapes \" \' \\ \/ \n \t \r \b \f \uXXXX. It returns the length
// consumed, or on error the offset of the problem within s.
func unquote(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	i := 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\n':
			return "", 0, fmt.Errorf("unterminated string (a string ends on the line it starts)")
		case c == '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated string")
			}
			e := s[i+1]
			switch e {
			case '"', '\'', '\\', '/':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'u':
				if i+6 > len(s) {
					return "", i, fmt.Errorf(`\u needs four hex digits`)
				}
				v, err := strconv.ParseUint(s[i+2:i+6], 16, 16)
				if err != nil {
					return "", i, fmt.Errorf(`\u needs four hex digits`)
				}
				b.WriteRune(rune(v))
				i += 6
				continue
			default:
				return "", i, fmt.Errorf("unknown escape \\%c in string", e)
			}
			i += 2
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// word reports whether t is the keyword w (keywords are case-insensitive).
func word(t token, w string) bool { return t.kind == tIdent && strings.EqualFold(t.text, w) }

func (p *parser) or() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); (t.kind == tOp && t.text == "||") || word(t, "or"); t = p.peek() {
		p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &orNode{l, r}
	}
	return l, nil
}

func (p *parser) and() (node, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); (t.kind == tOp && t.text == "&&") || word(t, "and"); t = p.peek() {
		p.next()
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = &andNode{l, r}
	}
	return l, nil
}

// not binds looser than a comparison, as Python's not does:
// !config.x == 1 is !(config.x == 1).
func (p *parser) not() (node, error) {
	if t := p.peek(); (t.kind == tOp && t.text == "!") || word(t, "not") {
		p.next()
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return &notNode{at: t.at, x: x}, nil
	}
	return p.cmp()
}

func (p *parser) cmpOp() (string, token, bool) {
	t := p.peek()
	if t.kind == tOp {
		switch t.text {
		case "==", "!=", "<", "<=", ">", ">=", "=~", "!~":
			return t.text, t, true
		}
	}
	if word(t, "in") {
		return "in", t, true
	}
	if word(t, "not") && word(p.toks[p.i+1], "in") {
		return "not in", t, true
	}
	return "", t, false
}

func (p *parser) cmp() (node, error) {
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	op, t, ok := p.cmpOp()
	if !ok {
		return l, nil
	}
	p.next()
	if op == "not in" {
		p.next()
	}
	r, err := p.operand()
	if err != nil {
		return nil, err
	}
	c := &cmpNode{at: t.at, op: op, l: l, r: r}
	switch op {
	case "=~", "!~":
		lit, ok := r.(*litNode)
		s, isStr := "", false
		if ok {
			s, isStr = lit.v.(string)
		}
		if !isStr {
			return nil, p.errAt(r.offset(), "%s needs a regular expression in quotes on its right, e.g. name =~ \"^mnist\"", op)
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, p.errAt(r.offset(), "invalid regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		c.re = re
	case "in", "not in":
		if _, ok := r.(*listNode); !ok {
			return nil, p.errAt(r.offset(), "%s needs a list on its right, e.g. status in [\"FAILED\", \"DIED?\"]", op)
		}
	}
	if op2, t2, ok := p.cmpOp(); ok {
		return nil, p.errAt(t2.at, "comparisons cannot be chained (%s after %s); join them with &&", op2, op)
	}
	return c, nil
}

func (p *parser) operand() (node, error) {
	t := p.peek()
	switch t.kind {
	case tEOF:
		return nil, p.errAt(t.at, "unexpected end of expression; expected a value or a field")
	case tNumber:
		p.next()
		return p.number(t, false)
	case tString:
		p.next()
		return &litNode{at: t.at, v: t.text}, nil
	case tIdent:
		switch strings.ToLower(t.text) {
		case "true", "false":
			p.next()
			return &litNode{at: t.at, v: strings.EqualFold(t.text, "true")}, nil
		case "null":
			p.next()
			return &litNode{at: t.at, v: nil}, nil
		case "and", "or", "not", "in":
			return nil, p.errAt(t.at, "unexpected %s; expected a value or a field", t.describe())
		}
		if n := p.toks[p.i+1]; n.kind == tOp && n.text == "(" {
			return p.call()
		}
		return p.path()
	case tOp:
		switch t.text {
		case "(":
			p.next()
			n, err := p.or()
			if err != nil {
				return nil, err
			}
			if c := p.next(); c.kind != tOp || c.text != ")" {
				return nil, p.errAt(c.at, "expected \")\" to close the \"(\" at column %d, found %s", p.column(t.at), c.describe())
			}
			return n, nil
		case "[":
			return p.list()
		case "-":
			p.next()
			if n := p.peek(); n.kind == tNumber && n.at == t.at+1 {
				p.next()
				return p.number(n, true)
			}
			return nil, p.errAt(t.at, "unexpected \"-\"; only a number can be negative, e.g. -0.5")
		}
	}
	return nil, p.errAt(t.at, "unexpected %s; expected a value or a field", t.describe())
}

func (p *parser) column(off int) int {
	start := strings.LastIndex(p.src[:off], "\n") + 1
	return 1 + utf8.RuneCountInString(p.src[start:off])
}

func (p *parser) number(t token, neg bool) (node, error) {
	f, err := strconv.ParseFloat(t.text, 64)
	if err != nil {
		return nil, p.errAt(t.at, "malformed number %q", t.text)
	}
	if neg {
		f = -f
	}
	return &litNode{at: t.at, v: f}, nil
}

func (p *parser) list() (node, error) {
	open := p.next()
	l := &listNode{at: open.at, elems: []any{}}
	if t := p.peek(); t.kind == tOp && t.text == "]" {
		p.next()
		return l, nil
	}
	for {
		n, err := p.operand()
		if err != nil {
			return nil, err
		}
		lit, ok := n.(*litNode)
		if !ok {
			return nil, p.errAt(n.offset(), "a list holds only literal values (numbers, strings, true, false, null)")
		}
		l.elems = append(l.elems, lit.v)
		t := p.next()
		if t.kind == tOp && t.text == "]" {
			return l, nil
		}
		if t.kind != tOp || t.text != "," {
			return nil, p.errAt(t.at, "expected \",\" or \"]\" in the list, found %s", t.describe())
		}
	}
}

func (p *parser) call() (node, error) {
	name := p.next()
	if _, ok := functions[strings.ToLower(name.text)]; !ok {
		return nil, p.errAt(name.at, "unknown function %q; the only function is exists(PATH)", name.text)
	}
	p.next() // "("
	t := p.peek()
	if t.kind != tIdent {
		return nil, p.errAt(t.at, "%s() takes a field, e.g. exists(config.lr); found %s", strings.ToLower(name.text), t.describe())
	}
	path, err := p.path()
	if err != nil {
		return nil, err
	}
	if c := p.next(); c.kind != tOp || c.text != ")" {
		return nil, p.errAt(c.at, "expected \")\" after the field of %s(), found %s", strings.ToLower(name.text), c.describe())
	}
	return &callNode{at: name.at, fn: strings.ToLower(name.text), path: path}, nil
}

// path parses NAME { "." (NAME | INTEGER) | "[" STRING "]" }.
func (p *parser) path() (*pathNode, error) {
	t := p.next()
	n := &pathNode{at: t.at, segs: []string{t.text}}
	for {
		s := p.peek()
		if s.kind != tOp || (s.text != "." && s.text != "[") {
			return n, nil
		}
		p.next()
		if s.text == "." {
			k := p.next()
			if k.kind != tIdent && (k.kind != tNumber || !allDigits(k.text)) {
				return nil, p.errAt(k.at, "expected a key after \".\", found %s; write other keys as config[\"my-key\"]", k.describe())
			}
			n.segs = append(n.segs, k.text)
			continue
		}
		k := p.next()
		if k.kind != tString {
			return nil, p.errAt(k.at, "expected a key in quotes after \"[\", e.g. config[\"my-key\"], found %s", k.describe())
		}
		if c := p.next(); c.kind != tOp || c.text != "]" {
			return nil, p.errAt(c.at, "expected \"]\" after the key, found %s", c.describe())
		}
		n.segs = append(n.segs, k.text)
	}
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
