package runner

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer/retry"
)

// TestEveryFailureIsADebugLine: stderr hears of the first failure of a
// spell and of the recovery; -d (Config.Debug) hears of every other
// failure too, so that each range of output sent again is named somewhere.
func TestEveryFailureIsADebugLine(t *testing.T) {
	for _, debug := range []bool{false, true} {
		var warn, dbg bytes.Buffer
		r := &run{warn: &warn, id: "4"}
		if debug {
			r.debug = &dbg
		}
		h := &health{}
		fail := func(n string) retry.Event {
			return retry.Event{Observer: "S3 s3://b", Op: "heartbeat", Err: errors.New("output bytes " + n + " not stored")}
		}
		r.reportStore(h, fail("0 to 10"))
		r.reportStore(h, fail("5 to 20"))
		r.reportStore(h, fail("9 to 30"))
		r.reportStore(h, retry.Event{Observer: "S3 s3://b", Op: "heartbeat"})
		if n := strings.Count(warn.String(), "\n"); n != 2 || !strings.Contains(warn.String(), "0 to 10") || !strings.Contains(warn.String(), "caught up") {
			t.Errorf("debug %v: stderr:\n%s\nwant the first failure and the recovery", debug, warn.String())
		}
		switch got := dbg.String(); {
		case !debug && got != "":
			t.Errorf("debug lines without -d: %q", got)
		case debug && (strings.Count(got, "\n") != 2 || !strings.Contains(got, "sacred: debug: observer S3 s3://b: could not record the heartbeat (info, result, output) of run 4 again: output bytes 5 to 20 not stored") || !strings.Contains(got, "9 to 30")):
			t.Errorf("debug lines:\n%s\nwant one for each failure after the first", got)
		}
	}
}
