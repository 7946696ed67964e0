// Package storetest opens byok-offline ledgers for tests.
package storetest

import (
	"path/filepath"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/ledger"
)

// Open opens a new ledger with the current schema in a temporary folder and closes it at the
// end of the test.
func Open(t testing.TB) *store.Store {
	t.Helper()
	db, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), store.Schema())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return store.New(db)
}
