// Package freshness remembers the resourceVersion of the controller's own last write to each
// object and tells whether a cached copy already includes that write.
//
// Reading from the informer cache saves a GET per read, but a copy older than the controller's
// own last write would make it repeat or undo what it just did. A Tracker says when the cache
// can be trusted and when the caller must read from the API server instead. It does not read
// or cache objects itself, and it must not be used to order writes of different objects.
package freshness
