package tinydb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// index is where things are in one version of metadata.json: enough to
// splice a document in or out without decoding the others. Offsets are
// byte offsets into the file.
type index struct {
	// blank is set for a missing or empty (0-byte) file, which TinyDB
	// reads as an empty database.
	blank bool
	// topClose is the offset of the top-level object's closing brace;
	// topEmpty tells whether that object has no members.
	topClose int64
	topEmpty bool
	// runs is the "runs" table, nil when the file has none.
	runs *table
}

// table is one TinyDB table: an object of documents keyed by doc id.
type table struct {
	close int64 // offset of the closing brace
	docs  []docEntry
	// maxID is the largest integer doc id, 0 for none; TinyDB inserts
	// the next document as maxID+1.
	maxID int64
}

// docEntry is one document of a table.
type docEntry struct {
	key        string // the doc id as written (decoded)
	start, end int64  // the document's value: [start, end)
	// runID is the document's "_id" as text (a string's value, or the
	// JSON of anything else); hasRunID tells whether it has one.
	runID    string
	hasRunID bool
}

// find returns the position of the last document with doc id key (Python
// keeps the last of duplicate keys), or -1.
func (t *table) find(key string) int {
	for i := len(t.docs) - 1; i >= 0; i-- {
		if t.docs[i].key == key {
			return i
		}
	}
	return -1
}

// hasRun tells whether a document has run id id.
func (t *table) hasRun(id string) bool {
	for i := range t.docs {
		if t.docs[i].hasRunID && t.docs[i].runID == id {
			return true
		}
	}
	return false
}

// shift moves every offset at or after from by delta: the bytes before
// from are unchanged, the ones after it moved.
func (ix *index) shift(from, delta int64) {
	if ix.topClose >= from {
		ix.topClose += delta
	}
	if ix.runs == nil {
		return
	}
	if ix.runs.close >= from {
		ix.runs.close += delta
	}
	for i := range ix.runs.docs {
		d := &ix.runs.docs[i]
		if d.start >= from {
			d.start += delta
			d.end += delta
		}
	}
}

// syntaxError is a place where metadata.json is not what json.load and
// TinyDB accept.
type syntaxError struct {
	off       int64
	line, col int
	msg       string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("%s at byte %d (line %d, column %d)", e.msg, e.off, e.line, e.col)
}

// scanIndex reads the structure of a TinyDB file, checking all of it with
// Python's json rules (NaN and Infinity allowed, no control characters in
// strings), and records where the tables and documents of "runs" lie.
func scanIndex(b []byte) (*index, error) {
	if len(b) == 0 {
		return &index{blank: true}, nil
	}
	s := &scanner{b: b}
	s.ws()
	if s.pos >= len(b) {
		return nil, s.fail("the file holds only white space, no JSON")
	}
	if b[s.pos] != '{' {
		return nil, s.fail("the top level is not a JSON object (TinyDB needs {\"runs\": {...}})")
	}
	ix := &index{}
	s.pos++
	s.ws()
	ix.topEmpty = s.peek() == '}'
	err := s.members(func(key []byte, raw bool) error {
		if !isKey(key, raw, RunsTable) {
			return s.skipValue(1)
		}
		t, err := s.table()
		if err != nil {
			return err
		}
		ix.runs = t // the last of duplicate keys wins, as in Python
		return nil
	})
	if err != nil {
		return nil, err
	}
	ix.topClose = int64(s.pos - 1)
	s.ws()
	if s.pos != len(b) {
		return nil, s.fail("extra data after the top-level object")
	}
	return ix, nil
}

type scanner struct {
	b   []byte
	pos int
}

func (s *scanner) fail(msg string) error {
	line := 1 + bytes.Count(s.b[:s.pos], []byte{'\n'})
	col := s.pos - bytes.LastIndexByte(s.b[:s.pos], '\n')
	return &syntaxError{off: int64(s.pos), line: line, col: col, msg: msg}
}

func (s *scanner) eof() error {
	p := s.pos
	s.pos = len(s.b)
	err := s.fail("unexpected end of file (the file is truncated)")
	s.pos = p
	return err
}

func (s *scanner) peek() byte {
	if s.pos < len(s.b) {
		return s.b[s.pos]
	}
	return 0
}

func (s *scanner) ws() {
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// members walks the members of an object whose '{' was consumed, calling
// f with each key (raw bytes between the quotes; raw is false when the key
// has escapes) with the position at the start of the value. It consumes
// the closing '}'.
func (s *scanner) members(f func(key []byte, raw bool) error) error {
	s.ws()
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		if s.pos >= len(s.b) {
			return s.eof()
		}
		if s.b[s.pos] != '"' {
			return s.fail("expected a property name in double quotes")
		}
		start := s.pos + 1
		if err := s.skipString(); err != nil {
			return err
		}
		key := s.b[start : s.pos-1]
		s.ws()
		if s.pos >= len(s.b) {
			return s.eof()
		}
		if s.b[s.pos] != ':' {
			return s.fail("expected ':' after a property name")
		}
		s.pos++
		s.ws()
		if err := f(key, bytes.IndexByte(key, '\\') < 0); err != nil {
			return err
		}
		s.ws()
		if s.pos >= len(s.b) {
			return s.eof()
		}
		switch s.b[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.fail("expected ',' or '}' after a value")
		}
	}
}

// keyString decodes a property name (its bytes between the quotes,
// already checked by skipString), escapes included: "\u0072uns" is "runs"
// to Python too.
func keyString(key []byte, raw bool) string {
	if raw {
		return string(key)
	}
	v, _ := sacredjson.Unmarshal(append(append([]byte{'"'}, key...), '"'))
	s, _ := v.(string)
	return s
}

// isKey tells whether a property name is name, without allocating in the
// common case of a name without escapes.
func isKey(key []byte, raw bool, name string) bool {
	if raw {
		return string(key) == name
	}
	return keyString(key, raw) == name
}

// table reads the "runs" table: an object of documents.
func (s *scanner) table() (*table, error) {
	if s.pos >= len(s.b) {
		return nil, s.eof()
	}
	if s.b[s.pos] != '{' {
		return nil, s.fail(`the "runs" table is not a JSON object`)
	}
	s.pos++
	t := &table{}
	err := s.members(func(key []byte, raw bool) error {
		k := keyString(key, raw)
		d := docEntry{key: k, start: int64(s.pos)}
		if n, err := strconv.ParseInt(k, 10, 64); err == nil && n > t.maxID {
			t.maxID = n
		}
		if err := s.document(&d); err != nil {
			return err
		}
		d.end = int64(s.pos)
		t.docs = append(t.docs, d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.close = int64(s.pos - 1)
	return t, nil
}

// document skips one document, noting its "_id".
func (s *scanner) document(d *docEntry) error {
	if s.peek() != '{' {
		return s.skipValue(2)
	}
	s.pos++
	return s.members(func(key []byte, raw bool) error {
		if !isKey(key, raw, "_id") {
			return s.skipValue(3)
		}
		start := s.pos
		if err := s.skipValue(3); err != nil {
			return err
		}
		v := s.b[start:s.pos]
		d.hasRunID = true
		d.runID = string(v)
		if v[0] == '"' {
			if x, err := sacredjson.Unmarshal(v); err == nil {
				d.runID, _ = x.(string)
			}
		}
		return nil
	})
}

// maxDepth bounds nesting, as Python's recursion limit does.
const maxDepth = 5000

// skipValue skips one JSON value, checking it.
func (s *scanner) skipValue(depth int) error {
	if depth > maxDepth {
		return s.fail("values nested too deeply")
	}
	if s.pos >= len(s.b) {
		return s.eof()
	}
	switch c := s.b[s.pos]; c {
	case '{':
		s.pos++
		return s.members(func([]byte, bool) error { return s.skipValue(depth + 1) })
	case '[':
		s.pos++
		s.ws()
		if s.peek() == ']' {
			s.pos++
			return nil
		}
		for {
			s.ws()
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.pos >= len(s.b) {
				return s.eof()
			}
			switch s.b[s.pos] {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return nil
			default:
				return s.fail("expected ',' or ']' in an array")
			}
		}
	case '"':
		return s.skipString()
	case 't':
		return s.word("true")
	case 'f':
		return s.word("false")
	case 'n':
		return s.word("null")
	case 'N':
		return s.word("NaN")
	case 'I':
		return s.word("Infinity")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return s.number()
		}
		return s.fail(fmt.Sprintf("unexpected character %q", c))
	}
}

func (s *scanner) word(w string) error {
	if len(s.b)-s.pos < len(w) {
		if string(s.b[s.pos:]) == w[:len(s.b)-s.pos] {
			return s.eof()
		}
		return s.fail("unexpected characters (not a JSON value)")
	}
	if string(s.b[s.pos:s.pos+len(w)]) != w {
		return s.fail("unexpected characters (not a JSON value)")
	}
	s.pos += len(w)
	return nil
}

// number skips a number as Python's json reads it:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?, or -Infinity.
func (s *scanner) number() error {
	if s.b[s.pos] == '-' {
		s.pos++
		if s.peek() == 'I' {
			return s.word("Infinity")
		}
	}
	digits := func() int {
		n := 0
		for s.pos < len(s.b) && s.b[s.pos] >= '0' && s.b[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if s.pos >= len(s.b) {
		return s.eof()
	}
	if s.b[s.pos] == '0' {
		s.pos++
	} else if digits() == 0 {
		return s.fail("expected a digit")
	}
	if s.peek() == '.' {
		s.pos++
		if s.pos >= len(s.b) {
			return s.eof()
		}
		if digits() == 0 {
			return s.fail("expected a digit after '.'")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if s.pos >= len(s.b) {
			return s.eof()
		}
		if digits() == 0 {
			return s.fail("expected a digit in the exponent")
		}
	}
	return nil
}

// Word-at-a-time tests for the string loop: a byte of a word is '"',
// '\\' or below 0x20 (see "Bit Twiddling Hacks", haszero and hasless).
const (
	lows  = 0x0101010101010101
	highs = 0x8080808080808080
)

func specialIn(w uint64) bool {
	q, bs := w^(lows*'"'), w^(lows*'\\')
	return ((q-lows)&^q|(bs-lows)&^bs|(w-lows*0x20)&^w)&highs != 0
}

// skipString skips a string whose opening quote is at pos.
func (s *scanner) skipString() error {
	b := s.b
	for i := s.pos + 1; i < len(b); i++ {
		// Long runs of plain characters (outputs, traces) go 8 bytes at a
		// time.
		for i+8 <= len(b) && !specialIn(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			s.pos = i + 1
			return nil
		case c == '\\':
			if i+1 >= len(b) {
				return s.eof()
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+6 > len(b) {
					return s.eof()
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						s.pos = i
						return s.fail(`bad \u escape in a string`)
					}
				}
				i += 5
			default:
				s.pos = i
				return s.fail("bad escape in a string")
			}
		case c < 0x20:
			s.pos = i
			return s.fail("control character in a string (json.load refuses it)")
		}
	}
	return s.eof()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
