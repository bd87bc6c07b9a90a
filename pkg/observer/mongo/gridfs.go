package mongo

import (
	"context"
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
// what was written before. Whole chunks are inserted once; the last,
// partial chunk is written only at the end of the run (the runs document's
// captured_out shows the latest output meanwhile). The fs.files document
// is written after the chunks, so its length never promises more than
// they hold, and any GridFS reader can download the output during the run.
type appendFile struct {
	files, chunks *mongo.Collection
	id            bson.ObjectID
	name          string
	runID         any
	// stored is the bytes in whole chunks in the database; tail the bytes
	// of a partial chunk after them (0 if none is written).
	stored, tail int64
	// length is the length the fs.files document holds (-1: none yet).
	length int64
	// chunkIDs are the _id of chunk n, chosen once: a retried insert of a
	// chunk finds it there, and a rewrite addresses it by _id alone, the
	// only filter FerretDB's SQLite backend answers without a scan.
	chunkIDs []bson.ObjectID
}

func newAppendFile(files, chunks *mongo.Collection, name string, runID any) *appendFile {
	return &appendFile{files: files, chunks: chunks, id: bson.NewObjectID(), name: name, runID: runID, length: -1}
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

// flush stores the whole chunks of bytes [0, to) of out, and with final
// the partial chunk at the end too.
func (f *appendFile) flush(ctx context.Context, out observer.Output, to int64, final bool) error {
	full := to - to%chunkSize
	for f.stored < full {
		var models []mongo.WriteModel
		end := f.stored
		for len(models) < chunksPerWrite && end < full {
			data := make([]byte, chunkSize)
			if _, err := out.ReadAt(data, end); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read captured output at %d: %w", end, err)
			}
			n := end / chunkSize
			if f.tail > 0 && n == f.stored/chunkSize {
				// The partial chunk written before grew whole.
				models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: f.chunkID(n)}}).SetReplacement(f.chunkDoc(n, data)).SetUpsert(true))
			} else {
				models = append(models, mongo.NewInsertOneModel().SetDocument(f.chunkDoc(n, data)))
			}
			end += chunkSize
		}
		if _, err := f.chunks.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil && !onlyDuplicates(err) {
			return fmt.Errorf("write output chunks: %w", err)
		}
		f.stored, f.tail = end, 0
	}
	if final && to > f.stored && to-f.stored != f.tail {
		n := f.stored / chunkSize
		data := make([]byte, to-f.stored)
		if _, err := out.ReadAt(data, f.stored); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read captured output at %d: %w", f.stored, err)
		}
		if _, err := f.chunks.ReplaceOne(ctx, bson.D{{Key: "_id", Value: f.chunkID(n)}}, f.chunkDoc(n, data), options.Replace().SetUpsert(true)); err != nil {
			return fmt.Errorf("write the last output chunk: %w", err)
		}
		f.tail = to - f.stored
	}
	length := f.stored + f.tail
	if length == f.length {
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
	f.length = length
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

func (r *chunkReader) Close() error { return r.cur.Close(context.WithoutCancel(r.ctx)) }

// findFile returns the id of a GridFS file with this name and md5, kept in
// metadata.md5 by us and in md5 by Sacred with pymongo < 4.
func findFile(ctx context.Context, files *mongo.Collection, name, md5 string) (bson.ObjectID, bool, error) {
	filter := bson.D{
		{Key: "filename", Value: name},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "metadata.md5", Value: md5}},
			bson.D{{Key: "md5", Value: md5}},
		}},
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

// storeDedup stores a file under name unless a file with that name and md5
// is there already (Sacred's source lookup, which stopped matching with
// pymongo 4 and re-uploaded every source on every run).
func storeDedup(ctx context.Context, b *mongo.GridFSBucket, files *mongo.Collection, name, path, md5 string) (bson.ObjectID, error) {
	if id, ok, err := findFile(ctx, files, name, md5); err != nil {
		return id, fmt.Errorf("look up %s in GridFS: %w", name, err)
	} else if ok {
		return id, nil
	}
	return upload(ctx, b, name, path, options.GridFSUpload().SetMetadata(bson.D{{Key: "md5", Value: md5}}))
}

func upload(ctx context.Context, b *mongo.GridFSBucket, name, path string, opts *options.GridFSUploadOptionsBuilder) (bson.ObjectID, error) {
	f, err := os.Open(path)
	if err != nil {
		return bson.ObjectID{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	id, err := b.UploadFromStream(ctx, name, f, opts)
	if err != nil {
		// A half-written file would be found by name later: drop its
		// chunks, best effort (the server may be gone).
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = b.Delete(dctx, id)
		cancel()
		return bson.ObjectID{}, fmt.Errorf("upload %s to GridFS: %w", name, err)
	}
	return id, nil
}
