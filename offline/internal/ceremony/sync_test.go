package ceremony_test

import (
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

func TestPackageState(t *testing.T) {
	imported := store.Receipt{Outcome: payload.OutcomeImported}
	rejected := store.Receipt{Outcome: payload.OutcomeRejected}
	mismatch := store.Receipt{Outcome: payload.OutcomePublicKeyMismatch}
	wrongKey := store.Receipt{Outcome: payload.OutcomeImported, KeyMismatch: true}
	tests := []struct {
		name string
		rs   []store.Receipt
		want string
	}{
		{"none", nil, store.PackageOutstanding},
		{"imported", []store.Receipt{imported}, store.PackageImported},
		{"rejected", []store.Receipt{rejected}, store.PackageRejected},
		{"rejected then imported", []store.Receipt{rejected, imported}, store.PackageImported},
		{"mismatch reported", []store.Receipt{mismatch}, store.PackageMismatch},
		{"mismatch found", []store.Receipt{rejected, wrongKey}, store.PackageMismatch},
	}
	for _, tt := range tests {
		if got := ceremony.PackageState(tt.rs); got != tt.want {
			t.Errorf("%s: ceremony.PackageState = %s, want %s", tt.name, got, tt.want)
		}
	}
}
