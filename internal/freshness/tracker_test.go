package freshness

import (
	"sync"
	"testing"
)

func TestFresh(t *testing.T) {
	tests := []struct {
		name    string
		written string // "" records nothing
		cached  string
		want    bool
	}{
		{name: "nothing written", cached: "5", want: true},
		{name: "cache at the write", written: "10", cached: "10", want: true},
		{name: "cache after the write", written: "10", cached: "11", want: true},
		{name: "longer is later", written: "99", cached: "100", want: true},
		{name: "cache before the write", written: "10", cached: "9", want: false},
		{name: "shorter is earlier", written: "100", cached: "99", want: false},
		{name: "not comparable and different", written: "abc", cached: "abd", want: false},
		{name: "not comparable but equal", written: "abc", cached: "abc", want: true},
		{name: "leading zero is not comparable", written: "10", cached: "011", want: false},
		{name: "empty cached version", written: "10", cached: "", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr Tracker
			tr.Wrote("k", tt.written)
			if got := tr.Fresh("k", tt.cached); got != tt.want {
				t.Fatalf("Fresh(%q) after Wrote(%q) = %v, want %v", tt.cached, tt.written, got, tt.want)
			}
		})
	}
}

func TestFreshForgetsOnceCaughtUp(t *testing.T) {
	var tr Tracker
	tr.Wrote("k", "10")
	if tr.Fresh("k", "9") {
		t.Fatal("stale cache reported fresh")
	}
	if !tr.Fresh("k", "10") {
		t.Fatal("cache at the write reported stale")
	}
	// The write is forgotten: an older copy (say, after a re-list) is no longer held against it.
	if !tr.Fresh("k", "9") {
		t.Fatal("write not forgotten after the cache caught up")
	}
}

func TestForgetAndKeys(t *testing.T) {
	var tr Tracker
	tr.Wrote("a", "10")
	tr.Wrote("b", "20")
	tr.Forget("a")
	if !tr.Fresh("a", "1") {
		t.Fatal("forgotten key still tracked")
	}
	if tr.Fresh("b", "19") {
		t.Fatal("another key's write was lost")
	}
	tr.Wrote("b", "")
	if tr.Fresh("b", "19") {
		t.Fatal("an empty resourceVersion replaced a recorded write")
	}
}

func TestConcurrentUse(t *testing.T) {
	var tr Tracker
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				tr.Wrote(i, "1"+string(rune('0'+j%10)))
				tr.Fresh(i, "19")
			}
		}()
	}
	wg.Wait()
	for i := range 8 {
		if !tr.Fresh(i, "19") {
			t.Fatalf("key %d: 19 is at or after every version written", i)
		}
	}
}
