package integration_test

// End-to-end tests of what byok-online does when the local Key Vault lies in its answers,
// commits an import after the client gave up, or fails in every way at once.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// testOnlineVaultLies: Key Vault imports the package but answers with another key than was
// asked for. upload signs nothing (no receipt on the medium), exits 3 naming what the vault
// holds, records the answer, and a rerun says the same without importing again.
func testOnlineVaultLies(t *testing.T, bins onlineBinaries) {
	tests := []struct {
		name string
		lie  kvemu.Lie
		want string
	}{
		{"kid names another key", kvemu.Lie{KIDName: "someone-else"}, "kid naming key someone-else, not key-1"},
		{"kid in another vault", kvemu.Lie{KIDVault: "https://other.vault.azure.net"}, "kid in vault https://other.vault.azure.net"},
		{"16 tags", kvemu.Lie{ExtraTags: 15}, "16 tags"},
		{"key type", kvemu.Lie{Set: map[string]json.RawMessage{"key.kty": json.RawMessage(`"RSA-HSM"`)}}, "key type RSA-HSM, not EC-HSM"},
		{"creation time zero", kvemu.Lie{Set: map[string]json.RawMessage{"attributes.created": json.RawMessage(`0`)}}, "creation time 0, not a positive time"},
		{"creation time negative", kvemu.Lie{Set: map[string]json.RawMessage{"attributes.created": json.RawMessage(`-86400`)}}, "creation time -86400"},
		{"key_ops and disabled", kvemu.Lie{Set: map[string]json.RawMessage{"key.key_ops": json.RawMessage(`["sign"]`), "attributes.enabled": json.RawMessage(`false`)}},
			"key_ops sign, not sign,verify; enabled false, not true"},
		{"malformed kid", kvemu.Lie{KID: "https://\x1b[2J/keys/"}, `kid "https://\x1b[2J/keys/" that is no key identifier`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
			r.setup()
			p := r.pkg(payload.ECP256, "key-1")
			lie := tt.lie
			if err := r.vault.InjectFault(kvemu.Fault{Kind: kvemu.FaultLie, Method: "PUT", Path: importPath, Lie: &lie}); err != nil {
				t.Fatal(err)
			}
			res := r.must(3, "upload")
			for _, want := range []string{"does not match the request", tt.want, "key vault holds kid ", "nothing was receipted", "az keyvault key show"} {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
				}
			}
			if strings.Contains(res.stderr, "\x1b") || strings.Contains(res.stdout, "\x1b") {
				t.Error("a terminal escape of the vault's reached the output")
			}
			if !strings.Contains(res.stdout, "key-1  EC-P256  vault_mismatch") {
				t.Errorf("stdout:\n%s", res.stdout)
			}
			if n := len(r.receipts()[p.ID()]); n != 0 {
				t.Fatalf("%d receipts on the medium for an answer that does not match", n)
			}
			if n := len(r.versions("key-1")); n != 1 {
				t.Fatalf("%d versions in the vault, want the 1 import", n)
			}
			// The rerun says the same, from the ledger, and imports nothing.
			res = r.must(3, "upload")
			if !strings.Contains(res.stderr, "does not match the request") || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("rerun stderr:\n%s", res.stderr)
			}
			if st := r.vault.Stats(); st.Imports != 1 {
				t.Errorf("%d imports after the rerun, want 1", st.Imports)
			}
			res = r.must(0, "status")
			if !strings.Contains(res.stdout, "vault_mismatch") || !strings.Contains(res.stdout, tt.want) {
				t.Errorf("status does not show the recorded answer:\n%s", res.stdout)
			}
			res = r.must(0, "verify")
			if !strings.Contains(res.stdout, "did not match the request") {
				t.Errorf("verify does not say why the package is not uploadable:\n%s", res.stdout)
			}
		})
	}
}

// testOnlineLateCommit: Key Vault holds the import for 4 s and commits it after the
// client's 2 s timeout and its first look. upload looks again before importing, finds the
// late version, and receipts it: one version, named by the receipt.
func testOnlineLateCommit(t *testing.T, bins onlineBinaries) {
	r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
	r.setup()
	p := r.pkg(payload.ECP256, "key-1")
	if err := r.vault.InjectFault(kvemu.Fault{Kind: kvemu.FaultLateCommit, Delay: 4 * time.Second, Method: "PUT", Path: importPath}); err != nil {
		t.Fatal(err)
	}
	res := r.run("upload", "--request-timeout", "2s")
	vs := r.versions("key-1")
	switch {
	case res.code == 0:
		if !strings.Contains(res.stderr, "import failed ambiguously") || !strings.Contains(res.stderr, "attempt=1") ||
			!strings.Contains(res.stderr, "no import found yet") || !strings.Contains(res.stderr, "import found in key vault") {
			t.Errorf("stderr does not show the second look:\n%s", res.stderr)
		}
		r.exactlyOnce(p)
		if rcs := r.receipts()[p.ID()]; len(vs) != 1 || len(rcs) != 1 || rcs[0].KID != vs[0].KID {
			t.Errorf("receipt does not name the one version: %+v, %+v", rcs, vs)
		}
	case res.code == 3 && len(vs) == 2:
		// A duplicate: acceptable only recorded and reported.
		for _, v := range vs {
			if !strings.Contains(res.stderr, v.KID) {
				t.Errorf("the duplicate %s is not named:\n%s", v.KID, res.stderr)
			}
		}
		if st := r.must(0, "status"); !strings.Contains(st.stdout, "DUPLICATE") {
			t.Errorf("status does not show the duplicate:\n%s", st.stdout)
		}
	default:
		t.Fatalf("upload: exit %d with %d versions\nstdout:\n%s\nstderr:\n%s", res.code, len(vs), res.stdout, res.stderr)
	}
	if st := r.vault.Stats(); st.Faults != 1 {
		t.Errorf("%d faults applied, want 1", st.Faults)
	}
}

// testOnlineStorm: a long storm of every fault kind on imports, version lists and reads,
// against many packages: every package ends with exactly one version and one receipt.
func testOnlineStorm(t *testing.T, bins onlineBinaries) {
	const packages = 60
	r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
	r.setup()
	var pkgs []*bundle.Bundle
	for i := range packages {
		pkgs = append(pkgs, r.pkg(payload.ECP256, fmt.Sprintf("key-%02d", i)))
	}
	routes := []struct{ method, path string }{
		{"PUT", importPath},
		{"GET", `^/keys/[^/]+/versions$`},
		{"GET", `^/keys/[^/]+/[0-9a-f]+$`},
	}
	faults := []kvemu.Fault{
		{Kind: kvemu.FaultReset},
		{Kind: kvemu.FaultCommitThenReset},
		{Kind: kvemu.FaultStatus, Status: 500},
		{Kind: kvemu.FaultStatus, Status: 503, RetryAfter: time.Second},
		{Kind: kvemu.FaultStatus, Status: 503},
		{Kind: kvemu.FaultStatus, Status: 429, RetryAfter: time.Second},
		{Kind: kvemu.FaultStatus, Status: 429},
		{Kind: kvemu.FaultSlow, Delay: 300 * time.Millisecond},
		{Kind: kvemu.FaultSlow, Delay: 1500 * time.Millisecond},
		{Kind: kvemu.FaultLateCommit, Delay: 1500 * time.Millisecond},
		{Kind: kvemu.FaultPass},
		{Kind: kvemu.FaultPass},
	}
	rng := rand.New(rand.NewPCG(8, 10))
	injected := 0
	for range 400 {
		f := faults[rng.IntN(len(faults))]
		rt := routes[rng.IntN(len(routes))]
		if f.Kind == kvemu.FaultLateCommit || f.Kind == kvemu.FaultCommitThenReset {
			rt = routes[0] // writes
		}
		f.Method, f.Path = rt.method, rt.path
		if err := r.vault.InjectFault(f); err != nil {
			t.Fatal(err)
		}
		if f.Kind != kvemu.FaultPass {
			injected++
		}
	}
	// A package may run out of attempts in the storm; a rerun finishes it, as an operator's
	// would. Every run must end without a duplicate or a mismatch.
	for run := 1; ; run++ {
		res := r.run("upload", "--request-timeout", "1s", "--max-attempts", "20", "--concurrency", "16")
		if res.code == 0 {
			break
		}
		if res.code != 6 || run == 4 {
			t.Fatalf("upload run %d: exit %d\nstdout:\n%s\nstderr:\n%s", run, res.code, res.stdout, res.stderr)
		}
	}
	r.exactlyOnce(pkgs...)
	st := r.vault.Stats()
	if st.Imports != packages {
		t.Errorf("the vault imported %d versions, want %d", st.Imports, packages)
	}
	if st.Faults < uint64(injected/2) {
		t.Errorf("only %d of %d faults were applied: the storm was not a storm", st.Faults, injected)
	}
	t.Logf("%d packages, %d faults applied (%d queued), %d requests", packages, st.Faults, injected, st.Requests)
	r.must(0, "verify")
}

// testOnlineDuplicateReported: Key Vault holds the first import longer than upload waits
// before it trusts a "not found" (twice --request-timeout after the failure), so upload
// imports again; the first commit lands while the second answer is on its way. The list
// after the second import shows both versions: upload exits 3 naming both, the ledger keeps
// both, status shows them, the receipt names one and lists both, verify reports the duplicate
// (exit 3), and a rerun imports nothing.
func testOnlineDuplicateReported(t *testing.T, bins onlineBinaries) {
	r := newOnlineRig(t, bins.plain, onlineRigConfig{AllowWeakerKEK: true})
	r.setup()
	p := r.pkg(payload.ECP256, "key-1")
	// Request timeout 4 s: the first import fails at 4 s, the last look before importing
	// again is at 12 s; the first commit lands at 13.5 s; the second import is answered at
	// 12 s + 3.5 s, and the list that follows sees both.
	for _, f := range []kvemu.Fault{
		{Kind: kvemu.FaultLateCommit, Delay: 13500 * time.Millisecond, Method: "PUT", Path: importPath},
		{Kind: kvemu.FaultSlow, Delay: 3500 * time.Millisecond, Method: "PUT", Path: importPath},
	} {
		if err := r.vault.InjectFault(f); err != nil {
			t.Fatal(err)
		}
	}
	res := r.must(3, "upload", "--request-timeout", "4s")
	vs := r.versions("key-1")
	if len(vs) != 2 {
		t.Fatalf("%d versions: the test did not provoke the duplicate it is about", len(vs))
	}
	for _, v := range vs {
		if !strings.Contains(res.stderr, v.KID) || !strings.Contains(res.stdout, "DUPLICATE: key vault holds "+v.KID) {
			t.Errorf("version %s is not named\nstdout:\n%s\nstderr:\n%s", v.KID, res.stdout, res.stderr)
		}
	}
	if !strings.Contains(res.stderr, "was imported 2 times") {
		t.Errorf("stderr:\n%s", res.stderr)
	}
	rcs := r.receipts()[p.ID()]
	kids := []string{vs[0].KID, vs[1].KID}
	slices.Sort(kids)
	if len(rcs) != 1 || (rcs[0].KID != vs[0].KID && rcs[0].KID != vs[1].KID) || !slices.Equal(rcs[0].Versions, kids) {
		t.Fatalf("receipts = %+v, want one naming one of the versions and listing both", rcs)
	}
	st := r.must(0, "status")
	if !strings.Contains(st.stdout, "DUPLICATE: imported 2 times; Key Vault holds "+vs[0].KID) {
		t.Errorf("status:\n%s", st.stdout)
	}
	// The receipt's versions make the duplicate a finding of every replay of the stick.
	ver := r.must(3, "verify")
	if !strings.Contains(ver.stdout, "was imported 2 times") || !strings.Contains(ver.stdout, "imported more than once") {
		t.Errorf("verify:\n%s", ver.stdout)
	}
	r.must(0, "upload")
	if n := len(r.versions("key-1")); n != 2 {
		t.Errorf("the rerun imported again: %d versions", n)
	}
}
