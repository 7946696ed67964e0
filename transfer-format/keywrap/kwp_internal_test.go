package keywrap

import (
	"crypto/aes"
	"encoding/binary"
	"fmt"
	"testing"
)

// encryptRaw wraps A || P with RFC 5649's encryption step but lets the test choose A and the
// padding, so each clause of UnwrapPad's integrity check can be exercised on its own.
func encryptRaw(t *testing.T, kek []byte, prefix [4]byte, mli uint32, p []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8+len(p))
	copy(buf, prefix[:])
	binary.BigEndian.PutUint32(buf[4:8], mli)
	copy(buf[8:], p)
	if len(buf) == 16 {
		block.Encrypt(buf, buf)
	} else {
		wrap(block, buf)
	}
	return buf
}

func TestUnwrapPadIntegrityChecks(t *testing.T) {
	kek := make([]byte, 32)
	for i := range kek {
		kek[i] = byte(i)
	}
	for _, blocks := range []int{1, 2, 5} {
		n := 8 * blocks
		filled := make([]byte, n) // no zero bytes anywhere
		for i := range filled {
			filled[i] = byte(i + 1)
		}
		zeroTail := func(mli int) []byte {
			p := append([]byte(nil), filled...)
			clear(p[mli:])
			return p
		}
		tests := []struct {
			name   string
			prefix [4]byte
			mli    uint32
			p      []byte
			wantOK bool
		}{
			{"full last block", aivPrefix, uint32(n), filled, true},
			{"one byte in last block", aivPrefix, uint32(n - 7), zeroTail(n - 7), true},
			{"RFC 3394 default IV", [4]byte{0xA6, 0xA6, 0xA6, 0xA6}, uint32(n), filled, false},
			{"prefix last byte off", [4]byte{0xA6, 0x59, 0x59, 0xA7}, uint32(n), filled, false},
			{"length zero", aivPrefix, 0, make([]byte, n), false},
			{"length a block too short", aivPrefix, uint32(n - 8), zeroTail(n - 8), false},
			{"length one past the end", aivPrefix, uint32(n + 1), filled, false},
			{"length maximal", aivPrefix, 0xffffffff, filled, false},
		}
		for pad := 1; pad <= 7; pad++ {
			for pos := n - pad; pos < n; pos++ {
				p := zeroTail(n - pad)
				p[pos] = 0x01
				tests = append(tests, struct {
					name   string
					prefix [4]byte
					mli    uint32
					p      []byte
					wantOK bool
				}{fmt.Sprintf("pad %d nonzero at %d", pad, pos), aivPrefix, uint32(n - pad), p, false})
			}
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%d blocks/%s", blocks, tt.name), func(t *testing.T) {
				ct := encryptRaw(t, kek, tt.prefix, tt.mli, tt.p)
				got, err := UnwrapPad(kek, ct)
				if !tt.wantOK {
					if err != ErrUnwrap || got != nil {
						t.Fatalf("UnwrapPad = %d bytes, %v; want nil, ErrUnwrap", len(got), err)
					}
					return
				}
				if err != nil {
					t.Fatalf("UnwrapPad: %v", err)
				}
				if string(got) != string(tt.p[:tt.mli]) {
					t.Errorf("UnwrapPad = %x, want %x", got, tt.p[:tt.mli])
				}
			})
		}
	}
}

func TestLessThan(t *testing.T) {
	tests := []struct {
		a, b uint64
		want uint64
	}{
		{0, 0, 0}, {0, 1, 1}, {1, 0, 0}, {7, 8, 1}, {8, 8, 0}, {9, 8, 0},
		{0, 0xffffffff, 1}, {1 << 40, 0xffffffff, 0}, {1<<63 - 1, 1<<63 - 2, 0}, {1<<63 - 2, 1<<63 - 1, 1},
	}
	for _, tt := range tests {
		if got := lessThan(tt.a, tt.b); got != tt.want {
			t.Errorf("lessThan(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
