package queue

// The journal's framing. A journal is a magic string followed by records:
//
//	[4 bytes: n, little-endian][4 bytes: CRC-32C of the payload][n bytes: payload]
//
// The payload's first byte is the record type; the rest is a JSON document
// (written by sacredjson, so NaN and the infinities survive) or, for output
// and file chunks, a varint followed by raw bytes. A record is whole when
// its length and checksum hold; a crash can only leave a torn record at
// the end, which a reader reports and a later writer cuts off.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// magic starts every journal file.
const magic = "sacredq1"

// Record types.
const (
	recHeader      = 'H' // the journal's header: its id and the observer it feeds
	recStarted     = 'S' // observer.StartEvent of a started run
	recQueued      = 'Q' // observer.StartEvent of a queued run
	recMetrics     = 'M' // observer.MetricsEvent
	recBeat        = 'T' // observer.HeartbeatEvent without its output
	recOutput      = 'O' // a range of the output: varint offset, bytes
	recBlob        = 'B' // a chunk of a file's content: varint blob id, bytes
	recArtifact    = 'A' // observer.ArtifactEvent; its content is in blob chunks before it
	recResource    = 'R' // observer.ResourceEvent
	recCompleted   = 'C'
	recInterrupted = 'I'
	recFailed      = 'F'
	recAck         = 'K' // what a store acknowledged (see ackState)
)

// chunkSize bounds the bytes of one output or blob record, so that a
// reader never holds more than this of a file or of the output at once.
const chunkSize = 1 << 20

// maxRecord is the largest payload a reader accepts: a larger length can
// only be garbage (a metrics batch of the runner's 100,000-point backlog is
// a few MB).
const maxRecord = 256 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn marks the end of the whole records: what follows is a record cut
// short by a crash, or garbage.
var errTorn = errors.New("torn record")

// frame returns the header of a record with payload parts p.
func frame(p ...[]byte) [8]byte {
	var n int
	crc := uint32(0)
	for _, b := range p {
		n += len(b)
		crc = crc32.Update(crc, castagnoli, b)
	}
	var h [8]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(n))
	binary.LittleEndian.PutUint32(h[4:8], crc)
	return h
}

// readRecord reads the record at off of r, whose whole records end at or
// before end. It returns the payload and the offset of the next record;
// errTorn (wrapped, with the reason) when no whole record starts at off.
func readRecord(r io.ReaderAt, off, end int64) (payload []byte, next int64, err error) {
	if end-off < 8 {
		return nil, off, fmt.Errorf("%w: %d bytes, too short for a record header", errTorn, end-off)
	}
	var h [8]byte
	if _, err := r.ReadAt(h[:], off); err != nil {
		return nil, off, fmt.Errorf("read record at %d: %w", off, err)
	}
	n := int64(binary.LittleEndian.Uint32(h[0:4]))
	if n == 0 || n > maxRecord {
		return nil, off, fmt.Errorf("%w: impossible length %d", errTorn, n)
	}
	if end-off-8 < n {
		return nil, off, fmt.Errorf("%w: %d of %d bytes", errTorn, end-off-8, n)
	}
	payload = make([]byte, n)
	if _, err := r.ReadAt(payload, off+8); err != nil {
		return nil, off, fmt.Errorf("read record at %d: %w", off, err)
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(h[4:8]) {
		return nil, off, fmt.Errorf("%w: checksum mismatch", errTorn)
	}
	return payload, off + 8 + n, nil
}

// chunk is the payload of an output or blob record: a varint (the output
// offset or the blob id) and the bytes.
func chunkHead(typ byte, v uint64) []byte {
	b := make([]byte, 1, 1+binary.MaxVarintLen64)
	b[0] = typ
	return binary.AppendUvarint(b, v)
}

// parseChunk splits the payload of an output or blob record.
func parseChunk(payload []byte) (v uint64, data []byte, dataAt int, err error) {
	v, n := binary.Uvarint(payload[1:])
	if n <= 0 {
		return 0, nil, 0, errors.New("bad chunk header")
	}
	return v, payload[1+n:], 1 + n, nil
}
