package chaintest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// What the replay benchmark (transfer-format/chain) and the audit benchmark (shared/audit)
// share: the media they run on, the verification floor they are set against, and the CPU
// time and peak heap they report.

// BenchTB is the part of testing.TB the benchmark helpers use; *testing.B has it. (The
// package does not import testing: commands use it too.)
type BenchTB interface {
	Helper()
	Fatal(args ...any)
	Logf(format string, args ...any)
}

// BenchMedium is a medium built for the benchmarks: key packages (an RSA-3072 target
// wrapped for an RSA-3072 KEK, about 4.3 KiB each), each followed by an approval of two
// custodians on the offline chain and a receipt on the online chain, so the set of packages
// awaiting upload stays small.
type BenchMedium struct {
	Dir      string
	Anchor   bundle.ID // the policy
	Bundles  int
	Bytes    int64 // of the bundle files
	Packages int
	Offline  *ecdsa.PublicKey
	Online   ed25519.PublicKey
	// Custodians are the custodian keys by key ID, for the floor with approvals.
	Custodians map[bundle.ID]*ecdsa.PublicKey
}

// BenchMedia builds benchmark media once per process, in one temporary folder, and keeps
// them for every benchmark that asks. The zero value with a Prefix is ready to use; call
// RemoveAll from TestMain.
type BenchMedia struct {
	Prefix string // of the temporary folder's name
	// ReceiptTags tags every receipt with its package ID ("byok-package"), as the upload does.
	ReceiptTags bool

	mu      sync.Mutex
	dir     string
	mediums map[int]*BenchMedium
}

// Medium returns the medium of at least n bundles, building it on first use.
func (bs *BenchMedia) Medium(tb BenchTB, n int) *BenchMedium {
	tb.Helper()
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bm, ok := bs.mediums[n]; ok {
		return bm
	}
	if bs.dir == "" {
		d, err := os.MkdirTemp("", bs.Prefix)
		if err != nil {
			tb.Fatal(err)
		}
		bs.dir = d
	}
	start := time.Now()
	bm, err := BuildBenchMedium(filepath.Join(bs.dir, fmt.Sprint(n)), n, bs.ReceiptTags)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("built a medium of %d bundles (%.1f MiB, %d key packages) in %s", bm.Bundles, float64(bm.Bytes)/(1<<20), bm.Packages, time.Since(start).Round(time.Millisecond))
	if bs.mediums == nil {
		bs.mediums = map[int]*BenchMedium{}
	}
	bs.mediums[n] = bm
	return bm
}

// RemoveAll removes every medium built.
func (bs *BenchMedia) RemoveAll() {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.dir != "" {
		os.RemoveAll(bs.dir)
		bs.dir, bs.mediums = "", nil
	}
}

// BuildBenchMedium writes a medium of at least n bundles to dir.
func BuildBenchMedium(dir string, n int, receiptTags bool) (*BenchMedium, error) {
	// One second per bundle keeps 100,000 bundles well inside the 7-day lifetime of the KEK
	// offer.
	c, err := New(Config{Dir: dir, FastWrite: true, Step: time.Second})
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
	bm := &BenchMedium{Dir: dir, Anchor: c.PolicyID, Offline: &c.OfflineKey.PublicKey, Online: c.OnlineKey.Public().(ed25519.PublicKey),
		Custodians: map[bundle.ID]*ecdsa.PublicKey{}}
	for _, k := range c.Custodians {
		id, err := bundle.KeyID(k.Public())
		if err != nil {
			return nil, err
		}
		bm.Custodians[id] = &k.PublicKey
	}
	count := len(c.Written)
	c.Written = nil // do not keep every bundle in memory
	for count < n {
		k := *tmpl
		k.KeyName = fmt.Sprintf("key-%d", bm.Packages+1)
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
		if receiptTags {
			r.Tags = map[string]string{"byok-package": pkg.ID().String()}
		}
		if _, err := c.Append(bundle.ChainOnline, r); err != nil {
			return nil, err
		}
		bm.Packages++
		count += 3
		c.Written = c.Written[:0]
	}
	bm.Bundles = count
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			bm.Bytes += fi.Size()
		}
		return err
	})
	return bm, err
}

// Replay replays the medium with opts and its anchor, and fails unless the replay is
// complete and finds nothing.
func (bm *BenchMedium) Replay(opts chain.Options) (*chain.Result, error) {
	m, err := media.Open(bm.Dir)
	if err != nil {
		return nil, err
	}
	opts.Anchor = bm.Anchor
	res, err := chain.Replay(context.Background(), m, opts)
	m.Close()
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil || !res.Complete {
		return res, fmt.Errorf("replay: findings %v, complete %v", err, res.Complete)
	}
	return res, nil
}

// Floor is the verification floor of a medium: for its bundle bytes held in memory,
// single-threaded and without any framework, only what no verifier can skip: SHA-256 of the
// header and of the stored payload, the station signature and the zstd decode, and with
// approvals also the custodian signatures of the approval bundles (extracted beforehand).
type Floor struct {
	bundles       []floorBundle
	offline       *ecdsa.PublicKey
	online        ed25519.PublicKey
	dec           *zstd.Decoder
	out, msg, buf []byte
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

const (
	floorSigDomain = "airgap-byok/v1/bundle-signature\x00"
	floorIDDomain  = "airgap-byok/v1/bundle-id\x00"
)

// LoadFloor reads every bundle file of the medium into memory, and with approvals the
// custodian signatures of its approval bundles. Close the floor when done.
func (bm *BenchMedium) LoadFloor(withApprovals bool) (*Floor, error) {
	m, err := media.Open(bm.Dir)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	fl := &Floor{offline: bm.Offline, online: bm.Online, out: make([]byte, 0, bundle.MaxPayload),
		msg: make([]byte, len(floorSigDomain)+32), buf: make([]byte, len(floorIDDomain)+bundle.HeaderSize)}
	copy(fl.msg, floorSigDomain)
	copy(fl.buf, floorIDDomain)
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		for e, err := range m.Entries(c, 1, nil) {
			if err != nil {
				return nil, err
			}
			d, err := m.Read(e)
			if err != nil {
				return nil, err
			}
			fb := floorBundle{data: d, ecdsa: c == bundle.ChainOffline}
			if withApprovals {
				if fb.approvals, err = bm.floorApprovals(d); err != nil {
					return nil, err
				}
			}
			fl.bundles = append(fl.bundles, fb)
		}
	}
	fl.dec, err = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(bundle.MaxPayload),
		zstd.WithDecoderMaxWindow(bundle.MaxPayload), zstd.WithDecoderConcurrency(0))
	if err != nil {
		return nil, err
	}
	return fl, nil
}

// floorApprovals returns the custodian signatures of an approval bundle, decoded outside the
// timed loop; nil for other bundles.
func (bm *BenchMedium) floorApprovals(data []byte) ([]floorApproval, error) {
	bb, err := bundle.Parse(data)
	if err != nil {
		return nil, err
	}
	if bb.Header.Kind != bundle.KindApproval {
		return nil, nil
	}
	p, err := bb.Open()
	if err != nil {
		return nil, err
	}
	v, err := payload.DecodeVersion(bb.Header.Version, bundle.KindApproval, p)
	if err != nil {
		return nil, err
	}
	a := v.(*payload.Approval)
	var out []floorApproval
	for _, s := range a.Signatures {
		pub, ok := bm.Custodians[s.Custodian]
		if !ok {
			return nil, fmt.Errorf("approval by an unknown custodian %s", s.Custodian.Short())
		}
		out = append(out, floorApproval{pub: pub, digest: sha256.Sum256(bundle.ApprovalMessage(bb.Header.Version, a.Target)),
			r: new(big.Int).SetBytes(s.Sig[:32]), s: new(big.Int).SetBytes(s.Sig[32:])})
	}
	return out, nil
}

// Bundles is the number of bundles the floor verifies per Run.
func (fl *Floor) Bundles() int { return len(fl.bundles) }

// Close releases the zstd decoder.
func (fl *Floor) Close() { fl.dec.Close() }

// Run verifies every bundle once, single-threaded.
func (fl *Floor) Run() error {
	var err error
	for _, fb := range fl.bundles {
		d := fb.data
		hdr, sig, stored := d[:bundle.HeaderSize], d[bundle.HeaderSize:bundle.HeaderSize+bundle.SignatureSize], d[bundle.HeaderSize+bundle.SignatureSize:]
		// SHA-256 of the stored payload.
		if sd := sha256.Sum256(stored); string(sd[:]) != string(hdr[216:248]) {
			return errors.New("stored digest mismatch")
		}
		// The station signature over the bundle ID.
		copy(fl.buf[len(floorIDDomain):], hdr)
		id := sha256.Sum256(fl.buf)
		copy(fl.msg[len(floorSigDomain):], id[:])
		if fb.ecdsa {
			h := sha256.Sum256(fl.msg)
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if !ecdsa.Verify(fl.offline, h[:], r, s) {
				return errors.New("bad signature")
			}
		} else if !ed25519.Verify(fl.online, fl.msg, sig) {
			return errors.New("bad signature")
		}
		// The zstd decode.
		if fl.out, err = fl.dec.DecodeAll(stored, fl.out[:0]); err != nil {
			return err
		}
		for _, a := range fb.approvals {
			if !ecdsa.Verify(a.pub, a.digest[:], a.r, a.s) {
				return errors.New("bad approval")
			}
		}
	}
	return nil
}

// PeakHeap samples the live heap every few milliseconds until Stop.
type PeakHeap struct {
	peak atomic.Uint64
	done chan struct{}
	wg   sync.WaitGroup
}

// StartPeakHeap collects garbage, then starts sampling.
func StartPeakHeap() *PeakHeap {
	runtime.GC()
	p := &PeakHeap{done: make(chan struct{})}
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

// Stop ends the sampling and returns the peak in MiB.
func (p *PeakHeap) Stop() float64 {
	close(p.done)
	p.wg.Wait()
	return float64(p.peak.Load()) / (1 << 20)
}
