package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
)

// The audit benchmark runs on media of 10,000 and 100,000 bundles shaped like the chain
// package's replay benchmark: key packages (an RSA-3072 target wrapped for an RSA-3072 KEK),
// each followed by an approval of two custodians on the offline chain and a receipt on the
// online chain. Next to each audit it measures, in the same process, the verification floor:
// for the same bundle bytes held in memory, single-threaded, only what no verifier can skip
// (SHA-256 of the header and of the stored payload, the station signature, the zstd decode).
// It reports bundles/s, the ratio to the floor, CPU time per bundle (the audit's and the
// floor's: on a shared machine wall time also measures the neighbours) and the peak live heap.
//
//	go test -run '^$' -bench 'Audit' -benchtime 1x -timeout 60m ./audit/

var benchSizes = []int{10_000, 100_000}

// benchMedia are built once per process and shared by the benchmarks (chaintest.BenchMedium
// describes them).
var benchMedia = &chaintest.BenchMedia{Prefix: "audit-bench-"}

// floors holds, by medium, the verification floor measured once: its rate in bundles/s and
// its CPU time per bundle.
var floors = map[*chaintest.BenchMedium]struct {
	rate float64
	cpu  time.Duration
}{}

func TestMain(m *testing.M) {
	code := m.Run()
	benchMedia.RemoveAll()
	os.Exit(code)
}

// loadFloor reads the medium's bundles into memory for chaintest.Floor, without the
// approvals' custodian signatures. The caller closes it.
func loadFloor(b *testing.B, bm *chaintest.BenchMedium) *chaintest.Floor {
	b.Helper()
	fl, err := bm.LoadFloor(false)
	if err != nil {
		b.Fatal(err)
	}
	return fl
}

// runFloor verifies every bundle of the floor once, single-threaded.
func runFloor(b *testing.B, fl *chaintest.Floor) {
	b.Helper()
	if err := fl.Run(); err != nil {
		b.Fatal(err)
	}
}

// floorRate measures the verification floor of the medium's bundles in bundles/s, once.
func floorRate(b *testing.B, bm *chaintest.BenchMedium) float64 {
	b.Helper()
	f, ok := floors[bm]
	if !ok {
		// The floor's bundles and decoder are released before the audit is measured.
		fl := loadFloor(b, bm)
		defer fl.Close()
		start, cpu := time.Now(), chaintest.ProcessCPU()
		runFloor(b, fl)
		f.rate = float64(fl.Bundles()) / time.Since(start).Seconds()
		f.cpu = (chaintest.ProcessCPU() - cpu) / time.Duration(fl.Bundles())
		floors[bm] = f
	}
	return f.rate
}

func BenchmarkAudit(b *testing.B) {
	for _, n := range benchSizes {
		for _, html := range []bool{false, true} {
			b.Run(fmt.Sprintf("bundles=%d/html=%v", n, html), func(b *testing.B) {
				bm := benchMedia.Medium(b, n)
				floor := floorRate(b, bm)
				out := b.TempDir()
				opts := audit.Options{Media: bm.Dir, Policy: bm.Anchor.Short()}
				if html {
					opts.HTML = filepath.Join(out, "report.html")
				}
				peak := chaintest.StartPeakHeap()
				cpu := chaintest.ProcessCPU()
				for b.Loop() {
					rep, err := audit.Run(context.Background(), opts, nil)
					if err != nil {
						b.Fatal(err)
					}
					if rep.Failed() || !rep.Complete || rep.Counts.Imported != uint64(bm.Packages) || rep.Counts.Keys != bm.Packages {
						b.Fatalf("verdict %s, complete %v, imported %d, keys %d, findings %v", rep.Verdict, rep.Complete, rep.Counts.Imported, rep.Counts.Keys, rep.Findings)
					}
					rep.Close()
				}
				heap := peak.Stop()
				reportRates(b, bm, floor, cpu, heap)
			})
		}
	}
}

// reportRates reports throughput next to the floor's, CPU time per bundle next to the
// floor's, and the peak live heap.
func reportRates(b *testing.B, bm *chaintest.BenchMedium, floor float64, cpu0 time.Duration, heap float64) {
	rate := float64(bm.Bundles*b.N) / b.Elapsed().Seconds()
	cpu := float64(chaintest.ProcessCPU()-cpu0) / float64(bm.Bundles*b.N) / float64(time.Microsecond)
	b.ReportMetric(rate, "bundles/s")
	b.ReportMetric(floor, "floor-bundles/s")
	b.ReportMetric(rate/floor, "x-floor")
	b.ReportMetric(cpu, "cpu-µs/bundle")
	b.ReportMetric(float64(floors[bm].cpu)/float64(time.Microsecond), "floor-cpu-µs/bundle")
	b.ReportMetric(heap, "peak-heap-MiB")
}

// BenchmarkAuditReplay is chain.Replay alone on the same media, with the same workers and
// anchor: the difference to BenchmarkAudit is what the audit adds.
func BenchmarkAuditReplay(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("bundles=%d", n), func(b *testing.B) {
			bm := benchMedia.Medium(b, n)
			floor := floorRate(b, bm)
			peak := chaintest.StartPeakHeap()
			cpu := chaintest.ProcessCPU()
			for b.Loop() {
				if _, err := bm.Replay(chain.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			reportRates(b, bm, floor, cpu, peak.Stop())
		})
	}
}

// BenchmarkAuditFloor is the floor on its own.
func BenchmarkAuditFloor(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("bundles=%d", n), func(b *testing.B) {
			fl := loadFloor(b, benchMedia.Medium(b, n))
			defer fl.Close()
			for b.Loop() {
				runFloor(b, fl)
			}
			b.ReportMetric(float64(fl.Bundles()*b.N)/b.Elapsed().Seconds(), "bundles/s")
		})
	}
}
