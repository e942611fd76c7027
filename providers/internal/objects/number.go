package objects

// Int64 reads a number of an unstructured object, which decoding leaves as int64 (or float64
// from JSON, int or int32 when built in code); ok is false for anything else, a missing value
// included.
func Int64(v any) (n int64, ok bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int:
		return int64(x), true
	case float64:
		return int64(x), true
	}
	return 0, false
}
