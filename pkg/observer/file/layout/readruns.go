package layout

import (
	"context"
	"sync"

	"github.com/sacred-go/sacred/pkg/observer"
)

// ReadRuns reads the runs named by ids, workers at a time, and returns
// them in the order of ids, leaving out those read gives nil for (a
// directory that holds no run). The first error in the order of ids is
// returned, so that the answer does not depend on timing. newRead is
// called once per worker: a worker may keep a buffer of its own.
//
// The file store reads a few at a time to overlap system calls with
// decoding; an object store many more, as each read waits on the network.
func ReadRuns(ctx context.Context, ids []string, workers int, newRead func() func(id string) (*observer.Run, error)) ([]*observer.Run, error) {
	runs := make([]*observer.Run, len(ids))
	errs := make([]error, len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(workers, len(ids))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			read := newRead()
			for i := range next {
				runs[i], errs[i] = read(ids[i])
			}
		}()
	}
	for i := range ids {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := runs[:0]
	for i, run := range runs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if run != nil {
			out = append(out, run)
		}
	}
	return out, nil
}
