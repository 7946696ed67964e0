package cli

import (
	"errors"
	"fmt"
	"testing"

	"github.com/airgap-byok/airgap-byok/online/internal/keyfile"
	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/online/internal/verify"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
)

// TestRules pins the exit code and hint of byok-online's own domain errors.
func TestRules(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantHint string
	}{
		{"key vault", fmt.Errorf("import: %w", &vault.Error{Op: "import key", Status: 403, Kind: vault.ErrRefused}), exitcode.Vault, ""},
		{"key vault unreachable", &vault.Error{Op: "get key", Kind: vault.ErrTransport, Err: errors.New("connection refused")}, exitcode.Vault, ""},
		{"token file", &vault.TokenFileError{Err: errors.New("empty")}, exitcode.Usage, "--token-file must name a file whose first line is the bearer token"},
		{"credential", &vault.CredentialError{Err: errors.New("none")}, exitcode.Vault, "log in with az login, or set the AZURE_* environment variables"},
		{"ca file", &vault.CAFileError{Err: errors.New("--ca-file holds no PEM certificate")}, exitcode.Usage, ""},
		{"finding", &verify.FindingError{Err: errors.New("expired: x")}, exitcode.Verify, ""},
		{"no policy", verify.ErrNoPolicy, exitcode.Verify, ""},
		{"no anchor", station.ErrNoAnchor, exitcode.Usage, "run byok-online trust first"},
		{"key file exists", fmt.Errorf("p: %w", keyfile.ErrExists), exitcode.Refused, "a state folder holds one station for its life; use a new --state-dir for a new station"},
		{"key file mode", fmt.Errorf("p has mode 0644: %w", keyfile.ErrPermissions), exitcode.Refused, "the key may have been copied: if you are sure it was not, chmod 600 it"},
		{"key file unwritable", &keyfile.WriteError{Err: errors.New("x")}, exitcode.Media, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hint := clirun.Classify(tt.err, rules...)
			if code != tt.wantCode || hint != tt.wantHint {
				t.Errorf("Classify(%v) = %d, %q, want %d, %q", tt.err, code, hint, tt.wantCode, tt.wantHint)
			}
		})
	}
}
