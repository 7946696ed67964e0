//go:build !byok_crashpoints

// Package crashpoint marks the places where the resilience tests kill a process (SPEC: the
// failure model). Production builds compile every Hit to nothing; only binaries built with
// the byok_crashpoints build tag stop at the point named by BYOK_CRASHPOINT, with SIGKILL, as a
// power cut or a pulled stick would stop them.
package crashpoint

// Enabled reports whether this build stops at crash points.
const Enabled = false

// Hit does nothing in production builds.
func Hit(string) {}
