package cli

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
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
		{"not initialised", ceremony.ErrNotInitialised, exitcode.Usage, "run byok-offline init first"},
		{"no policy", ceremony.ErrNoPolicy, exitcode.Verify, ""},
		{"ceremony usage", fmt.Errorf("%w: --key-ops x", ceremony.ErrUsage), exitcode.Usage, ""},
		{"vault not allowed", &ceremony.Error{Kind: ceremony.ErrVaultNotAllowed, Err: errors.New("x"), Vaults: []string{"https://a", "https://b"}}, exitcode.Refused, "the policy allows https://a, https://b"},
		{"wrong PIN", &ceremony.Error{Kind: ceremony.ErrToken, Err: &hsm.Error{Op: "open", Kind: hsm.ErrPINIncorrect}}, exitcode.HSM, "check the PIN: the token locks the PIN after a few wrong tries"},
		{"hsm without a next step", &ceremony.Error{Kind: ceremony.ErrToken, Err: &hsm.Error{Op: "open", Kind: hsm.ErrExists}}, exitcode.Refused, ""},
		{"hsm interrupted in a step", &ceremony.Error{Kind: ceremony.ErrToken, Err: &hsm.Error{Op: "open", Kind: hsm.ErrModule, Err: context.Canceled}}, exitcode.Interrupted, ""},
		{"replay rollback", &ceremony.ReplayError{Err: station.VerifyErr(&chain.RollbackError{Chain: bundle.ChainOnline, Remembered: 3, Found: 2})}, exitcode.Verify, "is this the right stick? it must hold everything both stations wrote"},
		{"replay untrusted", &ceremony.ReplayError{Err: station.VerifyErr(fmt.Errorf("x: %w", chain.ErrUntrusted))}, exitcode.Verify, "this medium belongs to another ceremony"},
		{"replay fork", &ceremony.ReplayError{Err: station.VerifyErr(&chain.ForkError{Chain: bundle.ChainOnline, Seq: 2})}, exitcode.Verify, "another station wrote to this medium's chains: do not use it, investigate"},
		{"replay keeps its own hint", &ceremony.ReplayError{Err: &station.DisagreeError{Err: &chain.RollbackError{}, ByIdentity: true}}, exitcode.Verify, "another station wrote to this medium's chains, or it was tampered with: do not use it, investigate"},
		{"KEK expired", &ceremony.Error{Kind: ceremony.ErrKEKExpired, Err: errors.New("x"), Vault: "https://v.vault.azure.net", KID: "https://v.vault.azure.net/keys/m2kek/0123456789abcdef0123456789abcdef"}, exitcode.Verify,
			"the online station offers a new one (byok-online kek create --vault https://v.vault.azure.net --name m2kek), then run byok-offline kek accept"},
		{"KEK too weak", &ceremony.Error{Kind: ceremony.ErrKEKStrength, Err: errors.New("x"), KeyType: payload.ECP384}, exitcode.Refused, weakerKEKHint(payload.ECP384)},
		{"label held", &ceremony.Error{Kind: ceremony.ErrLabelHeld, Err: errors.New("x"), Label: "app"}, exitcode.Refused, "adopt it with --select-label app, or choose another --ident"},
		{"signer held", &ceremony.Error{Kind: ceremony.ErrSignerHeld, Err: errors.New("x"), Flag: "--reuse-station-key", What: "station key"}, exitcode.Refused, "pass --reuse-station-key to use it as the station key, or remove it"},
		{"signer label taken", &ceremony.Error{Kind: ceremony.ErrSignerLabelTaken, Err: errors.New("x"), Token: "t", Label: "l"}, exitcode.Refused, `another object in token "t" carries label "l": choose another label`},
		{"not a custodian", &ceremony.Error{Kind: ceremony.ErrNotEligible, Err: errors.New("x"), Custodians: []string{"alice", "bob"}}, exitcode.Refused, "the custodians are alice, bob"},
		{"not of the region", &ceremony.Error{Kind: ceremony.ErrNotEligible, Err: errors.New("x"), Custodians: []string{"carol"}, Region: "northeurope"}, exitcode.Refused, "the approvals that count are those of carol"},
		{"not of either version", &ceremony.Error{Kind: ceremony.ErrNotEligible, Err: errors.New("x"), Custodians: []string{"alice", "bob"}, Proposed: []string{"bob", "carol"}}, exitcode.Refused,
			"the custodians are alice, bob now and bob, carol in the proposal"},
		{"key mismatch after sync", (&ceremony.SyncReport{Mismatches: 1, Findings: 1}).Err(), exitcode.Verify, "do not use those keys; investigate with the online operator"},
		{"findings after sync", (&ceremony.SyncReport{Findings: 2}).Err(), exitcode.Verify, "a key reached Key Vault against the policy: investigate with the online operator"},
		{"replay malformed", &ceremony.ReplayError{Err: station.VerifyErr(&bundle.ParseError{What: "header", Err: errors.New("x")})}, exitcode.Bundle, ""},
		{"init done", &ceremony.Error{Kind: ceremony.ErrInitDone, Err: errors.New("x")}, exitcode.Refused, "init runs once per state folder; use a new --state-dir for a new ceremony"},
		{"interrupted init's policy", &ceremony.Error{Kind: ceremony.ErrInitPolicyDiffers, Err: errors.New("x")}, exitcode.Refused, "rerun init with exactly the flags of the interrupted run"},
		{"no online enrollment", &ceremony.Error{Kind: ceremony.ErrNoOnlineEnrollment, Err: errors.New("x")}, exitcode.Bundle, "run byok-online init with this medium first, then bring it here"},
		{"two online enrollments", &ceremony.Error{Kind: ceremony.ErrOnlineEnrollments, Err: &chain.ForkError{Chain: bundle.ChainOnline, Seq: 1}}, exitcode.Verify, "the medium must hold exactly one online station's enrollment"},
		{"online enrollment changed", &ceremony.Error{Kind: ceremony.ErrOnlineChanged, Err: errors.New("x")}, exitcode.Verify, "is this the right stick?"},
		{"wrong fingerprint", &ceremony.Error{Kind: ceremony.ErrWrongFingerprint, Err: errors.New("x")}, exitcode.Verify, "do not continue: the medium or the fingerprint read aloud is not the online station's"},
		{"online enrollment unverified", &ceremony.Error{Kind: ceremony.ErrOnlineUnverified, Err: &bundle.HashMismatchError{What: "file name"}}, exitcode.Verify, ""},
		{"online enrollment malformed", &ceremony.Error{Kind: ceremony.ErrMalformed, Err: &bundle.ParseError{What: "header", Err: errors.New("x")}}, exitcode.Bundle, ""},
	}
	for kind, want := range ceremonyKinds {
		tests = append(tests, test{"kind " + kind.Error(), fmt.Errorf("key k: %w", &ceremony.Error{Kind: kind, Err: errors.New("x")}), want.Code, want.Hint})
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
