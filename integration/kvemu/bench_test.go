package kvemu_test

import (
	"context"
	"crypto/elliptic"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
)

// BenchmarkImportKey measures BYOK imports through the unmodified azkeys client over TLS,
// in memory and with the bbolt state file (one fsync'd transaction per import).
func BenchmarkImportKey(b *testing.B) {
	for _, state := range []bool{false, true} {
		b.Run(fmt.Sprintf("state=%v", state), func(b *testing.B) {
			cfg := kvemu.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Limits: kvemu.Limits{EC: -1}}
			if state {
				cfg.StatePath = filepath.Join(b.TempDir(), "state.db")
			}
			v := kvemutest.Start(b, cfg)
			c := v.Client(b, nil)
			k := createKEK(b, c, "kek", 2048)
			tg := ecTarget(b, elliptic.P256(), "P-256")
			file := k.wrap(b, tg.der)
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					name := fmt.Sprintf("k%d", n.Add(1))
					if _, err := importBYOK(c, name, tg.kty, tg.crv, file); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkGetKey measures GetKey round trips.
func BenchmarkGetKey(b *testing.B) {
	v := kvemutest.Start(b, kvemu.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Limits: kvemu.Limits{RSA2048: -1}})
	c := v.Client(b, nil)
	createKEK(b, c, "kek", 2048)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetKey(ctx, "kek", "", nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
