//go:build byok_crashpoints

package testclock

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// Enabled reports whether this build honours BYOK_TEST_CLOCK_OFFSET.
const Enabled = true

// offset is read once per process.
var offset = sync.OnceValue(readOffset)

func readOffset() time.Duration {
	v := os.Getenv(EnvOffset)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		// A test that asked for a skewed clock must not run with a right one.
		panic(fmt.Sprintf("%s=%q: %v", EnvOffset, v, err))
	}
	return d
}

// Now returns the current time shifted by BYOK_TEST_CLOCK_OFFSET. It panics if the variable
// is set but is not a duration.
func Now() time.Time { return time.Now().Add(offset()) }
