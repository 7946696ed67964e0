package ceremony_test

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

func TestAllowedType(t *testing.T) {
	premium := payload.Vault{URL: "https://a.vault.azure.net", Kind: payload.VaultPremium, Region: "westeurope"}
	managed := payload.Vault{URL: "https://b.managedhsm.azure.net", Kind: payload.VaultManagedHSM, Region: "westeurope"}
	tests := []struct {
		name    string
		vaults  []payload.Vault
		types   []payload.KeyType
		kt      payload.KeyType
		wantErr string
	}{
		{"allowed", []payload.Vault{premium}, []payload.KeyType{payload.RSA3072, payload.ECP256}, payload.ECP256, ""},
		{"not in the policy", []payload.Vault{premium}, []payload.KeyType{payload.RSA3072, payload.ECP256}, payload.RSA2048, "the policy does not allow RSA-2048 keys (it allows RSA-3072, EC-P256)"},
		{"AES without a Managed HSM", []payload.Vault{premium}, []payload.KeyType{payload.AES256}, payload.AES256, "AES-256 keys go only to a Managed HSM, and the policy names none"},
		{"AES with a Managed HSM", []payload.Vault{premium, managed}, []payload.KeyType{payload.AES256}, payload.AES256, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ceremony.AllowedType(&payload.Policy{Vaults: tt.vaults, KeyTypes: tt.types}, tt.kt)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("AllowedType(%s) = %v, want nil", tt.kt, err)
				}
				return
			}
			var ce *ceremony.Error
			if err == nil || err.Error() != tt.wantErr || !errors.As(err, &ce) || !errors.Is(err, ceremony.ErrKeyTypeNotAllowed) {
				t.Errorf("AllowedType(%s) = %v, want a ceremony.Error of kind ErrKeyTypeNotAllowed saying %q", tt.kt, err, tt.wantErr)
			}
		})
	}
}

// TestErrorChain checks that a ceremony.Error says only what happened, and that errors.Is
// and errors.As see both its kind and its cause through any wrapping.
func TestErrorChain(t *testing.T) {
	cause := fmt.Errorf("write: %w", fs.ErrPermission)
	err := fmt.Errorf("key k: %w", &ceremony.Error{Kind: ceremony.ErrByokWrite, Err: cause})
	if got, want := err.Error(), "key k: write: permission denied"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ceremony.ErrByokWrite) || !errors.Is(err, fs.ErrPermission) || errors.Is(err, ceremony.ErrByokCheck) {
		t.Errorf("errors.Is sees the wrong kinds or causes in %v", err)
	}
	if err := (&ceremony.ReplayError{Err: cause}); !errors.Is(err, fs.ErrPermission) || err.Error() != cause.Error() {
		t.Errorf("ReplayError = %v, want the replay's error unchanged", err)
	}
}
