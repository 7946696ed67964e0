//go:build !byok_crashpoints

// Package testclock is the stations' wall clock, with a hook for the resilience tests: in
// binaries built with the byok_crashpoints build tag, Now is shifted by the duration in
// BYOK_TEST_CLOCK_OFFSET (for example "+10m" or "-90s"), so that a test can run one station
// with a clock that disagrees with the other's. Production builds ignore the variable and
// return time.Now. The command-line script tests, which run the stations inside the test
// binary, honour the same variable through their command wrappers (shared/clitest.Clock).
package testclock

import "time"

// Enabled reports whether this build honours BYOK_TEST_CLOCK_OFFSET.
const Enabled = false

// Now returns the current time.
func Now() time.Time { return time.Now() }
