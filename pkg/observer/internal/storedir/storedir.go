// Package storedir checks the directory value of a store kept in a local
// directory (-F DIR, -t DIR): what file storage and TinyDB share when
// their flag is parsed.
package storedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Abs checks dir, the value of a store's flag: not empty, no NUL byte, a
// directory or nothing yet (the observer creates it). It returns dir made
// absolute. Messages start with title; usage ("-F DIR") says how the flag
// is given; notDir ends the message for a path that is not a directory
// (empty, or "(...)" with a hint).
func Abs(title, usage, notDir, dir string) (string, error) {
	if strings.TrimSpace(dir) == "" {
		return "", fmt.Errorf("%s: the directory is empty (use %s)", title, usage)
	}
	if strings.ContainsRune(dir, 0) {
		return "", fmt.Errorf("%s: the directory %q contains a NUL byte", title, dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%s: directory %q: %w", title, dir, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err == nil && !fi.IsDir():
		if notDir != "" {
			notDir = " " + notDir
		}
		return "", fmt.Errorf("%s: %s exists and is not a directory%s", title, dir, notDir)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("%s: checking directory %s: %w", title, dir, err)
	}
	return abs, nil
}
