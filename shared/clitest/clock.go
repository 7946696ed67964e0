package clitest

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/testclock"
)

// Clock returns the clock a script's command runs with: the wall clock shifted by the
// duration in $BYOK_TEST_CLOCK_OFFSET (testclock.EnvOffset, e.g. "+192h" for eight days
// on), as in the byok_crashpoints builds; nil if the variable is unset or empty. Only the
// testscript command wrappers of the binaries' main_test.go call it, so a script can run a
// command days later (`env BYOK_TEST_CLOCK_OFFSET=+192h`); the binaries themselves never
// read the variable. It panics on a value that is not a duration: a script that asked for a
// shifted clock must not run with the right one.
func Clock() func() time.Time {
	v := os.Getenv(testclock.EnvOffset)
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		panic(fmt.Sprintf("%s=%q: %v", testclock.EnvOffset, v, err))
	}
	return func() time.Time { return time.Now().Add(d) }
}

// CheckBinaryHasNoClock fails t if the command in the current folder (a binary's main
// package) depends on this package, or on no testclock at all: built without this
// package, the binary cannot read $BYOK_TEST_CLOCK_OFFSET through Clock, and its
// testclock is the production one, which ignores the variable (shared/testclock's
// TestProductionIgnoresOffset).
func CheckBinaryHasNoClock(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	clitest := reflect.TypeFor[Leaf]().PkgPath()
	testclockPkg := path.Join(path.Dir(clitest), "testclock")
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, testclockPkg) {
		t.Fatalf("the binary does not depend on %s: is it the right package?\n%s", testclockPkg, out)
	}
	if slices.Contains(deps, clitest) {
		t.Errorf("the binary depends on %s, whose Clock reads %s", clitest, testclock.EnvOffset)
	}
}
