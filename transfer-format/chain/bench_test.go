package chain_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
)

// The replay benchmark runs on media of 10,000 and 100,000 bundles: key packages (an
// RSA-3072 target wrapped for an RSA-3072 KEK, about 4.3 KiB each), each followed by an
// approval of two custodians on the offline chain and a receipt on the online chain, so the
// set of packages awaiting upload stays small. It replays with 2 workers on all cores and
// with 1 worker on 1 core (GOMAXPROCS=1). BenchmarkFloor does, for the same bundle bytes held
// in memory and single-threaded, only what no verifier can skip: SHA-256 of the stored
// payload, the station signature and the zstd decode.
//
//	go test -run '^$' -bench 'Replay|Floor' -benchtime 1x -timeout 30m ./chain/

var benchSizes = []int{10_000, 100_000}

// benchMedia are built once per process and shared by the benchmarks (chaintest.BenchMedium
// describes them).
var benchMedia = &chaintest.BenchMedia{Prefix: "chain-bench-", ReceiptTags: true}

func TestMain(m *testing.M) {
	code := m.Run()
	benchMedia.RemoveAll()
	os.Exit(code)
}

func BenchmarkReplay(b *testing.B) {
	for _, n := range benchSizes {
		for _, workers := range []int{2, 1} {
			b.Run(fmt.Sprintf("bundles=%d/workers=%d", n, workers), func(b *testing.B) {
				bm := benchMedia.Medium(b, n)
				// One worker runs on one core, so that its rate compares with the
				// single-threaded floor: otherwise stage 2 and the cursors would use a
				// second core.
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(workers))
				peak := chaintest.StartPeakHeap()
				cpu := chaintest.ProcessCPU()
				for b.Loop() {
					res, err := bm.Replay(chain.Options{Workers: workers})
					if err != nil {
						b.Fatal(err)
					}
					if got := res.State.Counts.Imported; got != uint64(bm.Packages) {
						b.Fatalf("imported %d packages, want %d", got, bm.Packages)
					}
				}
				cpu = chaintest.ProcessCPU() - cpu
				heap := peak.Stop()
				b.ReportMetric(float64(bm.Bundles*b.N)/b.Elapsed().Seconds(), "bundles/s")
				if cpu > 0 {
					b.ReportMetric(float64(cpu.Microseconds())/float64(bm.Bundles*b.N), "cpu-µs/bundle")
				}
				b.ReportMetric(heap, "peak-heap-MiB")
				b.ReportMetric(float64(bm.Bytes)/float64(bm.Bundles), "bytes/bundle")
			})
		}
	}
}

// BenchmarkFloor measures, single-threaded on bundles held in memory, what no verifier can
// skip: SHA-256 of the stored payload, the station signature and the zstd decode
// (chaintest.Floor). Its with-approvals variant also verifies the custodian signatures of the
// approval bundles (extracted beforehand), which the replay must do too: it shows how much of
// the gap between the replay and the floor is mandatory signature checking.
func BenchmarkFloor(b *testing.B) {
	for _, n := range benchSizes {
		for _, withApprovals := range []bool{false, true} {
			name := fmt.Sprintf("bundles=%d", n)
			if withApprovals {
				name += "/with-approvals"
			}
			b.Run(name, func(b *testing.B) { benchFloor(b, n, withApprovals) })
		}
	}
}

func benchFloor(b *testing.B, n int, withApprovals bool) {
	// Every bundle file, in memory.
	fl, err := benchMedia.Medium(b, n).LoadFloor(withApprovals)
	if err != nil {
		b.Fatal(err)
	}
	defer fl.Close()
	cpu := chaintest.ProcessCPU()
	for b.Loop() {
		if err := fl.Run(); err != nil {
			b.Fatal(err)
		}
	}
	cpu = chaintest.ProcessCPU() - cpu
	b.ReportMetric(float64(fl.Bundles()*b.N)/b.Elapsed().Seconds(), "bundles/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(fl.Bundles()*b.N), "cpu-µs/bundle")
	}
}
