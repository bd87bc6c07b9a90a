package observer

// CloneValue copies the maps and slices of a decoded JSON value
// (map[string]any, []any, scalars), so that the copy shares nothing with
// the original: the info dict and config can then be handed to observers
// while the child keeps changing them.
func CloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return CloneMap(x)
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = CloneValue(e)
		}
		return s
	default:
		return v
	}
}

// CloneMap is CloneValue for a map; a nil map gives an empty one.
func CloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = CloneValue(v)
	}
	return out
}
