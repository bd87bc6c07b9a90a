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
// what was written before. Only the last, partial chunk is rewritten. The
// fs.files document is written after the chunks, so its length never
// promises more than the chunks hold, and any GridFS reader can download
// the output while the run goes on.
type appendFile struct {
	files, chunks *mongo.Collection
	id            bson.ObjectID
	name          string
	runID         any
	// stored is how many bytes are in the database.
	stored int64
	// created is true once the fs.files document exists.
	created bool
}

// flush stores bytes [stored, to) of out.
func (f *appendFile) flush(ctx context.Context, out observer.Output, to int64) error {
	if to <= f.stored && f.created {
		return nil
	}
	start := f.stored - f.stored%chunkSize
	buf := make([]byte, chunkSize)
	for start < to {
		var models []mongo.WriteModel
		end := start
		for len(models) < chunksPerWrite && end < to {
			n := min(int64(chunkSize), to-end)
			if _, err := out.ReadAt(buf[:n], end); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read captured output at %d: %w", end, err)
			}
			data := bson.Binary{Subtype: 0, Data: append([]byte(nil), buf[:n]...)}
			filter := bson.D{{Key: "files_id", Value: f.id}, {Key: "n", Value: int32(end / chunkSize)}}
			doc := bson.D{{Key: "files_id", Value: f.id}, {Key: "n", Value: int32(end / chunkSize)}, {Key: "data", Value: data}}
			models = append(models, mongo.NewReplaceOneModel().SetFilter(filter).SetReplacement(doc).SetUpsert(true))
			end += n
		}
		if _, err := f.chunks.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true)); err != nil {
			return fmt.Errorf("write output chunks: %w", err)
		}
		start = end
		f.stored = end
	}
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: "length", Value: f.stored}}},
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
	f.created = true
	return nil
}

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
		_ = b.Delete(context.WithoutCancel(ctx), id)
		return bson.ObjectID{}, fmt.Errorf("upload %s to GridFS: %w", name, err)
	}
	return id, nil
}
