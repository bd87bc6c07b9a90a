package runcmd

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// logger prints the wrapper's own messages on stderr, filtered by -l.
type logger struct {
	w     io.Writer
	level int
}

const (
	levelDebug = 10
	levelInfo  = 20
	levelWarn  = 30
	levelError = 40
)

func (o *RunOptions) logger() *logger {
	return &logger{w: o.messageOut(), level: levelOf(o.LogLevel, o.Debug)}
}

// messageOut is where sacred's own messages go: stderr, or the quiet
// buffer under --quiet-unless-fail.
func (o *RunOptions) messageOut() io.Writer {
	switch {
	case o.quiet != nil:
		return o.quiet
	case o.Stderr != nil:
		return o.Stderr
	case o.IO != nil:
		return o.IO.ErrOut
	}
	return os.Stderr
}

func levelOf(s string, debug bool) int {
	if debug {
		return levelDebug
	}
	switch strings.ToLower(s) {
	case "debug", "10":
		return levelDebug
	case "warning", "warn", "30":
		return levelWarn
	case "error", "40":
		return levelError
	}
	return levelInfo
}

func (l *logger) logf(level int, prefix, format string, args ...any) {
	if level >= l.level {
		fmt.Fprintf(l.w, "sacred: "+prefix+format+"\n", args...)
	}
}
func (l *logger) debugf(format string, args ...any) { l.logf(levelDebug, "debug: ", format, args...) }
func (l *logger) infof(format string, args ...any)  { l.logf(levelInfo, "", format, args...) }
func (l *logger) warnf(format string, args ...any)  { l.logf(levelWarn, "", format, args...) }
func (l *logger) errorf(format string, args ...any) { l.logf(levelError, "", format, args...) }

// infoWriter is where the runner's informational lines go: stderr at info
// level and below, nowhere above.
func (l *logger) infoWriter() io.Writer {
	if l.level <= levelInfo {
		return l.w
	}
	return io.Discard
}

// debugWriter is where the runner's debug lines go: stderr with -d (or
// -l debug), nowhere otherwise.
func (l *logger) debugWriter() io.Writer {
	if l.level <= levelDebug {
		return l.w
	}
	return nil
}
