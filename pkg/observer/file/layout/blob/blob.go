// Package blob is Sacred's file-storage layout (package layout) kept in an
// object store: the observer and the reader that S3, Google Cloud Storage
// and stores of your own share. A store implements the small Bucket
// interface (put, create-if-absent, get, size, list one level, delete) and
// optionally Appender (server-side append); everything else, what is
// written when and under which key, is here, written once.
//
// The keys under a prefix are the paths of a file-storage directory:
//
//	PREFIX/_sources/<stem>_<md5><ext>
//	PREFIX/_resources/<stem>_<md5><ext>
//	PREFIX/<id>/run.json config.json cout.txt [info.json] [metrics.json] <artifacts...>
//
// so a bucket copied to disk (aws s3 sync, gcloud storage rsync) is a
// valid -F directory. See docs/observers/s3.md for what is written when and
// what each beat costs.
package blob

import (
	"context"
	"errors"
	"io"
)

// Errors a Bucket returns (wrapped) so that the layout code can tell them
// from failures.
var (
	// ErrNotExist: the object does not exist.
	ErrNotExist = errors.New("object does not exist")
	// ErrExist: Create found the object there already.
	ErrExist = errors.New("object already exists")
	// ErrAppendUnsupported: the service cannot append on the server side
	// (an S3-compatible store without UploadPartCopy). The observer then
	// rewrites cout.txt whole at each beat and says so once.
	ErrAppendUnsupported = errors.New("the store cannot append to an object")
	// ErrAppendMisplaced: an append landed on an object other than the
	// one of the size it was given (a late request of an earlier call had
	// changed it, and the store ignored the preconditions that should
	// have stopped it): the object may no longer be a start of the
	// output. The observer rewrites cout.txt from the start.
	ErrAppendMisplaced = errors.New("the append landed on a changed object")
)

// Bucket is the little an object store must offer. Keys are full keys
// (prefix included), with "/" as the separator. Every call honours its
// context. A Bucket never retries by itself: the retry decorator around
// the observer does (pkg/observer/retry).
type Bucket interface {
	// Put stores the size bytes of src as key, replacing any object of
	// that name at once (a reader sees the old or the new object). src may
	// be read more than once and at any offset (a part sent again), so
	// large objects are streamed from their file, never held in memory.
	// contentType may be empty.
	Put(ctx context.Context, key string, src io.ReaderAt, size int64, contentType string) error
	// Create stores data as key only if there is no object of that name
	// (S3's If-None-Match: *, GCS's DoesNotExist precondition); otherwise
	// it returns an error wrapping ErrExist. Run ids are allocated with it.
	Create(ctx context.Context, key string, data []byte, contentType string) error
	// Get opens an object for reading; ErrNotExist when it is missing.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Size returns the size of an object; ErrNotExist when it is missing.
	Size(ctx context.Context, key string) (int64, error)
	// Dirs lists the "directories" right under prefix (which ends in "/"
	// or is empty): the names of the common prefixes of a listing with
	// delimiter "/", without prefix and without the trailing slash.
	Dirs(ctx context.Context, prefix string) ([]string, error)
	// Delete removes an object; a missing one is no error.
	Delete(ctx context.Context, key string) error
}

// Appender is a Bucket that can add bytes to the end of an object on the
// server side, so that an append sends only the new bytes: S3 through a
// multipart upload whose first parts are copies of the object
// (UploadPartCopy), GCS through compose. cout.txt grows this way, and a
// beat costs the new output only, however long the run's output is.
type Appender interface {
	// Append makes key hold its current content, size bytes, followed by
	// the n bytes of src. The object must be exactly size bytes long, and
	// Append must fail rather than append to an object of another size,
	// even one changed during the call by a late request of an earlier
	// one (S3: a copy of exactly the range [0, size); GCS: generation
	// preconditions); when it finds out only after, it returns an error
	// wrapping ErrAppendMisplaced. It returns an error wrapping
	// ErrAppendUnsupported when the service cannot append at all.
	Append(ctx context.Context, key string, size int64, src io.ReaderAt, n int64) error
	// MinAppendSize is the smallest object Append can extend (5 MiB on
	// S3, whose parts but the last must be that large); a smaller one is
	// rewritten whole, which costs at most this much more.
	MinAppendSize() int64
}

// sectionOf returns n bytes of src from off as an io.ReaderAt.
func sectionOf(src io.ReaderAt, off, n int64) *io.SectionReader {
	return io.NewSectionReader(src, off, n)
}
