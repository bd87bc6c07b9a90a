// Package layout is Sacred's file-storage layout, written once for every
// store that keeps runs as files or blobs under a base directory or prefix:
// the file-storage observer (-F) today, S3, GCS and observers of your own
// later.
//
//	BASE/
//	  _sources/<stem>_<md5><ext>      shared copies of source files, one per content
//	  _resources/<stem>_<md5><ext>    shared copies of resources, one per content
//	  template.html                   optional report template
//	  1/ 2/ 3/ ...                    one directory (prefix) per run
//	     run.json  config.json  cout.txt  [info.json]  [metrics.json]  [report.<ext>]  <artifacts...>
//
// The package does no I/O of its own: it names things (the constants,
// SharedName, CheckArtifactName, NextID), builds the records (Run, the
// metrics.json writer) and reads them back (ReadRun, ReadMetrics). The
// JSON bytes are those of pkg/sacredjson, as Python's json.dump(obj,
// sort_keys=True, indent=2) writes them. See docs/observers/file.md.
package layout

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// Names of the shared directories and of the files of a run directory.
const (
	SourcesDir   = "_sources"
	ResourcesDir = "_resources"
	TemplateName = "template.html"

	RunFile     = "run.json"
	ConfigFile  = "config.json"
	InfoFile    = "info.json"
	MetricsFile = "metrics.json"
	CoutFile    = "cout.txt"

	// ReportStem is the stem of the rendered report: report<template ext>.
	ReportStem = "report"
)

// MaxIDTries is how often Sacred increments a colliding run id before it
// gives up.
const MaxIDTries = 1000

// FormatTime writes t as Sacred's file storage does: naive UTC
// isoformat(), always with microseconds (see sacredjson.FormatTime).
func FormatTime(t time.Time) string { return sacredjson.FormatTime(t) }

// ParseTime reads a time written by FormatTime or by Python's isoformat().
func ParseTime(s string) (time.Time, error) { return sacredjson.ParseTime(s) }

// SplitExt splits a file name as Python's pathlib does for stem and
// suffix: the suffix starts at the last dot, unless that dot is the first
// or the last character ("a.tar.gz" -> "a.tar", ".gz"; ".bashrc" ->
// ".bashrc", "").
func SplitExt(name string) (stem, ext string) {
	i := strings.LastIndexByte(name, '.')
	if i > 0 && i < len(name)-1 {
		return name[:i], name[i:]
	}
	return name, ""
}

// SharedName is the name of a shared copy in _sources or _resources:
// "<stem>_<md5><ext>" of the base name of p (slash or OS separators).
func SharedName(p, md5 string) string {
	stem, ext := SplitExt(baseName(p))
	return stem + "_" + md5 + ext
}

// MD5FromSharedName takes the md5 out of "<dir>/<stem>_<md5><ext>", or
// returns "".
func MD5FromSharedName(p string) string {
	stem, _ := SplitExt(baseName(p))
	if i := strings.LastIndexByte(stem, '_'); i >= 0 && IsMD5(stem[i+1:]) {
		return stem[i+1:]
	}
	return ""
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// IsMD5 reports a lowercase hex md5.
func IsMD5(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// JoinPath joins like Python's pathlib: "." components, repeated and
// trailing slashes vanish, ".." stays. Sacred builds the recorded store
// path of resources this way from the base directory as the user gave it.
func JoinPath(base string, elems ...string) string {
	abs := strings.HasPrefix(base, "/")
	var parts []string
	for _, p := range append([]string{base}, elems...) {
		for _, c := range strings.Split(p, "/") {
			if c != "" && c != "." {
				parts = append(parts, c)
			}
		}
	}
	joined := strings.Join(parts, "/")
	if abs {
		return "/" + joined
	}
	if joined == "" {
		return "."
	}
	return joined
}

// IsNumericID reports a run id made of digits only, the ids Sacred chooses.
func IsNumericID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// NextID is the id Sacred chooses for a new run among the existing run
// names: the largest numeric one + 1, or 1. A store then creates it
// exclusively and, on a collision, tries the next number (MaxIDTries
// times), without listing again.
func NextID(names []string) uint64 {
	var maxID uint64
	for _, n := range names {
		if !IsNumericID(n) {
			continue
		}
		if v, err := strconv.ParseUint(n, 10, 64); err == nil && v > maxID {
			maxID = v
		}
	}
	return maxID + 1
}

// CompareIDs orders run ids as readers list them: numeric ids in numeric
// order first (Sacred's ids count up, so that is oldest first), then the
// others (given with -i) by name.
func CompareIDs(a, b string) int {
	an, bn := IsNumericID(a), IsNumericID(b)
	switch {
	case an && bn:
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			return len(a) - len(b)
		}
	case an:
		return -1
	case bn:
		return 1
	}
	return strings.Compare(a, b)
}

// CheckID refuses run ids that are not a single directory name.
func CheckID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") {
		return fmt.Errorf("%q cannot be a run id (it must be a plain directory name)", id)
	}
	return nil
}

// ReservedNames are the files of a run directory an artifact may not
// replace (Sacred refuses the first four; info.json and the report are ours
// too).
var ReservedNames = []string{RunFile, ConfigFile, CoutFile, MetricsFile, InfoFile}

// CheckArtifactName checks an artifact name and returns it cleaned
// (path.Clean), relative to the run directory. Names may contain "/"
// (subdirectories) but may not be absolute, leave the run directory, or
// replace one of the run's own files. A store on a local file system also
// checks the result with filepath.IsLocal for its own platform's rules.
func CheckArtifactName(name string) (string, error) {
	if name == "" {
		return "", errors.New("the artifact name is empty")
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("the artifact name %q contains a NUL byte", name)
	}
	if strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) {
		return "", fmt.Errorf("the artifact name %q is absolute; it must be relative to the run directory", name)
	}
	clean := path.Clean(name)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("the artifact name %q leaves the run directory", name)
	}
	if !strings.Contains(clean, "/") {
		for _, r := range ReservedNames {
			if strings.EqualFold(clean, r) {
				return "", fmt.Errorf("the artifact name %q would overwrite the run's own %s", name, r)
			}
		}
		if stem, _ := SplitExt(clean); strings.EqualFold(stem, ReportStem) {
			return "", fmt.Errorf("the artifact name %q is reserved for the template report", name)
		}
	}
	return clean, nil
}
