package testclock

// EnvOffset names the variable holding the clock offset of test builds, a
// time.ParseDuration string such as "+192h". Production code never reads it.
const EnvOffset = "BYOK_TEST_CLOCK_OFFSET"
