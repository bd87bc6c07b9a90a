package childapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// decodeJSON decodes one JSON value. Integers stay exact (int64) where they
// fit; other numbers become float64.
func decodeJSON(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("not valid JSON: more than one value")
	}
	return normalize(v)
}

func normalize(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("number %s is out of range", x)
		}
		return f, nil
	case map[string]any:
		for k, e := range x {
			if strings.IndexByte(k, 0) >= 0 {
				// MongoDB's keys are C strings: no store could keep it.
				return nil, fmt.Errorf("key %q contains a NUL byte, which no store can keep", k)
			}
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
		return x, nil
	case []any:
		for i, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
		return x, nil
	}
	return v, nil
}

// Info returns a deep copy of the run's info dict.
func (s *Server) Info() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return observer.CloneValue(s.info).(map[string]any)
}

// MergeInfo sets top-level keys of the info dict, e.g. the "metrics"
// pointers Mongo's observer adds; they replace what was there.
func (s *Server) MergeInfo(m map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range m {
		s.info[k] = observer.CloneValue(v)
	}
}

// Result returns the last result the child reported (or SetResult set) and
// whether there is one; a null result is (nil, true).
func (s *Server) Result() (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return observer.CloneValue(s.result), s.hasRes
}

// SetResult replaces the result, as a later report of the child would.
func (s *Server) SetResult(v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.result, s.hasRes = observer.CloneValue(v), true
}

// maxResultFile bounds what --result-file reads into memory.
const maxResultFile = 64 << 20

// ReadResultFile reads the JSON result a child left in a file
// (--result-file), read after the child exits. It never blocks for long:
// anything but a regular file is refused, and a read that does not finish
// within resultFileWait (a hung network file system) is given up.
func ReadResultFile(path string) (any, error) {
	return readResultFile(path, resultFileWait)
}

func readResultFile(path string, wait time.Duration) (any, error) {
	type read struct {
		b   []byte
		err error
	}
	done := make(chan read, 1) // the reader never blocks on it, even when abandoned
	go func() {
		b, err := readResultBytes(path)
		done <- read{b, err}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	var r read
	select {
	case r = <-done:
	case <-t.C:
		return nil, fmt.Errorf("result file %s: reading it did not finish within %v; result not recorded", path, wait)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(bytes.TrimSpace(r.b)) == 0 {
		return nil, fmt.Errorf("result file %s is empty; write one JSON value", path)
	}
	v, err := decodeJSON(r.b)
	if err != nil {
		return nil, fmt.Errorf("result file %s: %w", path, err)
	}
	return v, nil
}

func readResultBytes(path string) ([]byte, error) {
	f, st, err := openRegular(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("result file %s does not exist (did the child write it?)", path)
		}
		return nil, fmt.Errorf("result file: %w", err)
	}
	defer f.Close()
	if st.Size() > maxResultFile {
		return nil, tooLarge(path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxResultFile+1))
	if err != nil {
		return nil, fmt.Errorf("read result file %s: %w", path, err)
	}
	if len(b) > maxResultFile {
		return nil, tooLarge(path)
	}
	return b, nil
}

func tooLarge(path string) error {
	return fmt.Errorf("result file %s is larger than %d MiB; write a smaller result and store the rest as an artifact", path, maxResultFile>>20)
}
