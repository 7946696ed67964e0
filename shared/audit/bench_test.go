package audit_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/airgap-byok/airgap-byok/shared/audit"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
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

type benchMedium struct {
	dir      string
	anchor   bundle.ID
	bundles  int
	packages int
	offline  *ecdsa.PublicKey
	online   ed25519.PublicKey
	floor    float64       // bundles/s, measured once
	floorCPU time.Duration // CPU time per bundle of the floor
}

var (
	benchMu      sync.Mutex
	benchDir     string
	benchMediums = map[int]*benchMedium{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchMediumOf(b *testing.B, n int) *benchMedium {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if bm, ok := benchMediums[n]; ok {
		return bm
	}
	if benchDir == "" {
		d, err := os.MkdirTemp("", "audit-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = d
	}
	start := time.Now()
	bm, err := buildBenchMedium(filepath.Join(benchDir, fmt.Sprint(n)), n)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("built a medium of %d bundles (%d key packages) in %s", bm.bundles, bm.packages, time.Since(start).Round(time.Millisecond))
	benchMediums[n] = bm
	return bm
}

func buildBenchMedium(dir string, n int) (*benchMedium, error) {
	// One second per bundle keeps 100,000 bundles inside the KEK offer's lifetime.
	c, err := chaintest.New(chaintest.Config{Dir: dir, FastWrite: true, Step: time.Second})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Setup(); err != nil {
		return nil, err
	}
	off, err := c.Offer()
	if err != nil {
		return nil, err
	}
	// One wrapped key serves every package: wrapping is not what is measured.
	tmpl, err := c.PackagePayload(off.ID(), payload.RSA3072, "key-0")
	if err != nil {
		return nil, err
	}
	bm := &benchMedium{dir: dir, anchor: c.PolicyID, offline: &c.OfflineKey.PublicKey, online: c.OnlineKey.Public().(ed25519.PublicKey)}
	count := len(c.Written)
	c.Written = nil
	for count < n {
		k := *tmpl
		k.KeyName = fmt.Sprintf("key-%d", bm.packages+1)
		pkg, err := c.Append(bundle.ChainOffline, &k)
		if err != nil {
			return nil, err
		}
		if _, err := c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1); err != nil {
			return nil, err
		}
		r := &payload.Receipt{Package: pkg.ID(), Vault: k.Vault, Outcome: payload.OutcomeImported,
			KID:       fmt.Sprintf("%s/keys/%s/%032x", k.Vault, k.KeyName, pkg.Header.Seq),
			PublicKey: k.PublicKey, Created: c.Clock.Unix()}
		if _, err := c.Append(bundle.ChainOnline, r); err != nil {
			return nil, err
		}
		bm.packages++
		count += 3
		c.Written = c.Written[:0]
	}
	bm.bundles = count
	return bm, nil
}

// floorRate measures the verification floor of the medium's bundles in bundles/s, once.
func floorRate(b *testing.B, bm *benchMedium) float64 {
	b.Helper()
	if bm.floor == 0 {
		fl := loadFloor(b, bm)
		start, cpu := time.Now(), cpuTime(b)
		fl.run(b)
		bm.floor = float64(len(fl.bundles)) / time.Since(start).Seconds()
		bm.floorCPU = (cpuTime(b) - cpu) / time.Duration(len(fl.bundles))
	}
	return bm.floor
}

// floor holds every bundle file in memory and what verifying them needs.
type floor struct {
	bm      *benchMedium
	bundles []floorBundle
	dec     *zstd.Decoder
	out     []byte
}

type floorBundle struct {
	data  []byte
	ecdsa bool
}

func loadFloor(b *testing.B, bm *benchMedium) *floor {
	b.Helper()
	m, err := media.Open(bm.dir)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	fl := &floor{bm: bm, out: make([]byte, 0, bundle.MaxPayload)}
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		for e, err := range m.Entries(c, 1, nil) {
			if err != nil {
				b.Fatal(err)
			}
			d, err := m.Read(e)
			if err != nil {
				b.Fatal(err)
			}
			fl.bundles = append(fl.bundles, floorBundle{data: d, ecdsa: c == bundle.ChainOffline})
		}
	}
	fl.dec, err = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(bundle.MaxPayload),
		zstd.WithDecoderMaxWindow(bundle.MaxPayload), zstd.WithDecoderConcurrency(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fl.dec.Close)
	return fl
}

// run verifies every bundle once, single-threaded.
func (fl *floor) run(b *testing.B) {
	const sigDomain = "airgap-byok/v1/bundle-signature\x00"
	const idDomain = "airgap-byok/v1/bundle-id\x00"
	msg := make([]byte, len(sigDomain)+32)
	copy(msg, sigDomain)
	buf := make([]byte, len(idDomain)+bundle.HeaderSize)
	copy(buf, idDomain)
	var err error
	for _, fb := range fl.bundles {
		d := fb.data
		hdr, sig, stored := d[:bundle.HeaderSize], d[bundle.HeaderSize:bundle.HeaderSize+bundle.SignatureSize], d[bundle.HeaderSize+bundle.SignatureSize:]
		if sd := sha256.Sum256(stored); string(sd[:]) != string(hdr[216:248]) {
			b.Fatal("stored digest mismatch")
		}
		copy(buf[len(idDomain):], hdr)
		id := sha256.Sum256(buf)
		copy(msg[len(sigDomain):], id[:])
		if fb.ecdsa {
			h := sha256.Sum256(msg)
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if !ecdsa.Verify(fl.bm.offline, h[:], r, s) {
				b.Fatal("bad signature")
			}
		} else if !ed25519.Verify(fl.bm.online, msg, sig) {
			b.Fatal("bad signature")
		}
		if fl.out, err = fl.dec.DecodeAll(stored, fl.out[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime returns the CPU time the process has used (user and system): on a shared machine
// it measures the work per bundle where wall time measures the neighbours too.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakHeap samples the live heap every few milliseconds until stop.
type peakHeap struct {
	peak atomic.Uint64
	done chan struct{}
	wg   sync.WaitGroup
}

func startPeakHeap() *peakHeap {
	runtime.GC()
	p := &peakHeap{done: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > p.peak.Load() {
			p.peak.Store(v)
		}
	}
	read()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return p
}

func (p *peakHeap) stop() float64 {
	close(p.done)
	p.wg.Wait()
	return float64(p.peak.Load()) / (1 << 20)
}

func BenchmarkAudit(b *testing.B) {
	for _, n := range benchSizes {
		for _, html := range []bool{false, true} {
			b.Run(fmt.Sprintf("bundles=%d/html=%v", n, html), func(b *testing.B) {
				bm := benchMediumOf(b, n)
				floor := floorRate(b, bm)
				out := b.TempDir()
				opts := audit.Options{Media: bm.dir, Policy: bm.anchor.Short()}
				if html {
					opts.HTML = filepath.Join(out, "report.html")
				}
				peak := startPeakHeap()
				cpu := cpuTime(b)
				for b.Loop() {
					rep, err := audit.Run(context.Background(), opts, nil)
					if err != nil {
						b.Fatal(err)
					}
					if rep.Failed() || !rep.Complete || rep.Counts.Imported != uint64(bm.packages) || rep.Counts.Keys != bm.packages {
						b.Fatalf("verdict %s, complete %v, imported %d, keys %d, findings %v", rep.Verdict, rep.Complete, rep.Counts.Imported, rep.Counts.Keys, rep.Findings)
					}
					rep.Close()
				}
				heap := peak.stop()
				reportRates(b, bm, floor, cpu, heap)
			})
		}
	}
}

// reportRates reports throughput next to the floor's, CPU time per bundle next to the
// floor's, and the peak live heap.
func reportRates(b *testing.B, bm *benchMedium, floor float64, cpu0 time.Duration, heap float64) {
	rate := float64(bm.bundles*b.N) / b.Elapsed().Seconds()
	cpu := float64(cpuTime(b)-cpu0) / float64(bm.bundles*b.N) / float64(time.Microsecond)
	b.ReportMetric(rate, "bundles/s")
	b.ReportMetric(floor, "floor-bundles/s")
	b.ReportMetric(rate/floor, "x-floor")
	b.ReportMetric(cpu, "cpu-µs/bundle")
	b.ReportMetric(float64(bm.floorCPU)/float64(time.Microsecond), "floor-cpu-µs/bundle")
	b.ReportMetric(heap, "peak-heap-MiB")
}

// BenchmarkAuditReplay is chain.Replay alone on the same media, with the same workers and
// anchor: the difference to BenchmarkAudit is what the audit adds.
func BenchmarkAuditReplay(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("bundles=%d", n), func(b *testing.B) {
			bm := benchMediumOf(b, n)
			floor := floorRate(b, bm)
			peak := startPeakHeap()
			cpu := cpuTime(b)
			for b.Loop() {
				m, err := media.Open(bm.dir)
				if err != nil {
					b.Fatal(err)
				}
				res, err := chain.Replay(context.Background(), m, chain.Options{Anchor: bm.anchor})
				m.Close()
				if err != nil || res.Err() != nil || !res.Complete {
					b.Fatalf("Replay() = %v, findings %v", err, res.Err())
				}
			}
			reportRates(b, bm, floor, cpu, peak.stop())
		})
	}
}

// BenchmarkAuditFloor is the floor on its own.
func BenchmarkAuditFloor(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("bundles=%d", n), func(b *testing.B) {
			fl := loadFloor(b, benchMediumOf(b, n))
			for b.Loop() {
				fl.run(b)
			}
			b.ReportMetric(float64(len(fl.bundles)*b.N)/b.Elapsed().Seconds(), "bundles/s")
		})
	}
}
