//go:build !byok_crashpoints

package testclock_test

import (
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/testclock"
)

// TestProductionIgnoresOffset checks that a production build never shifts the clock.
func TestProductionIgnoresOffset(t *testing.T) {
	t.Setenv("BYOK_TEST_CLOCK_OFFSET", "-240h")
	before := time.Now()
	got := testclock.Now()
	if testclock.Enabled || got.Before(before) || got.Sub(before) > time.Hour {
		t.Errorf("Now() = %v with the offset set, want about %v (Enabled = %v)", got, before, testclock.Enabled)
	}
}
