package harness

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Point is one sample of the controller process.
type Point struct {
	T          time.Time
	RSS        uint64
	HWM        uint64
	CPUSeconds float64
	HeapInuse  float64
	Goroutines float64
}

// Sampler reads the controller's /proc entries and /metrics every interval.
type Sampler struct {
	pid      int
	url      string
	hc       *http.Client
	interval time.Duration

	mu       sync.Mutex
	points   []Point
	failures int
	lastErr  error
}

// NewSampler samples process pid and its metrics at url every interval.
func NewSampler(pid int, url string, interval time.Duration) *Sampler {
	return &Sampler{pid: pid, url: url, hc: &http.Client{Timeout: 5 * time.Second}, interval: interval}
}

// Run samples until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		p, err := s.sample(ctx)
		s.mu.Lock()
		if err != nil {
			s.failures++
			s.lastErr = err
		} else {
			s.points = append(s.points, p)
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sampler) sample(ctx context.Context) (Point, error) {
	p := Point{T: time.Now()}
	mem, err := ReadProcMemory(s.pid)
	if err != nil {
		return p, err
	}
	st, err := ReadProcStat(s.pid)
	if err != nil {
		return p, err
	}
	ss, err := Scrape(ctx, s.hc, s.url)
	if err != nil {
		return p, err
	}
	p.RSS, p.HWM, p.CPUSeconds = mem.RSS, mem.HWM, st.CPUSeconds
	p.HeapInuse = ss.Sum("go_memstats_heap_inuse_bytes", nil)
	p.Goroutines = ss.Sum("go_goroutines", nil)
	return p, nil
}

// Failures is how many samples failed and the last error.
func (s *Sampler) Failures() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures, s.lastErr
}

// Window summarises the samples taken between from and to.
type Window struct {
	Samples        int     `json:"samples"`
	PeakRSS        uint64  `json:"peakRSSBytes"`
	MeanRSS        uint64  `json:"meanRSSBytes"`
	HWM            uint64  `json:"vmHWMBytes"`
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
		heapSum += p.HeapInuse
		w.PeakRSS = max(w.PeakRSS, p.RSS)
		w.HWM = max(w.HWM, p.HWM)
		w.PeakHeapInuse = max(w.PeakHeapInuse, p.HeapInuse)
		w.PeakGoroutines = max(w.PeakGoroutines, p.Goroutines)
		w.LastGoroutines = p.Goroutines
	}
	if w.Samples > 0 {
		w.MeanRSS = uint64(rssSum / float64(w.Samples))
		w.MeanHeapInuse = heapSum / float64(w.Samples)
	}
	return w
}
