package harness

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Sample is one line of the Prometheus text exposition format: a metric name, its labels and
// its value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples is a parsed exposition.
type Samples []Sample

// ParsePromText parses the Prometheus text exposition format (version 0.0.4). Comments and
// blank lines are skipped; a timestamp after the value is ignored.
func ParsePromText(r io.Reader) (Samples, error) {
	var out Samples
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		s, err := parseSampleLine(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading exposition: %w", err)
	}
	return out, nil
}

func parseSampleLine(text string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	end := strings.IndexAny(text, "{ \t")
	if end <= 0 {
		return s, fmt.Errorf("no value in %q", text)
	}
	s.Name = text[:end]
	rest := text[end:]
	if rest[0] == '{' {
		n, err := parseLabels(rest, s.Labels)
		if err != nil {
			return s, err
		}
		rest = rest[n:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value in %q", text)
	}
	v, err := parseValue(fields[0])
	if err != nil {
		return s, err
	}
	s.Value = v
	return s, nil
}

func parseValue(text string) (float64, error) {
	switch text {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q: %w", text, err)
	}
	return v, nil
}

// parseLabels reads `{a="x",b="y"}` from the start of text into labels and returns how many
// bytes it consumed.
func parseLabels(text string, labels map[string]string) (int, error) {
	i := 1
	for {
		for i < len(text) && (text[i] == ' ' || text[i] == ',') {
			i++
		}
		if i >= len(text) {
			return 0, fmt.Errorf("unterminated labels in %q", text)
		}
		if text[i] == '}' {
			return i + 1, nil
		}
		eq := strings.IndexByte(text[i:], '=')
		if eq < 0 || i+eq+1 >= len(text) || text[i+eq+1] != '"' {
			return 0, fmt.Errorf("bad label in %q", text)
		}
		name := strings.TrimSpace(text[i : i+eq])
		value, n, err := unquote(text[i+eq+2:])
		if err != nil {
			return 0, err
		}
		labels[name] = value
		i += eq + 2 + n
	}
}

// unquote reads an escaped label value up to its closing quote and returns the value and the
// bytes consumed, the quote included.
func unquote(text string) (string, int, error) {
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 >= len(text) {
				return "", 0, fmt.Errorf("dangling escape in %q", text)
			}
			i++
			switch text[i] {
			case 'n':
				b.WriteByte('\n')
			default:
				b.WriteByte(text[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated label value in %q", text)
}

// Sum adds the values of the samples named name whose labels include every pair in match.
func (ss Samples) Sum(name string, match map[string]string) float64 {
	total := 0.0
	for _, s := range ss {
		if s.Name == name && matches(s.Labels, match) {
			total += s.Value
		}
	}
	return total
}

// MergeSamples joins the scrapes of several processes into one exposition, so that Sum and
// HistogramBuckets on it add over the processes. That is right for counters and histogram
// buckets, whose sum over the replicas of a sharded controller is the whole controller's count
// (cumulative buckets stay cumulative when added bound by bound, and BucketDelta still gives
// the observations made between two merged scrapes); it is meaningless for gauges such as
// go_goroutines, which are read per process.
func MergeSamples(scrapes ...Samples) Samples {
	n := 0
	for _, ss := range scrapes {
		n += len(ss)
	}
	out := make(Samples, 0, n)
	for _, ss := range scrapes {
		out = append(out, ss...)
	}
	return out
}

func matches(labels, match map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Bucket is one cumulative histogram bucket: the count of observations at or below UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// HistogramBuckets sums the `_bucket` series of histogram name across label sets matching
// match, sorted by upper bound.
func (ss Samples) HistogramBuckets(name string, match map[string]string) []Bucket {
	byBound := map[float64]float64{}
	for _, s := range ss {
		if s.Name != name+"_bucket" || !matches(s.Labels, match) {
			continue
		}
		le, err := parseValue(s.Labels["le"])
		if err != nil {
			continue
		}
		byBound[le] += s.Value
	}
	out := make([]Bucket, 0, len(byBound))
	for le, c := range byBound {
		out = append(out, Bucket{UpperBound: le, Count: c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UpperBound < out[j].UpperBound })
	return out
}

// BucketDelta subtracts before from after, bucket by bucket (the observations made between
// two scrapes). Buckets missing from before count as zero.
func BucketDelta(before, after []Bucket) []Bucket {
	prev := map[float64]float64{}
	for _, b := range before {
		prev[b.UpperBound] = b.Count
	}
	out := make([]Bucket, len(after))
	for i, b := range after {
		out[i] = Bucket{UpperBound: b.UpperBound, Count: b.Count - prev[b.UpperBound]}
	}
	return out
}

// HistogramQuantile estimates quantile q (0..1) from cumulative buckets by linear
// interpolation within the bucket holding it, as PromQL's histogram_quantile does. It returns
// NaN when there are no observations; a quantile in the +Inf bucket returns the highest finite
// bound.
func HistogramQuantile(q float64, buckets []Bucket) float64 {
	if len(buckets) == 0 {
		return math.NaN()
	}
	total := buckets[len(buckets)-1].Count
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	lowerBound, lowerCount := 0.0, 0.0
	for _, b := range buckets {
		if b.Count >= rank {
			if math.IsInf(b.UpperBound, 1) {
				return lowerBound
			}
			if b.Count == lowerCount {
				return b.UpperBound
			}
			return lowerBound + (b.UpperBound-lowerBound)*(rank-lowerCount)/(b.Count-lowerCount)
		}
		lowerBound, lowerCount = b.UpperBound, b.Count
	}
	return lowerBound
}
