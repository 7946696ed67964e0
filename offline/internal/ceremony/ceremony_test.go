package ceremony_test

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
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

// TestResolveID: a full ID or a fingerprint (as typed) names one of the candidates; one that
// names none is ErrNoSuchBundle listing the candidates; anything else is a usage error.
func TestResolveID(t *testing.T) {
	a, b := bundle.ID{1, 2, 3}, bundle.ID{4, 5, 6}
	ids := []bundle.ID{a, b}
	tests := []struct {
		name     string
		in       string
		want     bundle.ID
		wantKind error
	}{
		{"full ID", a.String(), a, nil},
		{"full ID in capitals", strings.ToUpper(b.String()), b, nil},
		{"fingerprint", b.Short(), b, nil},
		{"fingerprint as typed", strings.ToLower(strings.ReplaceAll(b.Short(), "-", "")), b, nil},
		{"unknown fingerprint", bundle.ID{7}.Short(), bundle.ID{}, ceremony.ErrNoSuchBundle},
		{"unknown ID", bundle.ID{7}.String(), bundle.ID{}, ceremony.ErrNoSuchBundle},
		{"garbage", "hello!", bundle.ID{}, ceremony.ErrUsage},
	}
	for _, tt := range tests {
		got, err := ceremony.ResolveID("key package", tt.in, ids, func(id bundle.ID) string { return "pkg " + id.Short() })
		if got != tt.want || (tt.wantKind == nil) != (err == nil) || (tt.wantKind != nil && !errors.Is(err, tt.wantKind)) {
			t.Errorf("%s: ResolveID(%q) = %s, %v; want %s, kind %v", tt.name, tt.in, got.Short(), err, tt.want.Short(), tt.wantKind)
		}
		var ce *ceremony.Error
		if tt.wantKind == ceremony.ErrNoSuchBundle && (!errors.As(err, &ce) || !slices.Equal(ce.Have, []string{"pkg " + a.Short(), "pkg " + b.Short()})) {
			t.Errorf("%s: ResolveID(%q) = %v, want the candidates as described", tt.name, tt.in, err)
		}
	}
	if _, err := ceremony.ResolveID("KEK offer", (bundle.ID{7}).Short(), nil, nil); err == nil || err.Error() != "no KEK offer "+(bundle.ID{7}).Short() {
		t.Errorf("ResolveID among none = %v", err)
	}
}
