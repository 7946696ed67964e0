package cli

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

// TestRules pins the exit code and hint of byok-offline's own domain errors.
func TestRules(t *testing.T) {
	type test struct {
		name     string
		err      error
		wantCode int
		wantHint string
	}
	tests := []test{
		{"key exists", &store.KeyConflictError{Err: errors.New("x")}, exitcode.Refused, "choose another --ident"},
		{"interrupted keygen", &store.KeyConflictError{Err: errors.New("x"), Interrupted: true}, exitcode.Refused, "rerun keygen with the same --type and --wrap-with-trusted to finish it"},
		{"other online station", fmt.Errorf("%w X", store.ErrOtherOnline), exitcode.Refused, "a station pairs with one online station for its life; use a new state folder for a new ceremony"},
		{"hsm interrupted", &hsm.Error{Op: "open", Kind: hsm.ErrModule, Err: context.Canceled}, exitcode.Interrupted, ""},
		{"hsm under a usage error", fmt.Errorf("%w: %w", exitcode.ErrUsage, &hsm.Error{Op: "open", Kind: hsm.ErrPINLocked}), exitcode.Usage, ""},
	}
	for _, k := range hsmKinds {
		want := exitcode.HSM
		switch k {
		case hsm.ErrExists:
			want = exitcode.Refused
		case hsm.ErrInvalid:
			want = exitcode.Usage
		}
		tests = append(tests,
			test{"bare " + k.Error(), k, want, ""},
			test{k.Error(), fmt.Errorf("outer: %w", &hsm.Error{Op: "op", Kind: k, Err: errors.New("cause")}), want, ""})
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
