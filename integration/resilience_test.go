package integration_test

// The resilience suite (DESIGN.md §9): kill -9 at every crash point of every command that
// writes, damaged and unwritable media, leftovers, concurrent writers and clock skew between
// the stations, all with the real binaries, SoftHSM2 and the local Key Vault.

import (
	"testing"
)

// TestResilience builds both binaries (as released and with crash points) once and starts
// one local Key Vault for every subtest.
func TestResilience(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries and runs hundreds of commands")
	}
	s := newResSuite(t)
	t.Run("KillPoints", func(t *testing.T) { testKillPoints(t, s) })
	t.Run("KillDuringRecovery", func(t *testing.T) { testKillDuringRecovery(t, s) })
	t.Run("DamagedMedium", func(t *testing.T) { testDamagedMedium(t, s) })
	t.Run("FullMedium", func(t *testing.T) { testFullMedium(t, s) })
	t.Run("ReadOnlyMedium", func(t *testing.T) { testReadOnlyMedium(t, s) })
	t.Run("ReadingIsReadOnly", func(t *testing.T) { testReadingIsReadOnly(t, s) })
	t.Run("Leftovers", func(t *testing.T) { testLeftovers(t, s) })
	t.Run("ConcurrentUse", func(t *testing.T) { testConcurrentUse(t, s) })
	t.Run("ClockSkew", func(t *testing.T) { testClockSkew(t, s) })
	t.Run("FanOutKillRerun", func(t *testing.T) { testFanOutKillRerun(t, s) })
}
