package convert

import (
	"fmt"
	"slices"
	"strconv"
)

// node is one map of an input object being converted. Every key the conversion reads is marked;
// the keys nobody read are what the conversion lost, and each becomes a Warning, so that nothing
// is ever dropped silently.
type node struct {
	path string
	m    map[string]any
	used map[string]bool
	// children are the nodes made of this node's maps, reported with it.
	children []*node
}

func newNode(path string, m map[string]any) *node {
	return &node{path: path, m: m, used: map[string]bool{}}
}

// field is the path of key under n.
func (n *node) field(key string) string {
	if n.path == "" {
		return key
	}
	return n.path + "." + key
}

// has reports whether key is set, without reading it.
func (n *node) has(key string) bool {
	if n == nil {
		return false
	}
	_, ok := n.m[key]
	return ok
}

// raw reads key as it is.
func (n *node) raw(key string) (any, bool) {
	if n == nil {
		return nil, false
	}
	v, ok := n.m[key]
	if ok {
		n.used[key] = true
	}
	return v, ok
}

// str reads key as a string; a number or boolean is written as YAML would.
func (n *node) str(key string) string {
	v, _ := n.raw(key)
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// integer reads key as an integer; ok is false when it is absent or not a whole number.
func (n *node) integer(key string) (int64, bool) {
	v, found := n.raw(key)
	if !found {
		return 0, false
	}
	switch v := v.(type) {
	case float64:
		if v == float64(int64(v)) {
			return int64(v), true
		}
	case int64:
		return v, true
	case string:
		i, err := strconv.ParseInt(v, 10, 64)
		return i, err == nil
	}
	return 0, false
}

// boolean reads key as a boolean; ok is false when it is absent.
func (n *node) boolean(key string) (value, ok bool) {
	v, found := n.raw(key)
	b, isBool := v.(bool)
	return b, found && isBool
}

// child reads key as a map; nil when absent.
func (n *node) child(key string) *node {
	v, _ := n.raw(key)
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	c := newNode(n.field(key), m)
	n.children = append(n.children, c)
	return c
}

// items reads key as a list of maps.
func (n *node) items(key string) []*node {
	v, _ := n.raw(key)
	list, _ := v.([]any)
	out := make([]*node, 0, len(list))
	for i, item := range list {
		m, _ := item.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		c := newNode(fmt.Sprintf("%s[%d]", n.field(key), i), m)
		n.children = append(n.children, c)
		out = append(out, c)
	}
	return out
}

// strings reads key as a list of strings.
func (n *node) strings(key string) []string {
	v, _ := n.raw(key)
	list, _ := v.([]any)
	var out []string
	for _, item := range list {
		if s, ok := item.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// stringMap reads key as a map of strings.
func (n *node) stringMap(key string) map[string]string {
	v, _ := n.raw(key)
	m, _ := v.(map[string]any)
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, item := range m {
		out[k] = fmt.Sprint(item)
	}
	return out
}

// skip marks keys as read: fields KULTA needs no counterpart for (the API server's own, or
// settings whose job KULTA does by itself).
func (n *node) skip(keys ...string) {
	if n == nil {
		return
	}
	for _, k := range keys {
		n.used[k] = true
	}
}

// skipAll marks every key of n and of the nodes made of it as read: a part of the input that a
// warning already accounts for as a whole.
func (n *node) skipAll() {
	if n == nil {
		return
	}
	for k := range n.m {
		n.used[k] = true
	}
	for _, c := range n.children {
		c.skipAll()
	}
}

// unread lists, in order, the paths of the keys no conversion read, in n and its children.
func (n *node) unread() []string {
	if n == nil {
		return nil
	}
	var out []string
	keys := make([]string, 0, len(n.m))
	for k := range n.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !n.used[k] {
			out = append(out, n.field(k))
		}
	}
	for _, c := range n.children {
		out = append(out, c.unread()...)
	}
	slices.Sort(out)
	return out
}
