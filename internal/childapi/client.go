package childapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// ErrNotInRun is returned by Dial outside a sacred run.
var ErrNotInRun = errors.New("not inside a sacred run (SACRED_SOCKET is not set); run the command under `sacred run -- ...`")

// Client sends messages to the wrapper of the current run. Messages are
// buffered: Sync or Close makes sure the wrapper has processed them.
type Client struct {
	conn *net.UnixConn
	w    *bufio.Writer
	r    *bufio.Reader
}

// Dial connects to the socket named in SACRED_SOCKET.
func Dial() (*Client, error) {
	p := os.Getenv(EnvSocket)
	if p == "" {
		return nil, ErrNotInRun
	}
	return DialPath(p)
}

// DialPath connects to the socket at path.
func DialPath(path string) (*Client, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("cannot reach the sacred run at %s (has it ended?): %w", path, err)
	}
	return &Client{conn: c, w: bufio.NewWriterSize(c, 64<<10), r: bufio.NewReader(c)}, nil
}

// Send queues one message, e.g. {"kind": "metric", "name": "loss",
// "value": 0.3}. Values that JSON cannot carry (NaN, Inf) are an error.
func (c *Client) Send(msg map[string]any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	return c.WriteLine(b)
}

// WriteLine queues one already encoded JSON object; a newline is added.
func (c *Client) WriteLine(b []byte) error {
	if _, err := c.w.Write(b); err != nil {
		return fmt.Errorf("send to sacred: %w", err)
	}
	if err := c.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("send to sacred: %w", err)
	}
	return nil
}

// Sync returns once the wrapper has processed every message sent so far
// (artifacts are copied by then, so the file may be deleted).
func (c *Client) Sync() error {
	if err := c.WriteLine([]byte(`{"kind":"sync"}`)); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("send to sacred: %w", err)
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("wait for sacred: %w", err)
	}
	if string(line) != string(syncReply) {
		return fmt.Errorf("wait for sacred: unexpected reply %q", line)
	}
	return nil
}

// Close sends what is buffered, waits until the wrapper has processed it
// and closes the connection.
func (c *Client) Close() error {
	err := c.w.Flush()
	if err == nil {
		// Half-close: the server reads to EOF, handles every line, then
		// closes its side, which we wait for.
		err = c.conn.CloseWrite()
		if err == nil {
			_, err = io.Copy(io.Discard, c.r)
		}
	}
	if cerr := c.conn.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("send to sacred: %w", err)
	}
	return nil
}

// Writer is the raw connection, for forwarding bytes that are already
// protocol lines (`sacred log stream`). Do not mix it with buffered Sends
// without a Sync in between.
func (c *Client) Writer() io.Writer { return c.conn }
