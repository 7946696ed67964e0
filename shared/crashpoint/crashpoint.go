//go:build byok_crashpoints

package crashpoint

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Enabled reports whether this build stops at crash points.
const Enabled = true

var (
	mu   sync.Mutex
	hits = map[string]int{}
)

// Hit kills the process with SIGKILL if BYOK_CRASHPOINT names this point ("name" for the
// first time it is reached, "name@N" for the N-th time).
func Hit(name string) {
	want := os.Getenv("BYOK_CRASHPOINT")
	if want == "" {
		return
	}
	point, nth := want, 1
	if i := strings.LastIndexByte(want, '@'); i >= 0 {
		point = want[:i]
		if n, err := strconv.Atoi(want[i+1:]); err == nil {
			nth = n
		}
	}
	if point != name {
		return
	}
	mu.Lock()
	hits[name]++
	n := hits[name]
	mu.Unlock()
	if n == nth {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not deliverable to ourselves late; never return
	}
}
