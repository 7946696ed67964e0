package integration_test

import (
	"os"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

// testClockSkew runs the ceremony with one station's clock shifted (BYOK_TEST_CLOCK_OFFSET,
// honoured by the test builds only) against the policy's --max-clock-skew. Within the
// tolerance the ceremony finishes and the audit passes. Beyond it, the first command that would
// write a bundle created before the other station's bundle it builds on refuses with clock
// skew (exit 3) and writes nothing to the medium, which still verifies and audits clean; once
// the clock is set right, the ceremony finishes from that command.
func testClockSkew(t *testing.T, s *resSuite) {
	tests := []struct {
		name            string
		maxSkew         string // the policy's --max-clock-skew
		offline, online string // clock offsets
		skewed          bool
	}{
		{"offline-2m-behind/5m-allowed", "5m", "-2m", "", false},
		{"offline-2m-ahead/5m-allowed", "5m", "+2m", "", false},
		{"online-4m-behind/5m-allowed", "5m", "", "-4m", false},
		{"offline-10m-behind/30m-allowed", "30m", "-10m", "", false},
		{"offline-10m-behind/5m-allowed", "5m", "-10m", "", true},
		{"offline-10m-ahead/5m-allowed", "5m", "+10m", "", true},
		{"online-3m-ahead/1m-allowed", "1m", "", "+3m", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newResRig(t, s, "skew-"+strings.NewReplacer("/", "-", "+", "p").Replace(tt.name))
			r.initArgs = []string{"--max-clock-skew", tt.maxSkew}
			if tt.offline != "" {
				r.offEnv = []string{"BYOK_TEST_CLOCK_OFFSET=" + tt.offline}
			}
			if tt.online != "" {
				r.onEnv = []string{"BYOK_TEST_CLOCK_OFFSET=" + tt.online}
			}
			if !tt.skewed {
				r.steps(0, len(resCeremony))
				r.converged()
				return
			}
			refused := -1
			for i, st := range resCeremony {
				medium := func() map[string][32]byte {
					if _, err := os.Stat(r.medium()); err != nil {
						return nil // before the first command made it
					}
					return rigState(t, r.medium())
				}
				before := medium()
				res := r.run(st.station, "", st.args(r)...)
				if res.code == 0 {
					if st.learn != nil {
						st.learn(r)
					}
					continue
				}
				if res.code != exitcode.Verify || !strings.Contains(res.stderr, "clock skew") || !strings.Contains(res.stderr, "clocks disagree") {
					t.Fatalf("%s: exit %d, want 0, or 3 for clock skew with what to do\n%s\n%s", st.name, res.code, res.stdout, res.stderr)
				}
				if diff := changed(before, medium()); len(diff) > 0 {
					t.Errorf("%s refused for clock skew but changed the medium: %v", st.name, diff)
				}
				refused = i
				break
			}
			if refused < 0 {
				t.Fatal("no command refused: the medium now holds bundles the stations' clocks make contradictory")
			}
			t.Logf("%s: the first command to refuse was %s", tt.name, resCeremony[refused].name)
			if refused > stepIndex("trust") {
				r.must(0, onlineStation, "verify")
				for _, station := range []string{offlineStation, onlineStation} {
					if rep := r.audit(0, station); rep.Verdict != "PASS" {
						t.Errorf("byok-%s audit after the refusal: %+v, want PASS", station, rep)
					}
				}
			}
			// Set the clock right; the ceremony goes on from the command that refused. A clock
			// that was ahead dated bundles in the future: the other station can build on them
			// once its own clock has passed them, simulated here by moving both clocks.
			r.offEnv, r.onEnv = nil, nil
			for _, off := range []string{tt.offline, tt.online} {
				if strings.HasPrefix(off, "+") {
					r.offEnv = []string{"BYOK_TEST_CLOCK_OFFSET=" + off}
					r.onEnv = r.offEnv
				}
			}
			r.steps(refused, len(resCeremony))
			r.converged()
		})
	}
}
