package chain_test

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
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
	"github.com/klauspost/compress/zstd"
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

// benchMedium is a medium built once per process and shared by the benchmarks.
type benchMedium struct {
	dir      string
	anchor   bundle.ID
	bundles  int
	bytes    int64
	packages int
	offline  *ecdsa.PublicKey
	online   ed25519.PublicKey
	// custodians are the custodian keys by key ID, for the floor with approvals.
	custodians map[bundle.ID]*ecdsa.PublicKey
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

// benchMediumOf returns the medium of at least n bundles, building it on first use.
func benchMediumOf(b *testing.B, n int) *benchMedium {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if bm, ok := benchMediums[n]; ok {
		return bm
	}
	if benchDir == "" {
		d, err := os.MkdirTemp("", "chain-bench-")
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
	b.Logf("built a medium of %d bundles (%.1f MiB, %d key packages) in %s", bm.bundles, float64(bm.bytes)/(1<<20), bm.packages, time.Since(start).Round(time.Millisecond))
	benchMediums[n] = bm
	return bm
}

func buildBenchMedium(dir string, n int) (*benchMedium, error) {
	// One second per bundle keeps 100,000 bundles well inside the 7-day lifetime of the KEK
	// offer.
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
	// One wrapped key serves every package: wrapping is not what is measured, and the
	// packages still differ in name, position and ID.
	tmpl, err := c.PackagePayload(off.ID(), payload.RSA3072, "key-0")
	if err != nil {
		return nil, err
	}
	bm := &benchMedium{dir: dir, anchor: c.PolicyID, offline: &c.OfflineKey.PublicKey, online: c.OnlineKey.Public().(ed25519.PublicKey),
		custodians: map[bundle.ID]*ecdsa.PublicKey{}}
	for _, k := range c.Custodians {
		id, err := bundle.KeyID(k.Public())
		if err != nil {
			return nil, err
		}
		bm.custodians[id] = &k.PublicKey
	}
	count := len(c.Written)
	c.Written = nil // do not keep every bundle in memory
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
			PublicKey: k.PublicKey, Created: c.Clock.Unix(),
			Tags: map[string]string{"byok-package": pkg.ID().String()}}
		if _, err := c.Append(bundle.ChainOnline, r); err != nil {
			return nil, err
		}
		bm.packages++
		count += 3
		c.Written = c.Written[:0]
	}
	bm.bundles = count
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		bm.bytes += fi.Size()
		return err
	})
	return bm, err
}

// peakHeap samples the live heap every few milliseconds until stop is called.
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

// stop ends the sampling and returns the peak in MiB.
func (p *peakHeap) stop() float64 {
	close(p.done)
	p.wg.Wait()
	return float64(p.peak.Load()) / (1 << 20)
}

func BenchmarkReplay(b *testing.B) {
	for _, n := range benchSizes {
		for _, workers := range []int{2, 1} {
			b.Run(fmt.Sprintf("bundles=%d/workers=%d", n, workers), func(b *testing.B) {
				bm := benchMediumOf(b, n)
				// One worker runs on one core, so that its rate compares with the
				// single-threaded floor: otherwise stage 2 and the cursors would use a
				// second core.
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(workers))
				peak := startPeakHeap()
				cpu := processCPU()
				for b.Loop() {
					m, err := media.Open(bm.dir)
					if err != nil {
						b.Fatal(err)
					}
					res, err := chain.Replay(context.Background(), m, chain.Options{Anchor: bm.anchor, Workers: workers})
					m.Close()
					if err != nil || res.Err() != nil || !res.Complete {
						b.Fatalf("Replay() = %v, findings %v, complete %v", err, res.Err(), res.Complete)
					}
					if got := res.State.Counts.Imported; got != uint64(bm.packages) {
						b.Fatalf("imported %d packages, want %d", got, bm.packages)
					}
				}
				cpu = processCPU() - cpu
				heap := peak.stop()
				b.ReportMetric(float64(bm.bundles*b.N)/b.Elapsed().Seconds(), "bundles/s")
				if cpu > 0 {
					b.ReportMetric(float64(cpu.Microseconds())/float64(bm.bundles*b.N), "cpu-µs/bundle")
				}
				b.ReportMetric(heap, "peak-heap-MiB")
				b.ReportMetric(float64(bm.bytes)/float64(bm.bundles), "bytes/bundle")
			})
		}
	}
}

// floorBundle is what the floor needs of a bundle, prepared outside the timed loop.
type floorBundle struct {
	data      []byte
	ecdsa     bool
	approvals []floorApproval // of an approval bundle, for the floor with approvals
}

// floorApproval is one custodian signature of an approval.
type floorApproval struct {
	pub    *ecdsa.PublicKey
	digest [32]byte // SHA-256 of the approval message
	r, s   *big.Int
}

// BenchmarkFloor measures, single-threaded on bundles held in memory, what no verifier can
// skip: SHA-256 of the stored payload, the station signature and the zstd decode. Its
// with-approvals variant also verifies the custodian signatures of the approval bundles
// (extracted beforehand), which the replay must do too: it shows how much of the gap between
// the replay and the floor is mandatory signature checking.
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
	bm := benchMediumOf(b, n)
	// Every bundle file, in memory.
	var bs []floorBundle
	m, err := media.Open(bm.dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		for e, err := range m.Entries(c, 1, nil) {
			if err != nil {
				b.Fatal(err)
			}
			d, err := m.Read(e)
			if err != nil {
				b.Fatal(err)
			}
			fb := floorBundle{data: d, ecdsa: c == bundle.ChainOffline}
			if withApprovals {
				fb.approvals = floorApprovals(b, bm, d)
			}
			bs = append(bs, fb)
		}
	}
	m.Close()
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(bundle.MaxPayload),
		zstd.WithDecoderMaxWindow(bundle.MaxPayload), zstd.WithDecoderConcurrency(0))
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	out := make([]byte, 0, bundle.MaxPayload)
	const sigDomain = "airgap-byok/v1/bundle-signature\x00"
	const idDomain = "airgap-byok/v1/bundle-id\x00"
	msg := make([]byte, len(sigDomain)+32)
	copy(msg, sigDomain)
	buf := make([]byte, len(idDomain)+bundle.HeaderSize)
	copy(buf, idDomain)
	cpu := processCPU()
	for b.Loop() {
		for _, fb := range bs {
			d := fb.data
			hdr, sig, stored := d[:bundle.HeaderSize], d[bundle.HeaderSize:bundle.HeaderSize+bundle.SignatureSize], d[bundle.HeaderSize+bundle.SignatureSize:]
			// SHA-256 of the stored payload.
			if sd := sha256.Sum256(stored); string(sd[:]) != string(hdr[216:248]) {
				b.Fatal("stored digest mismatch")
			}
			// The station signature over the bundle ID.
			copy(buf[len(idDomain):], hdr)
			id := sha256.Sum256(buf)
			copy(msg[len(sigDomain):], id[:])
			if fb.ecdsa {
				h := sha256.Sum256(msg)
				r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
				if !ecdsa.Verify(bm.offline, h[:], r, s) {
					b.Fatal("bad signature")
				}
			} else if !ed25519.Verify(bm.online, msg, sig) {
				b.Fatal("bad signature")
			}
			// The zstd decode.
			if out, err = dec.DecodeAll(stored, out[:0]); err != nil {
				b.Fatal(err)
			}
			for _, a := range fb.approvals {
				if !ecdsa.Verify(a.pub, a.digest[:], a.r, a.s) {
					b.Fatal("bad approval")
				}
			}
		}
	}
	cpu = processCPU() - cpu
	b.ReportMetric(float64(len(bs)*b.N)/b.Elapsed().Seconds(), "bundles/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(len(bs)*b.N), "cpu-µs/bundle")
	}
}

// floorApprovals returns the custodian signatures of an approval bundle, decoded outside the
// timed loop; nil for other bundles.
func floorApprovals(b *testing.B, bm *benchMedium, data []byte) []floorApproval {
	bb, err := bundle.Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	if bb.Header.Kind != bundle.KindApproval {
		return nil
	}
	p, err := bb.Open()
	if err != nil {
		b.Fatal(err)
	}
	v, err := payload.Decode(bundle.KindApproval, p)
	if err != nil {
		b.Fatal(err)
	}
	a := v.(*payload.Approval)
	var out []floorApproval
	for _, s := range a.Signatures {
		pub, ok := bm.custodians[s.Custodian]
		if !ok {
			b.Fatalf("approval by an unknown custodian %s", s.Custodian.Short())
		}
		out = append(out, floorApproval{pub: pub, digest: sha256.Sum256(bundle.ApprovalMessage(a.Target)),
			r: new(big.Int).SetBytes(s.Sig[:32]), s: new(big.Int).SetBytes(s.Sig[32:])})
	}
	return out
}
