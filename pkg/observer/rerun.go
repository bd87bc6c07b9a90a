package observer

// RunRef names a run of a store: Meta.RerunOf, recorded by every store as
// meta.rerun_of {"kind": ..., "store": ..., "id": ...}.
type RunRef struct {
	// Kind is the store's observer option, e.g. "file_storage".
	Kind string `json:"kind"`
	// Store is the store's value with its passwords removed, as given.
	Store string `json:"store"`
	// ID is the run's id in that store.
	ID string `json:"id"`
}

// Map is r as meta.rerun_of.
func (r *RunRef) Map() map[string]any {
	return map[string]any{"kind": r.Kind, "store": r.Store, "id": r.ID}
}

// RunRefOf reads meta.rerun_of back from a decoded JSON value; nil when v
// is not one.
func RunRefOf(v any) *RunRef {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	r := &RunRef{}
	r.Kind, _ = m["kind"].(string)
	r.Store, _ = m["store"].(string)
	r.ID, _ = m["id"].(string)
	if r.Kind == "" && r.ID == "" {
		return nil
	}
	return r
}
