package cmdutil

import (
	"bytes"
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams are the standard streams of one invocation, as gh passes them
// to its commands: tests replace them with buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	inTTY, outTTY, errTTY bool
	width                 int // set by SetTerminalWidth
}

// System returns the process's own streams with their terminal state.
func System() *IOStreams {
	return &IOStreams{
		In:     os.Stdin,
		Out:    os.Stdout,
		ErrOut: os.Stderr,
		inTTY:  isTerminal(os.Stdin),
		outTTY: isTerminal(os.Stdout),
		errTTY: isTerminal(os.Stderr),
	}
}

// Test returns streams over buffers (stdin empty), none of them a
// terminal, and the buffers.
func Test() (s *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// IsStdinTTY, IsStdoutTTY and IsStderrTTY report whether the stream is a
// terminal.
func (s *IOStreams) IsStdinTTY() bool  { return s.inTTY }
func (s *IOStreams) IsStdoutTTY() bool { return s.outTTY }
func (s *IOStreams) IsStderrTTY() bool { return s.errTTY }

// SetTTY marks the streams as terminals or not (for tests).
func (s *IOStreams) SetTTY(in, out, err bool) { s.inTTY, s.outTTY, s.errTTY = in, out, err }

// TerminalWidth is the width in columns of the terminal standard output
// is on; 80 when it is no terminal or its size is unknown.
func (s *IOStreams) TerminalWidth() int {
	if s.width > 0 {
		return s.width
	}
	if f, ok := s.Out.(*os.File); ok && s.outTTY {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
	}
	return 80
}

// SetTerminalWidth fixes TerminalWidth (for tests).
func (s *IOStreams) SetTerminalWidth(w int) { s.width = w }

// OutFile and ErrFile return the streams as files when they are, for the
// runner, which hands them to the child or to a pseudo-terminal.
func (s *IOStreams) OutFile() (*os.File, bool) { f, ok := s.Out.(*os.File); return f, ok }
func (s *IOStreams) ErrFile() (*os.File, bool) { f, ok := s.ErrOut.(*os.File); return f, ok }

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
