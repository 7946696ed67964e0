package integration_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

// killTargets are the commands that write (the ledger, the medium, the HSM or Key Vault),
// each killed at every crash point of its binary. The second key's keygen, package and
// approve run the same code as the first's.
var killTargets = []string{
	"online init", "offline init", "trust", "kek create", "kek accept",
	"keygen rsa", "package rsa", "approve rsa", "upload", "sync", "policy amend",
}

// rerunRefused are the commands whose rerun, when the interrupted run got as far as
// recording its last bundle, finishes that bundle's write and then refuses (exit 7) as a
// second run would: the inits say the station "is initialised already", approve that the
// custodians "approved already", policy amend that the version "is in force already". The stations have converged either way (converged checks
// it); the summary lists where it happens.
var rerunRefused = []string{"online init", "offline init", "approve rsa", "policy amend"}

// maxHits bounds the @N tried for one point of one command.
const maxHits = 12

// crashPoints returns the crash points each binary can reach, read from the sources: the
// binaries' own crashpoint.Hit calls, shared/station's points and transfer-format/media's
// write points (byok-online names those "media-<point>", byok-offline uses them as they are).
func crashPoints(t *testing.T) (offline, online []string) {
	t.Helper()
	find := func(re string, dirs ...string) []string {
		var out []string
		rx := regexp.MustCompile(re)
		for _, dir := range dirs {
			err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
					return err
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				for _, m := range rx.FindAllStringSubmatch(string(b), -1) {
					out = append(out, m[1])
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	station := find(`s\.hit\("([a-z0-9-]+)"\)`, "../shared/station")
	mediaPoints := find(`\bhook\("([a-z0-9-]+)"\)`, "../transfer-format/media")
	own := `crashpoint\.Hit\("([a-z0-9-]+)"\)`
	offline = slices.Concat(station, mediaPoints, find(own, "../offline"))
	online = slices.Concat(station, find(own, "../online"))
	for _, p := range mediaPoints {
		online = append(online, "media-"+p)
	}
	// The points the suite was written against must still be there.
	for _, want := range []string{"pending-recorded", "media-written", "committed", "tmp-written", "renamed", "synced",
		"init-enrolled", "keygen-generated", "package-wrapped", "approve-signed"} {
		if !slices.Contains(offline, want) {
			t.Errorf("byok-offline has no crash point %s any more: %v", want, offline)
		}
	}
	for _, want := range []string{"committed", "media-synced", "upload-before-import", "upload-after-import", "kek-intent-recorded", "kek-created", "kek-offered"} {
		if !slices.Contains(online, want) {
			t.Errorf("byok-online has no crash point %s any more: %v", want, online)
		}
	}
	return offline, online
}

// killResult is what killing one command at one point did.
type killResult struct {
	step, point string
	hits        int   // times the command was killed at the point: @1..@hits
	refused     []int // the hits after which the rerun refused as already done
}

// testKillPoints runs the ceremony once as a trunk, keeping a copy of everything before each
// step, then for every command that writes and every crash point of its binary: copies the
// ceremony before that command, runs it with BYOK_CRASHPOINT=point@N, expects SIGKILL, reruns
// it as released, finishes the ceremony and checks that it converged. N counts up until the
// command finishes instead of dying: then the point is hit fewer than N times on its path (not
// at all for N = 1).
func testKillPoints(t *testing.T, s *resSuite) {
	offPoints, onPoints := crashPoints(t)

	// The trunk, with a copy before each step a trial starts from. Key packages name Key
	// Vault keys, which every ceremony must keep its own: trials of package, approve and
	// upload start before the first package and package with names of their own.
	firstPackage, syncStep, amendStep := stepIndex("package "+resKeys[0].ident), stepIndex("sync"), stepIndex("policy amend")
	start := func(k int) int {
		if k > firstPackage && k != syncStep && k != amendStep {
			return firstPackage
		}
		return k
	}
	trunk := newResRig(t, s, "trunk")
	snaps := map[int]*resRig{}
	for i := range resCeremony {
		for _, name := range killTargets {
			if k := stepIndex(name); start(k) == i && snaps[i] == nil {
				snaps[i] = trunk.fork(t, "snapshot")
			}
		}
		trunk.step(i)
	}
	trunk.converged()
	if t.Failed() {
		t.FailNow()
	}

	type job struct {
		step  int
		point string
	}
	var jobs []job
	for _, name := range killTargets {
		k := stepIndex(name)
		points := offPoints
		if resCeremony[k].station == onlineStation {
			points = onPoints
		}
		for _, p := range points {
			jobs = append(jobs, job{k, p})
		}
	}

	var (
		mu      sync.Mutex
		results []killResult
		trials  atomic.Int64
		branch  atomic.Int64
	)
	// trial runs step k of a copy of the ceremony killed at point@n; it reports whether the
	// command was killed, and if so checks that a rerun converges and records in res what
	// the rerun did besides.
	trial := func(t *testing.T, k int, point string, n int, kr *killResult) bool {
		trials.Add(1)
		r := snaps[start(k)].fork(t, fmt.Sprintf("b%d", branch.Add(1)))
		r.steps(start(k), k)
		st := resCeremony[k]
		args := st.args(r)
		p := point
		if n > 1 {
			p = fmt.Sprintf("%s@%d", point, n)
		}
		res := r.run(st.station, p, args...)
		if !res.killed {
			if res.code != 0 {
				t.Fatalf("%s with BYOK_CRASHPOINT=%s: exit %d without being killed\n%s", st.name, p, res.code, res.stderr)
			}
			return false
		}
		res = r.run(st.station, "", args...)
		if res.code == exitcode.Refused && slices.Contains(rerunRefused, st.name) {
			kr.refused = append(kr.refused, n)
		} else if res.code != 0 {
			t.Fatalf("%s killed at %s, then rerun: exit %d\nstdout:\n%s\nstderr:\n%s", st.name, p, res.code, res.stdout, res.stderr)
		}
		if st.learn != nil {
			st.learn(r)
		}
		r.steps(k+1, len(resCeremony))
		r.converged()
		if mv := readMedium(t, r.medium()); mv.offers != 1 {
			t.Errorf("%s killed at %s, then rerun: %d KEK offers on the medium, want 1", st.name, p, mv.offers)
		}
		if vs := versions(t, s, r.kek); len(vs) != 1 {
			t.Errorf("%s killed at %s, then rerun: %d versions of the KEK %s, want 1", st.name, p, len(vs), r.kek)
		}
		return true
	}

	// Each job is a sequence of trials; jobs run side by side, as many as there are CPUs
	// (the work is in the child processes, so this ignores -parallel on purpose).
	work := make(chan job)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range work {
				name := resCeremony[j.step].name + "/" + j.point
				t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
					kr := killResult{step: resCeremony[j.step].name, point: j.point}
					defer func() {
						mu.Lock()
						results = append(results, kr)
						mu.Unlock()
					}()
					n := 1
					for ; n <= maxHits && trial(t, j.step, j.point, n, &kr); n++ {
						kr.hits = n
					}
					if n > maxHits {
						t.Errorf("still killed at %s@%d", j.point, maxHits)
					}
				})
			}
		})
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()

	// Every point must kill some command: a point never reached means the list above no
	// longer matches what the binaries call.
	reached := map[string]bool{}
	kills := 0
	for _, r := range results {
		kills += r.hits
		if r.hits > 0 {
			reached[resStation(r.step)+" "+r.point] = true
		}
	}
	for _, p := range offPoints {
		if !reached["offline "+p] {
			t.Errorf("no byok-offline command was killed at %s", p)
		}
	}
	for _, p := range onPoints {
		if !reached["online "+p] {
			t.Errorf("no byok-online command was killed at %s", p)
		}
	}
	t.Logf("kill -9: %d kill points (command, point, hit) killed, rerun and converged; %d trials in all, %d (command, point) pairs",
		kills, trials.Load(), len(jobs))
	t.Log(killSummary(results))
}

func resStation(step string) string { return resCeremony[stepIndex(step)].station }

// killSummary is a table: for each command, the points that killed it (with how many hits)
// and the points not on its path.
func killSummary(results []killResult) string {
	var b strings.Builder
	for _, name := range killTargets {
		var on, off, refused []string
		for _, r := range results {
			if r.step != name {
				continue
			}
			for _, n := range r.refused {
				refused = append(refused, fmt.Sprintf("%s@%d", r.point, n))
			}
			switch {
			case r.hits == 1:
				on = append(on, r.point)
			case r.hits > 1:
				on = append(on, fmt.Sprintf("%s@1..%d", r.point, r.hits))
			default:
				off = append(off, r.point)
			}
		}
		sort.Strings(on)
		sort.Strings(off)
		fmt.Fprintf(&b, "\n%-12s killed at: %s\n%-12s not on its path: %s", name, orNone(on), "", orNone(off))
		if len(refused) > 0 {
			sort.Strings(refused)
			fmt.Fprintf(&b, "\n%-12s rerun refused as done already (exit 7) after: %s", "", strings.Join(refused, ", "))
		}
	}
	return b.String()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// testKillDuringRecovery interrupts a write after its bundle is in the journal (killed at
// pending-recorded), then kills the next command that finishes it (every command that writes
// recovers first) at each point of the recovery, reruns that command, and checks that the
// ceremony still converges: a crash while recovering from a crash loses nothing either.
func testKillDuringRecovery(t *testing.T, s *resSuite) {
	firstPackage, upload := stepIndex("package "+resKeys[0].ident), stepIndex("upload")
	base := newResRig(t, s, "recovery")
	base.steps(0, firstPackage)

	offPoints := []string{"tmp-written", "renamed", "synced", "committed"}
	onPoints := []string{"media-tmp-written", "media-renamed", "media-synced", "committed"}
	tests := []struct {
		interrupted int      // the step killed at pending-recorded
		recoverer   resStep  // the command that finishes its write
		points      []string // where the recoverer is killed
	}{
		{firstPackage, resCeremony[stepIndex("kek accept")], offPoints},
		{firstPackage, resCeremony[stepIndex("sync")], offPoints},
		{firstPackage, resCeremony[firstPackage], offPoints},
		{upload, resCeremony[upload], onPoints},
	}
	n := 0
	for _, tt := range tests {
		for _, p := range tt.points {
			name := fmt.Sprintf("%s/then-%s/%s", resCeremony[tt.interrupted].name, tt.recoverer.name, p)
			n++
			t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
				r := base.fork(t, fmt.Sprintf("rec%d", n))
				r.steps(firstPackage, tt.interrupted)
				st := resCeremony[tt.interrupted]
				args := st.args(r)
				if res := r.run(st.station, "pending-recorded", args...); !res.killed {
					t.Fatalf("%s was not killed at pending-recorded: exit %d\n%s", st.name, res.code, res.stderr)
				}
				rec := tt.recoverer.args(r)
				res := r.run(tt.recoverer.station, p, rec...)
				if !res.killed {
					t.Fatalf("%s, finishing the write, was not killed at %s: exit %d\n%s", tt.recoverer.name, p, res.code, res.stderr)
				}
				// Killed once the recovery committed, the rerun has nothing left to finish.
				res = r.run(tt.recoverer.station, "", rec...)
				if res.code != 0 || (p != "committed") != strings.Contains(res.stderr, "finishing an interrupted write") {
					t.Fatalf("%s, rerun: exit %d, want 0, finishing the interrupted write unless it was committed\n%s", tt.recoverer.name, res.code, res.stderr)
				}
				if res := r.run(st.station, "", args...); res.code != 0 {
					t.Fatalf("%s, rerun: exit %d\n%s", st.name, res.code, res.stderr)
				}
				if st.learn != nil {
					st.learn(r)
				}
				r.steps(tt.interrupted+1, len(resCeremony))
				r.converged()
			})
		}
	}
	t.Logf("kill -9 during recovery: %d kill points", n)
}
