package integration_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/shared/fstest"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// BenchmarkOnlineUpload100 uploads 100 key packages (EC P-256, KEK RSA-2048: the emulator
// unwraps every import on the test machine's cores, work that Azure's HSMs do in production,
// so the cheapest KEK keeps it from competing with the tool) to the local Key Vault with 50
// ms of latency added to every request, three ways, in the same run:
//
//   - concurrent: byok-online upload, as shipped (a pool of 32 within the throttling
//     limits);
//   - sequential: byok-online upload --concurrency 1, the same code one package at a time;
//   - process-per-key: one byok-online upload --package ID process per key, one after the
//     other, as people script az keyvault key import.
//
// Each receipt is appended to the online chain one at a time (shared/station: two ledger
// commits and an atomic, synced medium write, about six fsyncs), so the concurrent upload is
// bound by the storage's fsync latency once the network is overlapped. The storage
// dimension shows that: disk puts the state folder and the medium on the test's temporary
// folder, tmpfs on a RAM file system (root only; skipped otherwise), where fsync is free.
//
// One op is the 100 uploads; setup (state folder, medium, policy, KEK, packages) is not
// timed. Each op checks that all 100 keys were imported exactly once and that the vault's
// peak requests per throttling window stayed within its limit. Run it with:
//
//	cd integration && go test -run '^$' -bench BenchmarkOnlineUpload100 -benchtime 3x .
func BenchmarkOnlineUpload100(b *testing.B) {
	const n = 100
	bins := buildOnline(b, b.TempDir())
	modes := []struct {
		name string
		run  func(r *onlineRig, pkgs []*bundle.Bundle)
	}{
		{"concurrent", func(r *onlineRig, _ []*bundle.Bundle) { r.must(0, "upload") }},
		{"sequential", func(r *onlineRig, _ []*bundle.Bundle) { r.must(0, "upload", "--concurrency", "1") }},
		{"process-per-key", func(r *onlineRig, pkgs []*bundle.Bundle) {
			for _, p := range pkgs {
				r.must(0, "upload", "--package", p.ID().String())
			}
		}},
	}
	for _, storage := range []string{"disk", "tmpfs"} {
		b.Run("storage="+storage, func(b *testing.B) {
			if storage == "tmpfs" && os.Geteuid() != 0 {
				b.Skip("a tmpfs needs root")
			}
			for _, m := range modes {
				b.Run(m.name, func(b *testing.B) {
					var peak int
					for range b.N {
						b.StopTimer()
						cfg := onlineRigConfig{KEKBits: 2048, AllowWeakerKEK: true, FastWrite: true}
						if storage == "tmpfs" {
							cfg.Dir = fstest.Full(b, 256<<20)
						}
						r := newOnlineRig(b, bins.plain, cfg)
						r.setup()
						pkgs := make([]*bundle.Bundle, n)
						for i := range pkgs {
							pkgs[i] = r.pkg(payload.ECP256, fmt.Sprintf("key-%03d", i))
						}
						r.vault.SetLatency(50 * time.Millisecond)
						r.vault.ResetStats()
						b.StartTimer()
						m.run(r, pkgs)
						b.StopTimer()
						st := r.vault.Stats()
						if st.Imports != n || st.Throttled != 0 {
							b.Fatalf("%d imports, %d throttled; want %d and 0", st.Imports, st.Throttled, n)
						}
						ec := st.Buckets[kvemu.BucketEC]
						if ec.Peak > ec.Limit {
							b.Fatalf("peak %d requests per window, limit %d", ec.Peak, ec.Limit)
						}
						peak = max(peak, ec.Peak)
						r.exactlyOnce(pkgs...)
					}
					b.ReportMetric(float64(peak), "peak-req/window")
					b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/100keys")
				})
			}
		})
	}
}
