package clitest

import (
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/testclock"
)

// TestClock checks that the scripts' clock is the wall clock shifted by the variable, none
// when it is unset, and a panic when it is not a duration.
func TestClock(t *testing.T) {
	t.Setenv(testclock.EnvOffset, "")
	if Clock() != nil {
		t.Error("Clock() with the variable unset is not nil")
	}
	for _, tt := range []struct {
		env  string
		want time.Duration
	}{{"+192h", 192 * time.Hour}, {"-90s", -90 * time.Second}} {
		t.Setenv(testclock.EnvOffset, tt.env)
		now := Clock()
		if now == nil {
			t.Fatalf("Clock() with %s=%q is nil", testclock.EnvOffset, tt.env)
		}
		if off := now().Sub(time.Now()) - tt.want; off < -time.Minute || off > time.Minute {
			t.Errorf("with %s=%q the clock is off by %v from the offset", testclock.EnvOffset, tt.env, off)
		}
	}
	t.Setenv(testclock.EnvOffset, "eight days")
	defer func() {
		if recover() == nil {
			t.Error("Clock() did not panic on a value that is not a duration")
		}
	}()
	Clock()
}
