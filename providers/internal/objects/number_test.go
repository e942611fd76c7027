package objects

import "testing"

func TestInt64(t *testing.T) {
	for _, c := range []struct {
		in   any
		want int64
		ok   bool
	}{
		{int64(7), 7, true}, {int32(8), 8, true}, {9, 9, true}, {float64(10), 10, true},
		{nil, 0, false}, {"11", 0, false},
	} {
		if n, ok := Int64(c.in); n != c.want || ok != c.ok {
			t.Errorf("Int64(%#v) = %d, %t; want %d, %t", c.in, n, ok, c.want, c.ok)
		}
	}
}
