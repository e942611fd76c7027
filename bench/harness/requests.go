package harness

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// NonResource is the resource name given to requests for paths that are not API resources
// (discovery, /metrics, /healthz).
const NonResource = "(non-resource)"

// RequestKey is a request's verb, in the API server's terms (GET, LIST, WATCH, POST, PUT,
// PATCH, DELETE, ...), and its resource, with the subresource after a slash ("rollouts/status").
type RequestKey struct {
	Verb     string `json:"verb"`
	Resource string `json:"resource"`
}

// RequestCounts counts requests by verb and resource.
type RequestCounts map[RequestKey]float64

// writeVerbs are the verbs that change stored objects.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "CREATE": true, "UPDATE": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// IsWrite reports whether verb changes stored objects.
func IsWrite(verb string) bool { return writeVerbs[verb] }

// APIServerRequests reads apiserver_request_total from an API server's /metrics, summed over
// codes, groups, versions and scopes.
func APIServerRequests(ss Samples) RequestCounts {
	out := RequestCounts{}
	for _, s := range ss {
		if s.Name != "apiserver_request_total" {
			continue
		}
		res := s.Labels["resource"]
		switch {
		case res == "":
			res = NonResource
		case s.Labels["subresource"] != "":
			res += "/" + s.Labels["subresource"]
		}
		out[RequestKey{Verb: s.Labels["verb"], Resource: res}] += s.Value
	}
	return out
}

// Sub returns c - other, key by key, clamped at zero (counters read at slightly different
// moments can disagree by a request in flight).
func (c RequestCounts) Sub(other RequestCounts) RequestCounts {
	out := RequestCounts{}
	for k, v := range c {
		if d := v - other[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// Writes is the number of writing requests, excluding resources listed in except.
func (c RequestCounts) Writes(except ...string) float64 {
	total := 0.0
	for k, v := range c {
		if IsWrite(k.Verb) && !contains(except, k.Resource) {
			total += v
		}
	}
	return total
}

// Total is the number of requests of every kind.
func (c RequestCounts) Total() float64 {
	total := 0.0
	for _, v := range c {
		total += v
	}
	return total
}

// Resource is the number of writes to one resource (subresource included in the name).
func (c RequestCounts) Resource(verb, resource string) float64 {
	return c[RequestKey{Verb: verb, Resource: resource}]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Rows lists the counts sorted by resource then verb, for reports.
func (c RequestCounts) Rows() []RequestRow {
	out := make([]RequestRow, 0, len(c))
	for k, v := range c {
		if v > 0 {
			out = append(out, RequestRow{RequestKey: k, Count: v})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Resource != out[j].Resource {
			return out[i].Resource < out[j].Resource
		}
		return out[i].Verb < out[j].Verb
	})
	return out
}

// RequestRow is one line of a request table.
type RequestRow struct {
	RequestKey
	Count float64 `json:"count"`
}

// ClassifyRequest names a client request the way the API server's apiserver_request_total does.
func ClassifyRequest(method string, u *url.URL) RequestKey {
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	var rest []string
	switch {
	case len(segs) >= 3 && segs[0] == "api":
		rest = segs[2:]
	case len(segs) >= 4 && segs[0] == "apis":
		rest = segs[3:]
	default:
		return RequestKey{Verb: strings.ToUpper(method), Resource: NonResource}
	}
	if len(rest) >= 3 && rest[0] == "namespaces" && rest[2] != "status" && rest[2] != "finalize" {
		rest = rest[2:]
	}
	resource, named := rest[0], len(rest) >= 2
	if len(rest) >= 3 {
		resource += "/" + rest[2]
	}
	return RequestKey{Verb: verbOf(method, named, u.Query().Get("watch")), Resource: resource}
}

func verbOf(method string, named bool, watch string) string {
	switch method {
	case http.MethodGet:
		switch {
		case watch == "true" || watch == "1":
			return "WATCH"
		case named:
			return "GET"
		}
		return "LIST"
	case http.MethodDelete:
		if named {
			return "DELETE"
		}
		return "DELETECOLLECTION"
	}
	return strings.ToUpper(method)
}

// RequestCounter counts the requests a client sends, by verb and resource. Install it with
// rest.Config.WrapTransport.
type RequestCounter struct {
	mu     sync.Mutex
	counts RequestCounts
}

// NewRequestCounter returns an empty counter.
func NewRequestCounter() *RequestCounter { return &RequestCounter{counts: RequestCounts{}} }

// Wrap returns rt counting every request through it.
func (c *RequestCounter) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		key := ClassifyRequest(req.Method, req.URL)
		c.mu.Lock()
		c.counts[key]++
		c.mu.Unlock()
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
		}
		return resp, nil
	})
}

// Snapshot copies the counts so far.
func (c *RequestCounter) Snapshot() RequestCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(RequestCounts, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
