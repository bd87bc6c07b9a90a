package queue

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// piece is a run of bytes stored in the journal file: at file offset at,
// n bytes, standing for bytes [pos, pos+n) of the output or of a file.
type piece struct {
	pos, at, n int64
}

// outputIndex is the run's output as the journal holds it: an
// observer.Output whose bytes are read from the journal's output records,
// so that a heartbeat replayed from the journal hands the store the
// output the way the runner's spool did. It holds one small entry per
// output record, never the bytes.
type outputIndex struct {
	r      io.ReaderAt
	pieces []piece // by pos, contiguous from 0
	size   int64
}

// add notes an output record: data of n bytes at file offset at, for
// output offset pos. A range already indexed (written again after a
// failed heartbeat) is skipped.
func (o *outputIndex) add(pos, at, n int64) {
	if end := pos + n; end <= o.size {
		return
	}
	if pos < o.size {
		skip := o.size - pos
		pos, at, n = pos+skip, at+skip, n-skip
	}
	if pos > o.size {
		// A gap cannot be written (the decorator writes from its own
		// end); index it anyway, reads of the gap fail.
		o.pieces = append(o.pieces, piece{pos: o.size, at: -1, n: pos - o.size})
	}
	o.pieces = append(o.pieces, piece{pos: pos, at: at, n: n})
	o.size = pos + n
}

// Size implements observer.Output.
func (o *outputIndex) Size() int64 { return o.size }

// ReadAt implements observer.Output.
func (o *outputIndex) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("journal output: negative offset %d", off)
	}
	i := sort.Search(len(o.pieces), func(i int) bool { return o.pieces[i].pos+o.pieces[i].n > off })
	done := 0
	for done < len(p) && i < len(o.pieces) {
		pc := o.pieces[i]
		if pc.at < 0 {
			return done, fmt.Errorf("journal output: bytes %d-%d were never journaled", pc.pos, pc.pos+pc.n)
		}
		skip := off + int64(done) - pc.pos
		want := min(int64(len(p)-done), pc.n-skip)
		n, err := o.r.ReadAt(p[done:done+int(want)], pc.at+skip)
		done += n
		if err != nil {
			return done, fmt.Errorf("journal output: %w", err)
		}
		i++
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}

// blobIndex finds the chunks of the files (artifacts, sources) kept in the
// journal.
type blobIndex struct {
	r      io.ReaderAt
	chunks map[uint64][]piece
}

func (b *blobIndex) add(id uint64, at, n int64) {
	if b.chunks == nil {
		b.chunks = map[uint64][]piece{}
	}
	cs := b.chunks[id]
	var pos int64
	if len(cs) > 0 {
		last := cs[len(cs)-1]
		pos = last.pos + last.n
	}
	b.chunks[id] = append(cs, piece{pos: pos, at: at, n: n})
}

// size is the number of bytes of blob id in the journal.
func (b *blobIndex) size(id uint64) int64 {
	cs := b.chunks[id]
	if len(cs) == 0 {
		return 0
	}
	last := cs[len(cs)-1]
	return last.pos + last.n
}

// extract writes blob id to a new file in dir and returns its path.
func (b *blobIndex) extract(id uint64, dir, pattern string) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", fmt.Errorf("extract a file from the journal: %w", err)
	}
	buf := make([]byte, 0, chunkSize)
	for _, c := range b.chunks[id] {
		buf = buf[:c.n]
		if _, err = b.r.ReadAt(buf, c.at); err != nil {
			break
		}
		if _, err = f.Write(buf); err != nil {
			break
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("extract a file from the journal: %w", err)
	}
	return f.Name(), nil
}

// drop forgets blob id once its event is recorded.
func (b *blobIndex) drop(id uint64) { delete(b.chunks, id) }
