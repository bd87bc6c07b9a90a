package capture

import (
	"os"
)

// rawOut writes to one of the wrapper's streams. Windows has no SIGPIPE: a
// write to a closed pipe just fails, so the plain os.File.Write the Unix
// version avoids is safe here.
type rawOut struct {
	name string
	f    *os.File
}

func newRawOut(f *os.File) *rawOut {
	if f == nil {
		return nil
	}
	return &rawOut{name: f.Name(), f: f}
}

// write writes all of p; File.Write already loops over short writes.
func (o *rawOut) write(p []byte) error {
	_, err := o.f.Write(p)
	return err
}
