package integration_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// mutation damages the bytes of a bundle file.
type mutation struct {
	name  string
	apply func(b []byte) []byte
}

// bundleMutations truncate a bundle at several offsets and flip one bit in every header
// field, in the signature and in the stored payload (SPEC.md §4: header [0, 256), signature
// [256, 320), stored payload after).
func bundleMutations() []mutation {
	trunc := func(name string, n func(len int) int) mutation {
		return mutation{"truncated " + name, func(b []byte) []byte { return b[:n(len(b))] }}
	}
	flip := func(name string, at func(len int) int) mutation {
		return mutation{"bit flip in " + name, func(b []byte) []byte {
			c := slices.Clone(b)
			c[at(len(b))] ^= 0x01
			return c
		}}
	}
	at := func(off int) func(int) int { return func(int) int { return off } }
	ms := []mutation{
		trunc("to nothing", func(int) int { return 0 }),
		trunc("in the header", func(int) int { return 128 }),
		trunc("after the header", func(int) int { return 256 }),
		trunc("in the signature", func(int) int { return 288 }),
		trunc("before the payload", func(int) int { return 320 }),
		trunc("by one byte", func(n int) int { return n - 1 }),
	}
	for _, f := range []struct {
		name string
		off  int
	}{
		{"magic", 0}, {"version", 9}, {"kind", 10}, {"chain", 11}, {"alg", 12}, {"encoding", 13},
		{"reserved [14,16)", 15}, {"seq", 23}, {"prev", 40}, {"peer_seq", 63}, {"peer", 80}, {"policy", 110},
		{"signer", 140}, {"created", 167}, {"expires", 175}, {"payload_len", 179}, {"stored_len", 183},
		{"payload_digest", 200}, {"stored_digest", 230}, {"reserved [248,256)", 250},
		{"signature r", 260}, {"signature s", 318},
	} {
		ms = append(ms, flip(f.name, at(f.off)))
	}
	return append(ms,
		flip("the payload's first byte", at(320)),
		flip("the middle of the payload", func(n int) int { return 320 + (n-320)/2 }),
		flip("the payload's last byte", func(n int) int { return n - 1 }),
	)
}

// rigState returns, by path under dir, the SHA-256 of every file (but those in except) other
// than the ledgers and, for the ledgers, the SHA-256 of their content: every bucket, key and value. Opening a ledger commits
// a transaction (shared/ledger runs its migrations in db.Update every time) that changes the
// file's bytes, never its content.
func rigState(t testing.TB, dir string, except ...string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if slices.Contains(except, p) {
			return nil
		}
		if d.Name() == station.LedgerFile {
			out[rel] = ledgerDigest(t, p)
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ledgerDigest hashes every bucket, key and value of a bbolt file, in order.
func ledgerDigest(t testing.TB, path string) [32]byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	h := sha256.New()
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				fmt.Fprintf(h, "%s/%x/\n", prefix, k)
				return walk(fmt.Sprintf("%s/%x", prefix, k), b.Bucket(k))
			}
			fmt.Fprintf(h, "%s/%x=%x\n", prefix, k, v)
			return nil
		})
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			fmt.Fprintf(h, "%x/\n", name)
			return walk(fmt.Sprintf("%x", name), b)
		})
	})
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return [32]byte(h.Sum(nil))
}

// changed lists the paths whose content differs between two treeHashes.
func changed(before, after map[string][32]byte) []string {
	var out []string
	for p, h := range after {
		if b, ok := before[p]; !ok || b != h {
			out = append(out, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			out = append(out, p+" (removed)")
		}
	}
	slices.Sort(out)
	return out
}

// testDamagedMedium damages every bundle of a finished ceremony in every way bundleMutations
// knows, one at a time, and checks that byok-online verify, byok-offline sync and the audit
// each refuse with exit 3 or 4 (4 exactly when the audit's verdict is a malformed-input
// class), write nothing (both ledgers and the medium byte-identical), and do not crash.
func testDamagedMedium(t *testing.T, s *resSuite) {
	base := newResRig(t, s, "damaged")
	base.steps(0, len(resCeremony))
	base.converged()
	files, err := filepath.Glob(filepath.Join(base.medium(), "*", "*", "*.bundle"))
	if err != nil || len(files) != 13 {
		t.Fatalf("%d bundles on the medium (%v), want 13", len(files), err)
	}

	type job struct {
		file string // relative to the medium
		m    mutation
	}
	var jobs []job
	for _, f := range files {
		rel, _ := filepath.Rel(base.medium(), f)
		for _, m := range bundleMutations() {
			jobs = append(jobs, job{rel, m})
		}
	}
	var (
		mu    sync.Mutex
		table = map[string]int{} // "verify 3, sync 3, audit 3 (bad signature)" -> cases
	)
	work := make(chan job)
	var wg sync.WaitGroup
	for w := range runtime.GOMAXPROCS(0) {
		r := base.fork(t, fmt.Sprintf("damaged-%d", w))
		wg.Go(func() {
			for j := range work {
				t.Run(strings.ReplaceAll(bundleName(j.file)+"/"+j.m.name, " ", "-"), func(t *testing.T) {
					r.t = t
					p := filepath.Join(r.medium(), j.file)
					orig, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.Chmod(p, 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, j.m.apply(orig), 0o644); err != nil {
						t.Fatal(err)
					}
					defer func() {
						if err := os.WriteFile(p, orig, 0o444); err != nil {
							t.Fatal(err)
						}
						if err := os.Chmod(p, 0o444); err != nil {
							t.Fatal(err)
						}
					}()
					before := rigState(t, r.dir)
					pinned, pv := r.damagedAudit("--policy", r.policyFP)
					tofu, tv := r.damagedAudit()
					v := r.run(onlineStation, "", "verify")
					sy := r.run(offlineStation, "", "sync")
					for _, c := range []struct {
						name string
						res  result
					}{{"byok-online verify", v}, {"byok-offline sync", sy}} {
						if c.res.killed || (c.res.code != 3 && c.res.code != 4) || !strings.Contains(c.res.stderr, ": error: ") ||
							strings.Contains(c.res.stderr, "panic") {
							t.Errorf("%s: exit %d, want 3 or 4 with an error\n%s", c.name, c.res.code, c.res.stderr)
						}
					}
					// The stations and the auditor who trusts the medium's policy agree.
					if v.code != sy.code || v.code != tofu.code {
						t.Errorf("verify exits %d, sync %d, the audit %d (%s): want one code", v.code, sy.code, tofu.code, tv)
					}
					if strings.HasPrefix(j.m.name, "truncated") && (v.code != 4 || pinned.code != 4) {
						t.Errorf("a truncated bundle: verify exits %d, the pinned audit %d (%s); want 4", v.code, pinned.code, pv)
					}
					if pinned.code != tofu.code {
						// SPEC.md §9.8: malformed wins over the other classes.
						t.Errorf("the audit pinned to the policy says %s (exit %d), the one that is not says %s (exit %d)", pv, pinned.code, tv, tofu.code)
					}
					if diff := changed(before, rigState(t, r.dir)); len(diff) > 0 {
						t.Errorf("verify, sync and audit changed %v", diff)
					}
					mu.Lock()
					table[fmt.Sprintf("verify %d, sync %d, audit %d (%s), pinned audit %d (%s)", v.code, sy.code, tofu.code, tv, pinned.code, pv)]++
					mu.Unlock()
				})
			}
		})
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	var lines []string
	for k, n := range table {
		lines = append(lines, fmt.Sprintf("%4d  %s", n, k))
	}
	slices.Sort(lines)
	t.Logf("%d damaged media (%d bundles x %d mutations); exit codes:\n%s", len(jobs), len(files), len(jobs)/len(files), strings.Join(lines, "\n"))
}

// damagedAudit runs the online binary's audit of a damaged medium, expects it to fail with
// the exit code its verdict calls for (4 for malformed input, 3 otherwise), and returns the
// run and the verdict.
func (r *resRig) damagedAudit(args ...string) (result, string) {
	r.t.Helper()
	res := r.run(onlineStation, "", append([]string{"audit", "--media", r.medium(), "--json"}, args...)...)
	var rep auditReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil || len(rep.Findings) == 0 {
		r.t.Fatalf("audit --json %v: %v, %d findings\n%s\n%s", args, err, len(rep.Findings), res.stdout, res.stderr)
	}
	verdict := rep.Findings[0].Verdict
	want := exitcode.Verify
	if slices.Contains([]string{"malformed", "too large", "unsupported version", "error"}, verdict) {
		want = exitcode.Bundle
	}
	if res.code != want || rep.Verdict != "FAIL" {
		r.t.Errorf("audit %v: exit %d, verdict %s with first finding %q; want exit %d", args, res.code, rep.Verdict, verdict, want)
	}
	return res, verdict
}

// bundleName names a bundle file of the medium by its chain and seq ("offline-2").
func bundleName(rel string) string {
	seq, _, err := media.ParseName(filepath.Base(rel))
	if err != nil {
		return rel
	}
	return fmt.Sprintf("%s-%d", strings.SplitN(rel, string(filepath.Separator), 2)[0], seq)
}
