// Package storetest opens byok-online ledgers for tests.
package storetest

import (
	"path/filepath"
	"testing"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/ledger"
)

// Open opens a new ledger at the current schema in t.TempDir() and closes it when the test
// ends.
func Open(t testing.TB) *store.Store {
	t.Helper()
	db, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), store.Schema)
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close ledger: %v", err)
		}
	})
	return store.New(db)
}
