package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// TestInspect renders a key package verified with the ledger's keys, and refuses copies
// whose bytes changed: in the header (the signature no longer verifies) or in the stored
// payload (its digest no longer matches).
func TestInspect(t *testing.T) {
	f := newFixture(t)
	f.setup()
	pkg := f.packageWeb()
	orig, err := os.ReadFile(filepath.Join(f.media, filepath.FromSlash(pkg.Path)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		flip   int // byte to flip, -1 for none
		code   int
		stdout string
	}{
		{"intact", -1, exitcode.OK, `"verified": true`},
		{"header changed", 200, exitcode.Verify, `"payload_state": "withheld"`},
		{"payload changed", bundle.HeaderSize + bundle.SignatureSize + 10, exitcode.Verify, `"payload_state": "invalid"`},
		{"truncated", len(orig) - 1, exitcode.Bundle, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := append([]byte(nil), orig...)
			if tt.name == "truncated" {
				data = data[:tt.flip]
			} else if tt.flip >= 0 {
				data[tt.flip] ^= 0x01
			}
			p := filepath.Join(t.TempDir(), "copy.bundle")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, _ := f.run("inspect", p)
			if code != tt.code || !strings.Contains(out, tt.stdout) {
				t.Errorf("inspect: exit %d, want %d; stdout %q, want it to contain %q", code, tt.code, out, tt.stdout)
			}
			if strings.Contains(out, `"ciphertext": "`) {
				t.Error("inspect shows the wrapped key")
			}
		})
	}
}
