package occurrence

import (
	"crypto/rand"
	"fmt"
	"time"
)

// crockford is the Crockford base32 alphabet ULIDs are written in.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewULID returns a ULID (https://github.com/ulid/spec) for now: 48 bits of Unix milliseconds
// then 80 bits from crypto/rand, as 26 Crockford base32 characters. IDs sort by millisecond;
// within one millisecond their order is random (this is not the monotonic variant).
func NewULID(now time.Time) (string, error) {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (8 * (5 - i)))
	}
	if _, err := rand.Read(b[6:]); err != nil {
		return "", fmt.Errorf("reading random bits for a ULID: %w", err)
	}
	return encodeULID(b), nil
}

// encodeULID writes the 128-bit value b as 26 base32 characters, most significant first; the
// first character carries two padding bits.
func encodeULID(b [16]byte) string {
	var out [26]byte
	for i := range out {
		var v byte
		for j := range 5 {
			bit := i*5 + j - 2
			v <<= 1
			if bit >= 0 && b[bit/8]&(0x80>>(bit%8)) != 0 {
				v |= 1
			}
		}
		out[i] = crockford[v]
	}
	return string(out[:])
}
