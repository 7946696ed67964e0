package integration_test

import (
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

// testClockSkew runs the ceremony with one station's clock shifted (BYOK_TEST_CLOCK_OFFSET,
// honoured by the test builds only) against the policy's --max-clock-skew. Within the
// tolerance the ceremony finishes and the audit passes. Beyond it, every replay that reaches a
// bundle created before the other station's bundle it saw reports clock skew (exit 3): the
// first command that refuses, byok-online verify and the audit; no command fails otherwise.
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
			refused := ""
			for i, st := range resCeremony {
				res := r.run(st.station, "", st.args(r)...)
				if res.code == 0 {
					if st.learn != nil {
						st.learn(r)
					}
					continue
				}
				if res.code != exitcode.Verify || !strings.Contains(res.stderr+res.stdout, "clock skew") {
					t.Fatalf("%s: exit %d, want 0, or 3 for clock skew\n%s\n%s", st.name, res.code, res.stdout, res.stderr)
				}
				refused = resCeremony[i].name
				break
			}
			if refused == "" {
				refused = "none: the ceremony finished"
			}
			t.Logf("%s: the first command to refuse was %s", tt.name, refused)
			if res := r.must(exitcode.Verify, onlineStation, "verify"); !strings.Contains(res.stdout+res.stderr, "clock skew") {
				t.Errorf("byok-online verify does not report the clock skew:\n%s\n%s", res.stdout, res.stderr)
			}
			for _, station := range []string{offlineStation, onlineStation} {
				rep := r.audit(exitcode.Verify, station)
				if rep.Verdict != "FAIL" || len(rep.Findings) == 0 || rep.Findings[0].Verdict != "clock skew" {
					t.Errorf("byok-%s audit: %+v, want FAIL with clock skew first", station, rep)
				}
			}
		})
	}
}
