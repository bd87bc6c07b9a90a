package mongo

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// replyDropper is a TCP proxy in front of the server that can lose the
// reply to a chosen command: the server has done the work, the client sees
// a broken connection. It is the failure after which a store cannot know
// whether its write went through, and must store nothing twice when the
// call comes again.
type replyDropper struct {
	l      net.Listener
	target string

	mu sync.Mutex
	// seen counts the application commands (not the driver's own hello,
	// ping, ...) since lose was called; the replies to those whose number
	// is in drop are lost.
	seen    int
	cmds    []string // the commands seen since lose was called
	drop    map[int]bool
	dropAll map[string]bool // commands whose replies are all lost
	hold    bool            // replies to application commands never come
	dropped []string
	conns   []net.Conn
}

func newReplyDropper(t *testing.T, target string) *replyDropper {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &replyDropper{l: l, target: target}
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

// lose arms the proxy: the replies to the n-th application commands from
// now on are lost (none for lose()).
func (p *replyDropper) lose(ns ...int) {
	p.mu.Lock()
	p.seen, p.cmds, p.drop, p.dropAll = 0, nil, map[int]bool{}, nil
	for _, n := range ns {
		p.drop[n] = true
	}
	p.mu.Unlock()
}

// loseEvery loses the replies to every cmd command until lose is called.
func (p *replyDropper) loseEvery(cmd string) {
	p.mu.Lock()
	if p.dropAll == nil {
		p.dropAll = map[string]bool{}
	}
	p.dropAll[cmd] = true
	p.mu.Unlock()
}

// commands returns the commands seen since lose was called.
func (p *replyDropper) commands() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.cmds...)
}

// lost returns the commands whose reply was lost since the last call.
func (p *replyDropper) lost() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.dropped
	p.dropped = nil
	return d
}

func (p *replyDropper) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		drop := make(chan int32, 16) // request ids whose reply is lost
		hold := make(chan int32, 16) // request ids whose reply never comes
		go p.requests(c, s, drop, hold)
		go p.replies(s, c, drop, hold)
	}
}

// driverCommands are sent by the driver on its own: they do not count.
var driverCommands = map[string]bool{"hello": true, "isMaster": true, "ismaster": true, "ping": true, "buildInfo": true, "endSessions": true, "killCursors": true}

func readMessage(r io.Reader) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(head[:])
	msg := make([]byte, n)
	copy(msg, head[:])
	_, err := io.ReadFull(r, msg[4:])
	return msg, err
}

// command is the name of the command in an OP_MSG, or "".
func command(msg []byte) string {
	const opMsg = 2013
	if len(msg) < 21 || binary.LittleEndian.Uint32(msg[12:]) != opMsg || msg[20] != 0 {
		return ""
	}
	els, err := bson.Raw(msg[21:]).Elements()
	if err != nil || len(els) == 0 {
		return ""
	}
	return els[0].Key()
}

// holdReplies makes the server seem to hang: the replies to application
// commands are swallowed and the connection stays open.
func (p *replyDropper) holdReplies(on bool) {
	p.mu.Lock()
	p.hold = on
	p.mu.Unlock()
}

func (p *replyDropper) requests(c, s net.Conn, drop, hold chan<- int32) {
	defer s.Close()
	for {
		msg, err := readMessage(c)
		if err != nil {
			return
		}
		if cmd := command(msg); cmd != "" && !driverCommands[cmd] {
			p.mu.Lock()
			p.seen++
			p.cmds = append(p.cmds, cmd)
			if p.drop[p.seen] || p.dropAll[cmd] {
				p.dropped = append(p.dropped, cmd)
				drop <- int32(binary.LittleEndian.Uint32(msg[4:]))
			} else if p.hold {
				hold <- int32(binary.LittleEndian.Uint32(msg[4:]))
			}
			p.mu.Unlock()
		}
		if _, err := s.Write(msg); err != nil {
			return
		}
	}
}

func (p *replyDropper) replies(s, c net.Conn, drop, hold <-chan int32) {
	defer c.Close()
	lose := map[int32]bool{}
	held := map[int32]bool{}
	for {
		msg, err := readMessage(s)
		if err != nil {
			return
		}
		for more := true; more; {
			select {
			case id := <-drop:
				lose[id] = true
			case id := <-hold:
				held[id] = true
			default:
				more = false
			}
		}
		if held[int32(binary.LittleEndian.Uint32(msg[8:]))] {
			continue
		}
		if lose[int32(binary.LittleEndian.Uint32(msg[8:]))] {
			// The server did the work; the client never hears of it.
			c.Close()
			s.Close()
			return
		}
		if _, err := c.Write(msg); err != nil {
			return
		}
	}
}

// openBehindDropper opens an observer that talks to the store through a
// new replyDropper.
func openBehindDropper(t *testing.T, s *store) (*replyDropper, *Observer) {
	t.Helper()
	host := strings.TrimSuffix(strings.TrimPrefix(s.base, "mongodb://"), "/")
	proxy := newReplyDropper(t, host)
	return proxy, s.openBehind(t, proxy)
}

// openBehind opens an observer that talks to the store through p.
func (s *store) openBehind(t *testing.T, p *replyDropper) *Observer {
	t.Helper()
	cfg, err := ParseConfig("mongodb://" + p.l.Addr().String() + "/" + s.db + "?serverSelectionTimeoutMS=5000")
	must(t, err)
	o, err := New(ctx, cfg, observer.Settings{})
	must(t, err)
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o
}

// TestHardening15StartLeavesNoGhost loses the reply to the insert of the
// run: the observer finds its own document by its start token and keeps
// it; when it cannot find out (the replies to its check are lost too), it
// removes that document. With its check answered the start succeeds with
// exactly one document; with no answer until its deadline it fails and
// leaves no document behind.
func TestHardening15StartLeavesNoGhost(t *testing.T) {
	s := newStore(t)
	// One run there already, so that ids are allocated past it.
	_, err := s.open(t, "", nil).Started(ctx, observertest.StartEvent())
	must(t, err)

	// Where the insert comes among the commands of a start like the
	// ones below: after reading the indexes, the sources and the largest
	// id.
	probe, po := openBehindDropper(t, s)
	probe.lose()
	_, err = po.Started(ctx, observertest.StartEvent())
	must(t, err)
	insert := slices.Index(probe.commands(), "insert") + 1
	if insert == 0 {
		t.Fatalf("no insert among %v", probe.commands())
	}
	t.Run("insert reply lost", func(t *testing.T) {
		proxy, o := openBehindDropper(t, s)
		proxy.lose(insert)
		id, err := o.Started(ctx, observertest.StartEvent())
		lost := proxy.lost()
		proxy.lose()
		must(t, err)
		if len(lost) != 1 || lost[0] != "insert" {
			t.Fatalf("replies lost to %v, want the insert's", lost)
		}
		n, err := o.runs.CountDocuments(ctx, bson.D{{Key: "_id", Value: o.id}})
		must(t, err)
		if n != 1 {
			t.Errorf("%d documents with _id %s", n, id)
		}
		if all, err := o.runs.CountDocuments(ctx, bson.D{}); err != nil || all != 3 {
			t.Errorf("%d runs stored (%v), want 3", all, err)
		}
	})
	t.Run("insert reply lost and no answer until the deadline", func(t *testing.T) {
		proxy, o := openBehindDropper(t, s)
		proxy.lose(insert)
		proxy.loseEvery("aggregate") // the check
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := o.Started(sctx, observertest.StartEvent())
		cmds := proxy.commands()
		proxy.lose()
		if err == nil {
			t.Fatal("Started succeeded with no answer to its checks")
		}
		if !slices.Contains(cmds, "delete") {
			t.Errorf("the start did not remove its document: commands %v", cmds)
		}
		if all, err := o.runs.CountDocuments(ctx, bson.D{}); err != nil || all != 3 {
			t.Errorf("%d runs stored (%v), want 3: the failed start left a ghost", all, err)
		}
	})
}

// TestLostRepliesStoreNothingTwice loses the reply to each write of a
// metrics batch, a beat and an artifact in turn, then sends the same call
// again, as the retry decorator does after an error: every point, byte of
// output and artifact is stored exactly once.
func TestLostRepliesStoreNothingTwice(t *testing.T) {
	s := newStore(t)
	proxy, o := openBehindDropper(t, s)
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	must(t, err)

	// callTwice loses the reply to the n-th command of the first call and
	// checks that the call said so; the second call must succeed. It
	// reports false once the first call sends fewer than n commands.
	callTwice := func(what string, n int, call func() error) bool {
		t.Helper()
		proxy.lose(n)
		first := call()
		lost := proxy.lost()
		t.Logf("%s: lost %v, first error %v", what, lost, first)
		proxy.lose()
		if len(lost) == 0 {
			must(t, first)
			return false
		}
		if first == nil {
			t.Errorf("%s: reply to %s lost, yet no error", what, lost[0])
		}
		if err := call(); err != nil {
			t.Fatalf("%s sent again after the reply to %s was lost: %v", what, lost[0], err)
		}
		return true
	}

	var want []observer.MetricPoint
	step := int64(0)
	batch := func(k int) []observer.MetricPoint {
		var pts []observer.MetricPoint
		for range k {
			pts = append(pts, observer.MetricPoint{Step: step, Value: float64(step) / 3, Time: ev.Time.Add(time.Duration(step) * time.Millisecond)})
			step++
		}
		return pts
	}
	// Two batches: the first creates the series' document, the second
	// appends to it.
	for round := range 2 {
		for n := 1; ; n++ {
			pts := batch(3)
			want = append(want, pts...)
			info := map[string]any{}
			more := callTwice(fmt.Sprintf("metrics round %d command %d", round, n), n, func() error {
				return o.LogMetrics(ctx, &observer.MetricsEvent{Info: info, Metrics: []observer.MetricSeries{{Name: "loss", Points: pts}}})
			})
			if !more {
				break
			}
		}
	}

	out := observertest.NewOutput()
	var acked int64
	big := strings.Repeat("0123456789abcdef", DefaultOutputHead/8) // two beats of these pass the 1 MiB of captured_out
	for n := 1; ; n++ {
		out.Append([]byte(fmt.Sprintf("beat %d %s\n", n, big)))
		hb := &observer.HeartbeatEvent{Info: map[string]any{"n": n}, BeatTime: time.Now(), Output: out, From: acked, To: out.Size()}
		more := callTwice(fmt.Sprintf("beat command %d", n), n, func() error { return o.Heartbeat(ctx, hb) })
		acked = hb.To
		if !more {
			break
		}
	}

	dir := t.TempDir()
	var names []string
	for n := 1; ; n++ {
		name := fmt.Sprintf("model%d.bin", n)
		p := writeFile(t, dir, name, []byte(strings.Repeat(name, 100000)))
		names = append(names, name)
		more := callTwice("artifact command "+fmt.Sprint(n), n, func() error {
			return o.Artifact(ctx, &observer.ArtifactEvent{Name: name, Path: p})
		})
		if !more {
			break
		}
	}
	hb := &observer.HeartbeatEvent{BeatTime: time.Now(), Output: out, From: acked, To: out.Size(), Final: true}
	must(t, o.Heartbeat(ctx, hb))
	must(t, o.Completed(ctx, &observer.CompletedEvent{StopTime: time.Now()}))

	run, err := s.reader(t).Run(ctx, id)
	must(t, err)
	if len(run.Metrics) != 1 {
		t.Fatalf("metrics %+v", run.Metrics)
	}
	got := run.Metrics[0].Points
	if len(got) != len(want) {
		t.Errorf("%d points stored, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i].Step != want[i].Step || got[i].Value != want[i].Value {
			t.Errorf("point %d = %+v, want %+v", i, got[i], want[i])
			break
		}
	}
	if string(run.Output) != string(out.Bytes()) {
		t.Errorf("output: %d bytes stored, want %d", len(run.Output), out.Size())
	}
	if strings.Join(run.Artifacts, ",") != strings.Join(names, ",") {
		t.Errorf("artifacts %v, want %v", run.Artifacts, names)
	}
	n, err := o.files.CountDocuments(ctx, bson.D{{Key: "filename", Value: bson.D{{Key: "$regex", Value: "^artifact://"}}}})
	must(t, err)
	if n != int64(len(names)) {
		t.Errorf("%d artifact files in GridFS, want %d", n, len(names))
	}
	for _, name := range names {
		rc, err := s.reader(t).Artifact(ctx, id, name)
		must(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		must(t, err)
		if string(b) != strings.Repeat(name, 100000) {
			t.Errorf("artifact %s read back wrong (%d bytes)", name, len(b))
		}
	}
}
