package cli

import (
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

func TestParseVault(t *testing.T) {
	tests := []struct {
		in      string
		want    payload.Vault
		wantErr bool
	}{
		{"https://Contoso.vault.azure.net=premium:WestEurope", payload.Vault{URL: "https://contoso.vault.azure.net", Kind: "premium", Region: "westeurope"}, false},
		{"https://c.managedhsm.azure.net/=managed_hsm:eu", payload.Vault{URL: "https://c.managedhsm.azure.net", Kind: "managed_hsm", Region: "eu"}, false},
		{"https://c.managedhsm.azure.net=managed-hsm:eu", payload.Vault{URL: "https://c.managedhsm.azure.net", Kind: "managed_hsm", Region: "eu"}, false},
		{"https://c.managedhsm.azure.net=managedhsm:eu", payload.Vault{URL: "https://c.managedhsm.azure.net", Kind: "managed_hsm", Region: "eu"}, false},
		{"https://localhost:8443=premium:test", payload.Vault{URL: "https://localhost:8443", Kind: "premium", Region: "test"}, false},
		{"https://c.vault.azure.net", payload.Vault{}, true},
		{"https://c.vault.azure.net=premium", payload.Vault{}, true},
		{"https://c.vault.azure.net=standard:eu", payload.Vault{}, true},
		{"http://c.vault.azure.net=premium:eu", payload.Vault{}, true},
		{"https://c.vault.azure.net/keys=premium:eu", payload.Vault{}, true},
	}
	for _, tt := range tests {
		got, err := ceremony.ParseVault(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseVault(%q) = %+v, %v; want %+v (error %t)", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && exitCode(err) != exitcode.Usage {
			t.Errorf("parseVault(%q) error exits %d, want %d", tt.in, exitCode(err), exitcode.Usage)
		}
	}
}

func TestParseWhen(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"", 0, false},
		{"8760h", base.Add(8760 * time.Hour).Unix(), false},
		{"-1h", base.Add(-time.Hour).Unix(), false},
		{"2030-01-01", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), false},
		{"2030-01-01T10:00:00+02:00", time.Date(2030, 1, 1, 8, 0, 0, 0, time.UTC).Unix(), false},
		{"tomorrow", 0, true},
		{"2030-13-01", 0, true},
	}
	for _, tt := range tests {
		got, err := parseWhen("expires", tt.in, base)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseWhen(%q) = %d, %v; want %d (error %t)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestCustodianPINEnv(t *testing.T) {
	tests := []struct{ name, want string }{
		{"alice", "BYOK_OFFLINE_CUSTODIAN_PIN_ALICE"},
		{"bob-smith", "BYOK_OFFLINE_CUSTODIAN_PIN_BOB_SMITH"},
		{"c.d_e", "BYOK_OFFLINE_CUSTODIAN_PIN_C_D_E"},
		{"x9", "BYOK_OFFLINE_CUSTODIAN_PIN_X9"},
	}
	for _, tt := range tests {
		if got := custodianPINEnv(tt.name); got != tt.want {
			t.Errorf("custodianPINEnv(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestResolveID(t *testing.T) {
	a, b := bundle.ID{1, 2, 3}, bundle.ID{9, 9, 9}
	ids := []bundle.ID{a, b}
	tests := []struct {
		name     string
		in       string
		want     bundle.ID
		wantCode int
	}{
		{"full ID", a.String(), a, exitcode.OK},
		{"fingerprint", b.Short(), b, exitcode.OK},
		{"fingerprint as typed", lowerNoDashes(b.Short()), b, exitcode.OK},
		{"unknown fingerprint", bundle.ID{7}.Short(), bundle.ID{}, exitcode.Bundle},
		{"unknown ID", bundle.ID{7}.String(), bundle.ID{}, exitcode.Bundle},
		{"garbage", "hello!", bundle.ID{}, exitcode.Usage},
	}
	for _, tt := range tests {
		got, err := resolveID("key package", tt.in, ids, nil)
		if got != tt.want || exitCode(err) != tt.wantCode {
			t.Errorf("%s: resolveID(%q) = %s, %v; want %s, exit %d", tt.name, tt.in, got.Short(), err, tt.want.Short(), tt.wantCode)
		}
		if tt.wantCode == exitcode.Bundle && clirun.Hint(err, rules...) != "there are: "+a.Short()+", "+b.Short() {
			t.Errorf("%s: resolveID(%q) hint %q, want the fingerprints there are", tt.name, tt.in, clirun.Hint(err, rules...))
		}
	}
}

func lowerNoDashes(s string) string {
	b := []byte{}
	for _, c := range []byte(s) {
		switch {
		case c == '-':
		case c >= 'A' && c <= 'Z':
			b = append(b, c-'A'+'a')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func TestSpecOfTypeOf(t *testing.T) {
	for _, kt := range payload.KeyTypes {
		spec := ceremony.SpecOf(kt)
		if !spec.Valid() {
			t.Errorf("specOf(%s) = %v, not a valid HSM key spec", kt, spec)
		}
		if got := ceremony.TypeOf(spec); got != kt {
			t.Errorf("typeOf(specOf(%s)) = %s", kt, got)
		}
	}
}
