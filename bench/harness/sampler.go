package harness

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Point is one sample of the controller process. HeapInuse and Goroutines come from /metrics
// and are set only when Scraped.
type Point struct {
	T          time.Time
	RSS        uint64
	HWM        uint64
	Anon, File uint64
	CPUSeconds float64
	Scraped    bool
	HeapInuse  float64
	Goroutines float64
	// GCPercent is the collector's goal the runtime reports (go_gc_gogc_percent), 0 when the
	// scrape had none.
	GCPercent float64
}

// Sampler reads the controller's /proc entries every interval and its /metrics every
// scrapeEvery. Reading /proc costs the controller nothing; a scrape makes it render every
// series (11 per Rollout), which at thousands of Rollouts is megabytes of short-lived heap, so
// the bench scrapes about as often as a Prometheus would rather than every second.
type Sampler struct {
	pid         int
	url         string
	hc          *http.Client
	interval    time.Duration
	scrapeEvery time.Duration
	lastScrape  time.Time

	mu       sync.Mutex
	points   []Point
	failures int
	lastErr  error
}

// NewSampler samples process pid every interval and its metrics at url every scrapeEvery.
func NewSampler(pid int, url string, interval, scrapeEvery time.Duration) *Sampler {
	return &Sampler{pid: pid, url: url, hc: &http.Client{Timeout: 5 * time.Second}, interval: interval, scrapeEvery: scrapeEvery}
}

// Run samples until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.record(s.sample(ctx))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SampleNow reads the process's /proc entries at once and keeps the point, without a scrape.
// The runner takes one at each snapshot, so that a wave shorter than the interval (a single
// Rollout's takes a fraction of a second) still has a sample of its own.
func (s *Sampler) SampleNow() {
	s.record(readProc(s.pid))
}

func (s *Sampler) record(p Point, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failures++
		s.lastErr = err
		return
	}
	s.points = append(s.points, p)
}

// readProc reads the memory and CPU of process pid.
func readProc(pid int) (Point, error) {
	p := Point{T: time.Now()}
	mem, err := ReadProcMemory(pid)
	if err != nil {
		return p, err
	}
	st, err := ReadProcStat(pid)
	if err != nil {
		return p, err
	}
	p.RSS, p.HWM, p.Anon, p.File, p.CPUSeconds = mem.RSS, mem.HWM, mem.Anon, mem.File, st.CPUSeconds
	return p, nil
}

func (s *Sampler) sample(ctx context.Context) (Point, error) {
	p, err := readProc(s.pid)
	if err != nil {
		return p, err
	}
	if p.T.Sub(s.lastScrape) < s.scrapeEvery {
		return p, nil
	}
	ss, err := Scrape(ctx, s.hc, s.url)
	if err != nil {
		return p, err
	}
	s.lastScrape = p.T
	p.Scraped = true
	p.HeapInuse = ss.Sum("go_memstats_heap_inuse_bytes", nil)
	p.Goroutines = ss.Sum("go_goroutines", nil)
	p.GCPercent = ss.Sum("go_gc_gogc_percent", nil)
	return p, nil
}

// GCPercent is the collector's goal the controller's last scrape that reported one gave
// (--gc-percent, or GOGC from the environment), 0 when none did.
func (s *Sampler) GCPercent() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range slices.Backward(s.points) {
		if p.GCPercent != 0 {
			return p.GCPercent
		}
	}
	return 0
}

// Failures is how many samples failed and the last error.
func (s *Sampler) Failures() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures, s.lastErr
}

// Window summarises the samples taken between from and to.
type Window struct {
	Samples int    `json:"samples"`
	Scrapes int    `json:"scrapes"`
	PeakRSS uint64 `json:"peakRSSBytes"`
	MeanRSS uint64 `json:"meanRSSBytes"`
	HWM     uint64 `json:"vmHWMBytes"`
	// PeakAnon and PeakFile are the highest anonymous and file-backed parts of RSS sampled.
	PeakAnon       uint64  `json:"peakRssAnonBytes,omitempty"`
	PeakFile       uint64  `json:"peakRssFileBytes,omitempty"`
	PeakHeapInuse  float64 `json:"peakHeapInuseBytes"`
	MeanHeapInuse  float64 `json:"meanHeapInuseBytes"`
	PeakGoroutines float64 `json:"peakGoroutines"`
	LastGoroutines float64 `json:"lastGoroutines"`
}

// Window summarises the samples taken between from and to.
func (s *Sampler) Window(from, to time.Time) Window {
	s.mu.Lock()
	defer s.mu.Unlock()
	return summariseWindow(s.points, from, to)
}

func summariseWindow(points []Point, from, to time.Time) Window {
	var w Window
	var rssSum, heapSum float64
	for _, p := range points {
		if p.T.Before(from) || p.T.After(to) {
			continue
		}
		w.Samples++
		rssSum += float64(p.RSS)
		w.PeakRSS = max(w.PeakRSS, p.RSS)
		w.HWM = max(w.HWM, p.HWM)
		w.PeakAnon, w.PeakFile = max(w.PeakAnon, p.Anon), max(w.PeakFile, p.File)
		if !p.Scraped {
			continue
		}
		w.Scrapes++
		heapSum += p.HeapInuse
		w.PeakHeapInuse = max(w.PeakHeapInuse, p.HeapInuse)
		w.PeakGoroutines = max(w.PeakGoroutines, p.Goroutines)
		w.LastGoroutines = p.Goroutines
	}
	if w.Samples > 0 {
		w.MeanRSS = uint64(rssSum / float64(w.Samples))
	}
	if w.Scrapes > 0 {
		w.MeanHeapInuse = heapSum / float64(w.Scrapes)
	}
	return w
}
