package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// TestPackageSeveralKeys packages three keys in one run: three consecutive bundles with
// their plain copies, a rerun finds them all, and a batch with one refusal writes nothing.
func TestPackageSeveralKeys(t *testing.T) {
	f := newFixture(t)
	f.setup()
	f.offer(onlinetest.OfferOptions{Vault: premium, Bits: 3072})
	for _, k := range []string{"rsa-2048:RSA-2048", "ec-256:EC-P256", "ec-384:EC-P384", "rsa-3072:RSA-3072"} {
		ident, kt, _ := strings.Cut(k, ":")
		f.must("keygen", "--type", kt, "--ident", ident)
	}
	head := f.offlineHead()

	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a name for several keys", []string{"--key", "rsa-2048,ec-256", "--name", "x"}, exitcode.Usage, "--name names one key"},
		{"a key twice", []string{"--key", "rsa-2048", "--key", "rsa-2048"}, exitcode.Usage, "given twice"},
		{"one refused", []string{"--key", "rsa-2048,ec-384"}, exitcode.Refused, "key ec-384: .*weaker than the EC-P384 key.*no key was packaged"},
		{"one unknown", []string{"--key", "rsa-2048,nope"}, exitcode.Usage, `no key "nope"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			errs := f.exits(tt.code, append([]string{"package", "--vault", premium}, tt.args...)...)
			if !matches(tt.want, errs) {
				t.Errorf("stderr %q does not match %q", errs, tt.want)
			}
			if got := f.offlineHead(); got != head {
				t.Errorf("a refused batch moved the offline chain from %d to %d", head, got)
			}
		})
	}

	var batch packageBatchResult
	f.mustJSON(&batch, "package", "--key", "rsa-2048", "--key", "ec-256,rsa-3072", "--vault", premium)
	if len(batch.Packages) != 3 {
		t.Fatalf("%d packages, want 3", len(batch.Packages))
	}
	for i, want := range []string{"rsa-2048", "ec-256", "rsa-3072"} {
		r := batch.Packages[i]
		if r.Ident != want || r.KeyName != want || r.Existing || r.Seq != head+1+uint64(i) {
			t.Errorf("package %d = %s %q seq %d (existing %t), want %s at seq %d", i, r.Ident, r.KeyName, r.Seq, r.Existing, want, head+1+uint64(i))
		}
		if _, err := os.Stat(filepath.Join(f.media, filepath.FromSlash(r.Byok))); err != nil {
			t.Errorf("plain copy of %s: %v", want, err)
		}
	}
	f.withLedger(func(s *store.Store) {
		if pkgs, err := s.Packages(); err != nil || len(pkgs) != 3 {
			t.Errorf("ledger has %d packages (%v), want 3", len(pkgs), err)
		}
	})
	f.replay()

	var again packageBatchResult
	f.mustJSON(&again, "package", "--key", "rsa-2048,ec-256,rsa-3072", "--vault", premium)
	for i, r := range again.Packages {
		if !r.Existing || r.Package != batch.Packages[i].Package {
			t.Errorf("rerun package %d = %s (existing %t), want %s", i, r.Package.Fingerprint, r.Existing, batch.Packages[i].Package.Fingerprint)
		}
	}
	if got := f.offlineHead(); got != head+3 {
		t.Errorf("offline head %d after the rerun, want %d", got, head+3)
	}
}

// package resumes the replay from the ledger's checkpoint: it verifies what was written
// since, not the whole medium again, which the commands that show every bundle still do.
func TestPackageResumesFromTheCheckpoint(t *testing.T) {
	f := newFixture(t)
	f.setup()
	f.offer(onlinetest.OfferOptions{Vault: premium})
	f.must("keygen", "--type", "EC-P256", "--ident", "one")
	f.must("keygen", "--type", "EC-P256", "--ident", "two")
	f.must("package", "--key", "one", "--vault", premium)

	// Damage the policy bundle, which the checkpoint covers.
	m, err := media.Open(f.media)
	if err != nil {
		t.Fatal(err)
	}
	var p string
	for e, err := range m.Entries(bundle.ChainOffline, 1, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq == 2 {
			p = filepath.Join(f.media, filepath.FromSlash(e.Path))
		}
	}
	m.Close()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 1
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o444); err != nil {
		t.Fatal(err)
	}

	var r packageResult
	f.mustJSON(&r, "package", "--key", "two", "--vault", premium)
	if r.Existing || r.Ident != "two" {
		t.Errorf("package = %+v, want a new package of two", r)
	}
	if errs := f.exits(exitcode.Verify, "log"); !strings.Contains(errs, "hash mismatch") {
		t.Errorf("log (a full replay) = %q, want the damaged bundle's hash mismatch", errs)
	}
}
