//go:build byok_crashpoints

package testclock

import (
	"sync"
	"testing"
	"time"
)

// TestOffset checks that test builds shift the clock by the variable's duration.
func TestOffset(t *testing.T) {
	tests := []struct {
		env  string
		want time.Duration
	}{
		{"", 0},
		{"+10m", 10 * time.Minute},
		{"-90s", -90 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(EnvOffset, tt.env)
			offset = sync.OnceValue(readOffset)
			got := Now().Sub(time.Now()) - tt.want
			if got < -time.Minute || got > time.Minute {
				t.Errorf("with %s=%q Now() is off by %v from the offset", EnvOffset, tt.env, got)
			}
		})
	}
}

// TestBadOffset checks that a test build refuses to run with an offset it cannot read.
func TestBadOffset(t *testing.T) {
	t.Setenv(EnvOffset, "ten minutes")
	offset = sync.OnceValue(readOffset)
	defer func() {
		if recover() == nil {
			t.Error("Now() did not panic on a bad offset")
		}
	}()
	Now()
}
