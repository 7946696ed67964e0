//go:build unix

package chaintest

import (
	"syscall"
	"time"
)

// ProcessCPU returns the CPU time (user and system) the process has used so far: on a shared
// machine it measures the work where wall time measures the neighbours too. It is 0 where it
// cannot be measured.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
