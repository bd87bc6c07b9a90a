package observer

// Unwrapper is implemented by decorators (retry, the durable queue, ...):
// Unwrap returns the observer they wrap.
type Unwrapper interface {
	Unwrap() Observer
}

// As finds the first observer in o's chain of decorators, o included, that
// implements T, in the spirit of errors.As and restic's AsBackend. It lets
// the runner find optional interfaces such as OutputFileOwner through any
// number of wrappers.
func As[T any](o Observer) (T, bool) {
	for o != nil {
		if t, ok := o.(T); ok {
			return t, true
		}
		u, ok := o.(Unwrapper)
		if !ok {
			break
		}
		o = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Innermost returns the observer at the bottom of o's chain of decorators.
func Innermost(o Observer) Observer {
	for {
		u, ok := o.(Unwrapper)
		if !ok {
			return o
		}
		o = u.Unwrap()
	}
}
