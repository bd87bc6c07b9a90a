package mongo

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/pkg/observer"
)

// chunkSize is the GridFS chunk size Sacred (pymongo) and the Go driver
// use: 255 KiB.
const chunkSize = 255 * 1024

// chunksPerWrite bounds one bulk write of output chunks (about 4 MB), far
// below MongoDB's 48 MB message limit.
const chunksPerWrite = 16

// outputFileName is the GridFS name of the full captured output of a run,
// next to Sacred's artifact://<runs collection>/<id>/<name> names.
func outputFileName(runs string, id string) string {
	return "captured_out://" + runs + "/" + id
}

func artifactFileName(runs, id, name string) string {
	return "artifact://" + runs + "/" + id + "/" + name
}

// appendFile is a GridFS file that grows: the full output of a run,
// written chunk by chunk as it arrives, so a beat costs what is new, not
// what was written before. The fs.files document is written after the
// chunks, so its length never promises more than they hold, and any
// GridFS reader can download the output during the run.
type appendFile struct {
	files, chunks *mongo.Collection
	id            bson.ObjectID
	name          string
	runID         any
	// written is set once a write succeeded: until then a write starts at
	// 0, whatever its from.
	written bool
	// length is the length the fs.files document holds.
	length int64
	// chunkIDs are the _id of chunk n, chosen once: a chunk written again
	// (a call that comes again) is found by its _id, the only filter
	// FerretDB's SQLite backend answers without a scan.
	chunkIDs []bson.ObjectID
	// partial holds the chunks that may have been written shorter than a
	// whole chunk (the end of the output at some beat): they are replaced
	// when written again. Other chunks are inserted (an upsert costs a lot
	// more on FerretDB), and one that is there already is left as it is.
	partial map[int64]bool
}

func newAppendFile(files, chunks *mongo.Collection, name string, runID any) *appendFile {
	return &appendFile{files: files, chunks: chunks, id: bson.NewObjectID(), name: name, runID: runID, partial: map[int64]bool{}}
}

func (f *appendFile) chunkID(n int64) bson.ObjectID {
	for int64(len(f.chunkIDs)) <= n {
		f.chunkIDs = append(f.chunkIDs, bson.NewObjectID())
	}
	return f.chunkIDs[n]
}

func (f *appendFile) chunkDoc(n int64, data []byte) bson.D {
	return bson.D{
		{Key: "_id", Value: f.chunkID(n)},
		{Key: "files_id", Value: f.id},
		{Key: "n", Value: int32(n)},
		{Key: "data", Value: bson.Binary{Data: data}},
	}
}

// write stores bytes [from, to) of out: the whole chunks, and with partial
// the partial chunk at the end too. Bytes before from are in the file
// already (see writeOutput); the chunk from falls in is written again.
func (f *appendFile) write(ctx context.Context, out observer.Output, from, to int64, partial bool) error {
	if !f.written {
		from = 0
	}
	end := to
	if !partial {
		end = to - to%chunkSize
	}
	var written []int64
	for pos := from - from%chunkSize; pos < end; {
		var models []mongo.WriteModel
		for len(models) < chunksPerWrite && pos < end {
			data := make([]byte, min(chunkSize, end-pos))
			if _, err := out.ReadAt(data, pos); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read captured output at %d: %w", pos, err)
			}
			n := pos / chunkSize
			if f.partial[n] {
				models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: f.chunkID(n)}}).SetReplacement(f.chunkDoc(n, data)).SetUpsert(true))
			} else {
				models = append(models, mongo.NewInsertOneModel().SetDocument(f.chunkDoc(n, data)))
			}
			if len(data) < chunkSize {
				// Marked before the write: it may land even if the call
				// fails.
				f.partial[n] = true
			}
			written = append(written, n)
			pos += int64(len(data))
		}
		if _, err := f.chunks.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil && !onlyDuplicates(err) {
			return fmt.Errorf("write output chunks: %w", err)
		}
		for _, n := range written {
			if f.partial[n] && (n+1)*chunkSize <= end {
				delete(f.partial, n)
			}
		}
		written = written[:0]
	}
	// A long output's length stays where a short one's partial chunk took
	// it, until the chunks pass it.
	length := max(end, f.length)
	if f.written && length == f.length {
		return nil
	}
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: "length", Value: length}}},
		{Key: "$setOnInsert", Value: bson.D{
			{Key: "chunkSize", Value: int32(chunkSize)},
			{Key: "uploadDate", Value: date(time.Now())},
			{Key: "filename", Value: f.name},
			{Key: "metadata", Value: bson.D{{Key: "run_id", Value: f.runID}, {Key: "kind", Value: "captured_out"}}},
		}},
	}
	if _, err := f.files.UpdateOne(ctx, bson.D{{Key: "_id", Value: f.id}}, update, options.UpdateOne().SetUpsert(true)); err != nil {
		return fmt.Errorf("write output file length: %w", err)
	}
	f.length, f.written = length, true
	return nil
}

// chunkReader streams a GridFS file in bounded batches. The driver's
// download asks for chunks without a batch size, and FerretDB then answers
// a getMore with every remaining chunk, past the 48 MB message limit.
type chunkReader struct {
	ctx    context.Context
	cur    *mongo.Cursor
	buf    []byte
	next   int32
	remain int64
}

func openChunks(ctx context.Context, files, chunks *mongo.Collection, fileID any) (*chunkReader, error) {
	var f struct {
		Length int64 `bson:"length"`
	}
	err := files.FindOne(ctx, bson.D{{Key: "_id", Value: fileID}}).Decode(&f)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, mongo.ErrFileNotFound
	}
	if err != nil {
		return nil, err
	}
	cur, err := chunks.Find(ctx, bson.D{{Key: "files_id", Value: fileID}},
		options.Find().SetSort(bson.D{{Key: "n", Value: 1}}).SetBatchSize(chunksPerWrite))
	if err != nil {
		return nil, err
	}
	return &chunkReader{ctx: ctx, cur: cur, remain: f.Length}, nil
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.remain <= 0 {
			return 0, io.EOF
		}
		if !r.cur.Next(r.ctx) {
			if err := r.cur.Err(); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("GridFS file truncated: %d bytes missing", r.remain)
		}
		n, ok := r.cur.Current.Lookup("n").AsInt64OK()
		if !ok || n != int64(r.next) {
			return 0, fmt.Errorf("GridFS chunk %d missing", r.next)
		}
		_, data, ok := r.cur.Current.Lookup("data").BinaryOK()
		if !ok {
			return 0, fmt.Errorf("GridFS chunk %d has no data", n)
		}
		r.next++
		if int64(len(data)) > r.remain {
			data = data[:r.remain]
		}
		r.remain -= int64(len(data))
		r.buf = data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close releases the cursor on the server, also after a read was cut
// short by ctx (bounded by cleanupTimeout).
func (r *chunkReader) Close() error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), cleanupTimeout)
	defer cancel()
	return r.cur.Close(ctx)
}

// findFile returns the id of a GridFS file with this name and md5: ours
// and Sacred's have md5 at the top level, our older ones in metadata.md5.
// A placeholder of an omitted source (see storeOmitted) is found only when
// omitted is set, and is never taken for the content.
func findFile(ctx context.Context, files *mongo.Collection, name, md5 string, omitted bool) (bson.ObjectID, bool, error) {
	filter := bson.D{
		{Key: "filename", Value: name},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "metadata.md5", Value: md5}},
			bson.D{{Key: "md5", Value: md5}},
		}},
	}
	if omitted {
		filter = append(filter, bson.E{Key: "metadata.omitted", Value: true})
	} else {
		filter = append(filter, bson.E{Key: "metadata.omitted", Value: bson.D{{Key: "$ne", Value: true}}})
	}
	var doc struct {
		ID bson.ObjectID `bson:"_id"`
	}
	err := files.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return bson.ObjectID{}, false, nil
	}
	if err != nil {
		return bson.ObjectID{}, false, err
	}
	return doc.ID, true, nil
}

// storeDedup stores the file at path under name unless a file with that
// name and md5 is there already (Sacred's source lookup, which stopped
// matching with pymongo 4 and re-uploaded every source on every run).
func storeDedup(ctx context.Context, files, chunks *mongo.Collection, name, path, md5 string) (bson.ObjectID, error) {
	if id, ok, err := findFile(ctx, files, name, md5, false); err != nil {
		return id, fmt.Errorf("look up %s in GridFS: %w", name, err)
	} else if ok {
		return id, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return bson.ObjectID{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	id := bson.NewObjectID()
	meta := bson.D{{Key: "metadata", Value: bson.D{{Key: "md5", Value: md5}}}}
	if _, err := putFile(ctx, files, chunks, id, name, f, meta, false); err != nil {
		return id, err
	}
	return id, nil
}

// putFile stores the content of r in GridFS as file id, as pymongo's GridFS
// writes it: the chunks, then the files document with length, chunkSize,
// uploadDate, md5 (Sacred finds an existing source by filename and md5),
// filename and the extra fields (contentType, metadata). It returns the
// md5. again says an earlier call for this id may have left chunks
// behind: they are removed first.
func putFile(ctx context.Context, files, chunks *mongo.Collection, id bson.ObjectID, name string, r io.Reader, extra bson.D, again bool) (string, error) {
	if again {
		if _, err := chunks.DeleteMany(ctx, bson.D{{Key: "files_id", Value: id}}); err != nil {
			return "", fmt.Errorf("remove what an earlier upload of %s left: %w", name, err)
		}
	}
	h := md5.New()
	var length int64
	var n int32
	buf := make([]byte, chunkSize)
	for done := false; !done; {
		var docs []any
		for len(docs) < chunksPerWrite {
			k, err := io.ReadFull(r, buf)
			if k > 0 {
				h.Write(buf[:k])
				docs = append(docs, bson.D{
					{Key: "_id", Value: bson.NewObjectID()},
					{Key: "files_id", Value: id},
					{Key: "n", Value: n},
					{Key: "data", Value: bson.Binary{Data: append([]byte(nil), buf[:k]...)}},
				})
				n++
				length += int64(k)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				done = true
				break
			}
			if err != nil {
				dropChunks(ctx, chunks, id)
				return "", fmt.Errorf("read %s: %w", name, err)
			}
		}
		if len(docs) == 0 {
			break
		}
		if _, err := chunks.InsertMany(ctx, docs); err != nil {
			dropChunks(ctx, chunks, id)
			return "", fmt.Errorf("upload %s to GridFS: %w", name, err)
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	doc := bson.D{
		{Key: "_id", Value: id},
		{Key: "length", Value: length},
		{Key: "chunkSize", Value: int32(chunkSize)},
		{Key: "uploadDate", Value: date(time.Now())},
		{Key: "md5", Value: sum},
		{Key: "filename", Value: name},
	}
	doc = append(doc, extra...)
	if _, err := files.InsertOne(ctx, doc); err != nil && !mongo.IsDuplicateKeyError(err) {
		if !transient(err) {
			dropChunks(ctx, chunks, id)
		}
		// Else the document may be there after all: the chunks stay, for
		// a call that comes again to find.
		return "", fmt.Errorf("upload %s to GridFS: %w", name, err)
	}
	return sum, nil
}

// onlyDuplicates tells a bulk write whose only failures are inserts of
// documents that exist: a write sent again whose first try went through.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// dropChunks removes the chunks of an upload that failed, best effort and
// within ctx (the server may be gone), so that no file is half there. What
// it cannot remove stays unreferenced; an artifact sent again removes it
// first (see putFile).
func dropChunks(ctx context.Context, chunks *mongo.Collection, id bson.ObjectID) {
	_, _ = chunks.DeleteMany(ctx, bson.D{{Key: "files_id", Value: id}})
}
