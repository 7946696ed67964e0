package cli

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/online/internal/keyfile"
	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/online/internal/vault/vaultfake"
	"github.com/airgap-byok/airgap-byok/shared/buildinfo"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/logsetup"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

const vaultURL = "https://contoso-byok.vault.azure.net"

var kek2048 = func() *rsa.PrivateKey { return chaintest.RSAKey("kek-2048") }()

// testStation is an initialised online station with a fake vault and the offline side's
// ceremony on its medium.
type testStation struct {
	t      *testing.T
	flags  stationFlags
	vault  *vaultfake.Vault
	wrap   func(vault.Vault) vault.Vault // wraps the fake for one test
	d      deps
	c      *chaintest.Ceremony
	stdout bytes.Buffer
	stderr bytes.Buffer
	stdin  string
	offer  bundle.ID
}

func newStation(t *testing.T, kind string, edit func(*payload.Policy)) *testStation {
	t.Helper()
	dir := t.TempDir()
	s := &testStation{t: t, flags: stationFlags{StateDir: filepath.Join(dir, "state"), Media: filepath.Join(dir, "media")}}
	if err := os.Mkdir(s.flags.Media, 0o755); err != nil {
		t.Fatal(err)
	}
	s.vault = vaultfake.New(vaultURL)
	s.vault.NewRSA = func(int) *rsa.PrivateKey { return kek2048 }
	s.vault.Attest = kind == payload.VaultManagedHSM
	s.d = deps{
		now:   time.Now,
		sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() },
		newVault: func(url string, o vault.Options) vault.Vault {
			if url != vaultURL {
				t.Errorf("vault %s requested", url)
			}
			if s.wrap != nil {
				return s.wrap(s.vault)
			}
			return s.vault
		},
	}
	if code := s.run(func(ctx context.Context, env *clirun.Env) error {
		return runInit(ctx, initOptions{stationFlags: s.flags, Name: "online"}, env, s.d)
	}); code != 0 {
		t.Fatalf("init: exit %d: %s", code, s.stderr.String())
	}
	// The offline station writes the format version byok-offline writes.
	c, err := chaintest.New(chaintest.Config{Dir: s.flags.Media, Start: time.Now(), Step: time.Millisecond, Vault: vaultURL, VaultKind: kind,
		KEKBits: 2048, AllowWeakerKEK: true, Version: bundle.Version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	key, err := keyfile.Load(s.flags.keyPath())
	if err != nil {
		t.Fatal(err)
	}
	c.OnlineKey = key
	s.c = c
	s.sync()
	pk, _ := payload.NewPublicKey(c.OfflineKey.Public())
	if _, err := c.Append(bundle.ChainOffline, &payload.Enrollment{Station: "offline", Name: "offline", Key: pk, Software: "test"}); err != nil {
		t.Fatal(err)
	}
	p := c.NewPolicy()
	if edit != nil {
		edit(p)
	}
	pb, err := c.Append(bundle.ChainOffline, p)
	if err != nil {
		t.Fatal(err)
	}
	c.Policy, c.PolicyID = p, pb.ID()
	if _, err := c.Approve(pb.ID(), bundle.KindPolicy, 0, 1); err != nil {
		t.Fatal(err)
	}
	return s
}

// run runs a command with fresh output buffers and returns its exit code.
func (s *testStation) run(f func(context.Context, *clirun.Env) error) int {
	s.stdout.Reset()
	s.stderr.Reset()
	env := clirun.NewEnv(Name, strings.NewReader(s.stdin), &s.stdout, &s.stderr)
	l, err := logsetup.New(s.t.Output(), "debug", "text")
	if err != nil {
		s.t.Fatal(err)
	}
	env.Log = l
	err = f(context.Background(), env)
	if err != nil {
		fmt.Fprintf(&s.stderr, "error: %v\n", err)
	}
	return exitCode(err)
}

// sync makes the ceremony see the medium's online chain.
func (s *testStation) sync() {
	s.t.Helper()
	e, ok, err := s.c.M.Head(bundle.ChainOnline)
	if err != nil || !ok {
		s.t.Fatalf("online head: %v %v", ok, err)
	}
	data, err := s.c.M.Read(e)
	if err != nil {
		s.t.Fatal(err)
	}
	h, err := bundle.ParseHeader(data)
	if err != nil {
		s.t.Fatal(err)
	}
	s.c.Heads.Online = chain.Head{Seq: e.Seq, ID: e.ID, Created: h.Created}
}

func (s *testStation) trust() {
	s.t.Helper()
	if code := s.run(func(ctx context.Context, env *clirun.Env) error {
		return runTrust(ctx, trustOptions{stationFlags: s.flags, Fingerprint: s.c.PolicyID.Short()}, env, s.d)
	}); code != 0 {
		s.t.Fatalf("trust: exit %d: %s", code, s.stderr.String())
	}
}

func (s *testStation) kek() int { return s.kekCreate(false) }

// kekCreate runs kek create, with --new-version if newVersion.
func (s *testStation) kekCreate(newVersion bool) int {
	return s.run(func(ctx context.Context, env *clirun.Env) error {
		return runKEKCreate(ctx, kekCreateOptions{stationFlags: s.flags, Vault: vaultURL, Name: "kek", Size: 2048, Expires: 720 * time.Hour, NewVersion: newVersion}, env, s.d)
	})
}

// takeOffer registers the offer at the online head with the ceremony.
func (s *testStation) takeOffer() *payload.KEKOffer {
	s.t.Helper()
	s.sync()
	e, err := s.c.M.Find(bundle.ChainOnline, s.c.Heads.Online.Seq)
	if err != nil {
		s.t.Fatal(err)
	}
	data, _ := s.c.M.Read(e)
	b, err := bundle.Parse(data)
	if err != nil {
		s.t.Fatal(err)
	}
	raw, err := b.Open()
	if err != nil {
		s.t.Fatal(err)
	}
	v, err := payload.Decode(b.Header.Kind, raw)
	if err != nil {
		s.t.Fatal(err)
	}
	o, ok := v.(*payload.KEKOffer)
	if !ok {
		s.t.Fatalf("online head is a %s", b.Header.Kind)
	}
	s.c.RegisterOffer(b.ID(), o)
	s.offer = b.ID()
	return o
}

func (s *testStation) upload(o uploadOptions) int {
	o.stationFlags = s.flags
	if o.Concurrency == 0 {
		o.Concurrency = 4
	}
	o.MaxAttempts, o.RateWindow = 3, time.Second
	if o.RequestTimeout == 0 {
		// The in-process vault answers at once; a short timeout keeps the look-again wait
		// after an ambiguous failure (twice the timeout) short.
		o.RequestTimeout = 100 * time.Millisecond
	}
	return s.run(func(ctx context.Context, env *clirun.Env) error { return runUpload(ctx, o, env, s.d) })
}

func (s *testStation) onlineSeq() uint64 {
	e, _, err := s.c.M.Head(bundle.ChainOnline)
	if err != nil {
		s.t.Fatal(err)
	}
	return e.Seq
}

// readBack wraps a vault and edits the key GetKey returns.
type readBack struct {
	vault.Vault
	edit func(*vault.Key)
}

func (r readBack) GetKey(ctx context.Context, name, version string) (*vault.Key, error) {
	k, err := r.Vault.GetKey(ctx, name, version)
	if err == nil {
		r.edit(k)
	}
	return k, err
}

func TestKEKCreateChecksWhatKeyVaultHolds(t *testing.T) {
	tests := []struct {
		name string
		edit func(*vault.Key)
	}{
		{"other key operations", func(k *vault.Key) { k.KeyOps = []string{"import", "decrypt"} }},
		{"other size", func(k *vault.Key) { k.Size = 3072 }},
		{"other type", func(k *vault.Key) { k.Kty = "RSA" }},
		{"no expiry", func(k *vault.Key) { k.Expires = time.Time{} }},
		{"disabled", func(k *vault.Key) { k.Enabled = false }},
		{"other version", func(k *vault.Key) { k.KID += "0" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStation(t, payload.VaultPremium, nil)
			s.trust()
			s.wrap = func(v vault.Vault) vault.Vault { return readBack{v, tt.edit} }
			if code := s.kek(); code != exitcode.Verify {
				t.Fatalf("kek create: exit %d, want %d: %s", code, exitcode.Verify, s.stderr.String())
			}
			if !strings.Contains(s.stderr.String(), "key vault's KEK") {
				t.Errorf("stderr = %s", s.stderr.String())
			}
			if seq := s.onlineSeq(); seq != 1 {
				t.Errorf("online chain at seq %d: an offer was written", seq)
			}
		})
	}
}

func TestKEKCreateWritesAnOffer(t *testing.T) {
	tests := []struct {
		kind     string
		attested bool
	}{{payload.VaultPremium, false}, {payload.VaultManagedHSM, true}}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			s := newStation(t, tt.kind, nil)
			s.trust()
			s.vault.Fail(vaultfake.OpCreate, vaultfake.Fault{Err: &vault.Error{Status: 429, Kind: vault.ErrThrottled, RetryAfter: time.Second}, Count: 2})
			if code := s.kek(); code != 0 {
				t.Fatalf("kek create: exit %d: %s", code, s.stderr.String())
			}
			o := s.takeOffer()
			if got := (o.Attestation != nil); got != tt.attested {
				t.Errorf("attestation present = %v, want %v", got, tt.attested)
			}
			if tt.attested && o.Attestation.Format != AttestationFormat+"/1.0" {
				t.Errorf("attestation format = %q", o.Attestation.Format)
			}
			if o.KeySize != 2048 || o.Kty != "RSA-HSM" || len(o.KeyOps) != 1 || o.KeyOps[0] != "import" {
				t.Errorf("offer = %+v", o)
			}
			if exp := time.Unix(o.Expires, 0); exp.Before(time.Now().Add(719*time.Hour)) || exp.After(time.Now().Add(721*time.Hour)) {
				t.Errorf("KEK expires %s, want in 720h", exp)
			}
			if n := len(s.vault.Versions("kek")); n != 1 {
				t.Errorf("%d KEK versions, want 1: a throttled create creates nothing", n)
			}
			if !strings.Contains(s.stdout.String(), "KEK "+o.KID) {
				t.Errorf("stdout = %s", s.stdout.String())
			}
		})
	}
}

// A policy that lists the toolsets allowed to write, without this binary, makes kek create
// refuse before it creates anything in Key Vault (exit 7); one that lists it lets it write.
func TestKEKCreateRefusesAToolsetThePolicyDoesNotList(t *testing.T) {
	self, err := buildinfo.Self()
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		name    string
		allowed []string
		code    int
	}{
		{"not listed", []string{chaintest.TestToolset.SHA256, other}, exitcode.Refused},
		{"listed", []string{chaintest.TestToolset.SHA256, self.SHA256}, exitcode.OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStation(t, payload.VaultPremium, func(p *payload.Policy) { p.AllowedToolsets = payload.SortToolsets(tt.allowed) })
			s.trust()
			before := s.onlineSeq()
			if code := s.kek(); code != tt.code {
				t.Fatalf("kek create: exit %d, want %d: %s", code, tt.code, s.stderr.String())
			}
			if tt.code == exitcode.OK {
				if o := s.takeOffer(); o.Toolset == nil || *o.Toolset != (payload.Toolset{Version: self.Version, SHA256: self.SHA256}) {
					t.Errorf("the offer records toolset %+v, want this binary's %+v", o.Toolset, self)
				}
				return
			}
			if !strings.Contains(s.stderr.String(), "sha256 "+self.SHA256+") is not one of the 2 toolsets") {
				t.Errorf("stderr = %s", s.stderr.String())
			}
			if n := len(s.vault.Versions("kek")); n != 0 || s.onlineSeq() != before {
				t.Errorf("a refused kek create made %d KEK versions and moved the online chain from %d to %d", n, before, s.onlineSeq())
			}
		})
	}
}

// upload checks the policy's allowed toolsets before it imports anything: under a policy
// version that no longer lists this binary it refuses (exit 7), Key Vault holds no key and
// the online chain does not move.
func TestUploadRefusesAToolsetThePolicyDoesNotList(t *testing.T) {
	self, err := buildinfo.Self()
	if err != nil {
		t.Fatal(err)
	}
	s := newStation(t, payload.VaultPremium, func(p *payload.Policy) {
		p.AllowedToolsets = payload.SortToolsets([]string{chaintest.TestToolset.SHA256, self.SHA256})
	})
	s.trust()
	if code := s.kek(); code != 0 {
		t.Fatalf("kek create: exit %d: %s", code, s.stderr.String())
	}
	s.takeOffer()
	// Policy version 2 drops this binary; both custodians approve it.
	s.c.Clock = time.Now()
	p2 := *s.c.Policy
	p2.Version, p2.Previous = 2, s.c.PolicyID
	p2.AllowedToolsets = payload.SortToolsets([]string{chaintest.TestToolset.SHA256, strings.Repeat("ab", 32)})
	b2, err := s.c.Append(bundle.ChainOffline, &p2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Approve(b2.ID(), bundle.KindPolicy, 0, 1); err != nil {
		t.Fatal(err)
	}
	s.c.Policy, s.c.PolicyID = &p2, b2.ID()
	pkg, err := s.c.Package(s.offer, payload.ECP256, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Approve(pkg.ID(), bundle.KindKeyPackage, 0, 1); err != nil {
		t.Fatal(err)
	}
	before := s.onlineSeq()
	if code := s.upload(uploadOptions{}); code != exitcode.Refused {
		t.Fatalf("upload: exit %d, want %d: %s", code, exitcode.Refused, s.stderr.String())
	}
	if !strings.Contains(s.stderr.String(), "sha256 "+self.SHA256+") is not one of the 2 toolsets") {
		t.Errorf("stderr = %s", s.stderr.String())
	}
	if n := s.vault.Calls(vaultfake.OpImport); n != 0 || s.vault.Imports() != 0 || s.onlineSeq() != before {
		t.Errorf("a refused upload made %d import calls (%d imports) and moved the online chain from %d to %d", n, s.vault.Imports(), before, s.onlineSeq())
	}
}

func TestKEKCreateFailures(t *testing.T) {
	t.Run("lost response", func(t *testing.T) {
		s := newStation(t, payload.VaultPremium, nil)
		s.trust()
		s.vault.Fail(vaultfake.OpCreate, vaultfake.Fault{Err: vaultfake.ErrLost})
		if code := s.kek(); code != exitcode.Vault {
			t.Fatalf("exit %d, want %d", code, exitcode.Vault)
		}
		if s.vault.Calls(vaultfake.OpCreate) != 1 {
			t.Error("a create with a lost response was retried")
		}
	})
	t.Run("lost response, then rerun", func(t *testing.T) {
		// The create took effect; its response was lost. The rerun finds that KEK by its
		// tag and offers it: one KEK version, one offer.
		s := newStation(t, payload.VaultPremium, nil)
		s.trust()
		s.vault.Fail(vaultfake.OpCreate, vaultfake.Fault{Err: vaultfake.ErrLost, Commit: true})
		if code := s.kek(); code != exitcode.Vault {
			t.Fatalf("exit %d, want %d", code, exitcode.Vault)
		}
		if code := s.kek(); code != 0 {
			t.Fatalf("rerun: exit %d: %s", code, s.stderr.String())
		}
		vs := s.vault.Versions("kek")
		if len(vs) != 1 || s.vault.Calls(vaultfake.OpCreate) != 1 {
			t.Fatalf("%d KEK versions after %d creates, want 1 and 1", len(vs), s.vault.Calls(vaultfake.OpCreate))
		}
		if o := s.takeOffer(); o.KID != vs[0].KID || s.onlineSeq() != 2 {
			t.Errorf("offer for %s at online seq %d, want the one KEK %s at seq 2", o.KID, s.onlineSeq(), vs[0].KID)
		}
		if in, err := store.New(s.openDB()).KEKIntent(); err != nil || in != nil {
			t.Errorf("KEK intent after the rerun = %+v, %v; want none", in, err)
		}
	})
	t.Run("rejected, then rerun", func(t *testing.T) {
		// A create that failed without taking effect: the rerun creates the KEK.
		s := newStation(t, payload.VaultPremium, nil)
		s.trust()
		s.vault.Fail(vaultfake.OpCreate, vaultfake.Fault{Err: vaultfake.ErrLost})
		if code := s.kek(); code != exitcode.Vault {
			t.Fatalf("exit %d, want %d", code, exitcode.Vault)
		}
		if code := s.kek(); code != 0 {
			t.Fatalf("rerun: exit %d: %s", code, s.stderr.String())
		}
		if n := len(s.vault.Versions("kek")); n != 1 || s.onlineSeq() != 2 {
			t.Errorf("%d KEK versions, online seq %d; want 1 and 2", n, s.onlineSeq())
		}
	})
	t.Run("offer recorded, then rerun", func(t *testing.T) {
		// Killed after the offer was recorded, before the command ended: the rerun reports
		// that offer and creates nothing.
		s := newStation(t, payload.VaultPremium, nil)
		s.trust()
		if code := s.kek(); code != 0 {
			t.Fatalf("exit %d: %s", code, s.stderr.String())
		}
		db := s.openDB()
		sto := store.New(db)
		keks, err := sto.KEKs()
		if err != nil || len(keks) != 1 {
			t.Fatalf("KEKs = %v, %v", keks, err)
		}
		if err := sto.SetKEKIntent(&store.KEKIntent{Vault: vaultURL, Name: "kek", Size: 2048, Tag: "00", Offer: keks[0].Offer}); err != nil {
			t.Fatal(err)
		}
		db.Close()
		s.stdout.Reset()
		if code := s.kek(); code != 0 {
			t.Fatalf("rerun: exit %d: %s", code, s.stderr.String())
		}
		if n := len(s.vault.Versions("kek")); n != 1 || s.onlineSeq() != 2 {
			t.Errorf("%d KEK versions, online seq %d; want 1 and 2", n, s.onlineSeq())
		}
		if !strings.Contains(s.stdout.String(), "KEK "+keks[0].KID) {
			t.Errorf("stdout = %s, want the finished offer's KEK", s.stdout.String())
		}
		// The name has an offer that has not expired: another kek create is refused before
		// anything is sent, unless asked for a new version.
		calls := s.vault.Calls(vaultfake.OpCreate)
		if code := s.kek(); code != exitcode.Refused || len(s.vault.Versions("kek")) != 1 || s.vault.Calls(vaultfake.OpCreate) != calls {
			t.Errorf("a new kek create after that: exit %d, %d versions; want exit 7 and nothing sent", code, len(s.vault.Versions("kek")))
		}
		if !strings.Contains(s.stderr.String(), "has an offer that has not expired") {
			t.Errorf("stderr = %s, want the live offer named", s.stderr.String())
		}
		if code := s.kekCreate(true); code != 0 || len(s.vault.Versions("kek")) != 2 {
			t.Errorf("kek create --new-version: exit %d, %d versions; want a second KEK", code, len(s.vault.Versions("kek")))
		}
	})
	t.Run("attestation unavailable", func(t *testing.T) {
		s := newStation(t, payload.VaultManagedHSM, nil)
		s.trust()
		s.vault.Fail(vaultfake.OpAttestation, vaultfake.Fault{Err: &vault.Error{Status: 400, Kind: vault.ErrRefused}})
		if code := s.kek(); code != exitcode.Vault {
			t.Fatalf("exit %d, want %d", code, exitcode.Vault)
		}
		if seq := s.onlineSeq(); seq != 1 {
			t.Errorf("online chain at seq %d: an offer without attestation was written", seq)
		}
	})
	t.Run("before trust", func(t *testing.T) {
		s := newStation(t, payload.VaultPremium, nil)
		if code := s.kek(); code != exitcode.Usage || !strings.Contains(s.stderr.String(), "no policy is trusted") {
			t.Fatalf("exit %d: %s", code, s.stderr.String())
		}
	})
	t.Run("smaller than the policy's minimum", func(t *testing.T) {
		s := newStation(t, payload.VaultPremium, func(p *payload.Policy) { p.MinKEKBits = 3072 })
		s.trust()
		if code := s.kek(); code != exitcode.Refused {
			t.Fatalf("exit %d: %s", code, s.stderr.String())
		}
		if s.vault.Calls(vaultfake.OpCreate) != 0 {
			t.Error("Key Vault was called")
		}
	})
}

func TestTrust(t *testing.T) {
	t.Run("typed at the prompt", func(t *testing.T) {
		s := newStation(t, payload.VaultPremium, nil)
		s.stdin = strings.ToLower(strings.ReplaceAll(s.c.PolicyID.Short(), "-", " ")) + "\n"
		code := s.run(func(ctx context.Context, env *clirun.Env) error {
			return runTrust(ctx, trustOptions{stationFlags: s.flags}, env, s.d)
		})
		if code != 0 || !strings.Contains(s.stdout.String(), "pinned policy "+s.c.PolicyID.Short()) {
			t.Fatalf("exit %d\n%s\n%s", code, s.stdout.String(), s.stderr.String())
		}
	})
	t.Run("nothing typed", func(t *testing.T) {
		s := newStation(t, payload.VaultPremium, nil)
		code := s.run(func(ctx context.Context, env *clirun.Env) error {
			return runTrust(ctx, trustOptions{stationFlags: s.flags}, env, s.d)
		})
		if code != exitcode.Usage {
			t.Fatalf("exit %d, want %d", code, exitcode.Usage)
		}
	})
	t.Run("policy for another station", func(t *testing.T) {
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		s := newStation(t, payload.VaultPremium, func(p *payload.Policy) {
			pk, _ := payload.NewPublicKey(other.Public())
			p.OnlineStation = pk
		})
		code := s.run(func(ctx context.Context, env *clirun.Env) error {
			return runTrust(ctx, trustOptions{stationFlags: s.flags, Fingerprint: s.c.PolicyID.Short()}, env, s.d)
		})
		// The replay refuses the online enrollment first: the policy names another key.
		if code != exitcode.Verify {
			t.Fatalf("exit %d, want %d: %s", code, exitcode.Verify, s.stderr.String())
		}
	})
}

func TestUploadExitCodes(t *testing.T) {
	setup := func(t *testing.T) (*testStation, *bundle.Bundle) {
		s := newStation(t, payload.VaultPremium, nil)
		s.trust()
		if code := s.kek(); code != 0 {
			t.Fatalf("kek create: exit %d: %s", code, s.stderr.String())
		}
		s.takeOffer()
		s.c.Clock = time.Now()
		p, err := s.c.Package(s.offer, payload.ECP256, "key-1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.c.Approve(p.ID(), bundle.KindKeyPackage, 0, 1); err != nil {
			t.Fatal(err)
		}
		return s, p
	}
	t.Run("imported", func(t *testing.T) {
		s, _ := setup(t)
		if code := s.upload(uploadOptions{}); code != 0 {
			t.Fatalf("exit %d: %s", code, s.stderr.String())
		}
		if s.vault.Imports() != 1 {
			t.Errorf("%d imports", s.vault.Imports())
		}
	})
	t.Run("public key mismatch", func(t *testing.T) {
		s, _ := setup(t)
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		s.vault.Tamper = func(crypto.PublicKey) crypto.PublicKey { return &other.PublicKey }
		if code := s.upload(uploadOptions{}); code != exitcode.Verify {
			t.Fatalf("exit %d, want %d: %s", code, exitcode.Verify, s.stderr.String())
		}
	})
	t.Run("failed", func(t *testing.T) {
		s, _ := setup(t)
		s.vault.Fail(vaultfake.OpImport, vaultfake.Fault{Err: &vault.Error{Status: 500, Kind: vault.ErrServer}, Count: 10})
		if code := s.upload(uploadOptions{}); code != exitcode.Vault {
			t.Fatalf("exit %d, want %d: %s", code, exitcode.Vault, s.stderr.String())
		}
		if n := s.vault.Calls(vaultfake.OpImport); n != 3 {
			t.Errorf("%d import calls, want --max-attempts (3)", n)
		}
	})
	t.Run("json", func(t *testing.T) {
		s, p := setup(t)
		code := s.run(func(ctx context.Context, env *clirun.Env) error {
			env.JSON = true
			return runUpload(ctx, uploadOptions{stationFlags: s.flags, Concurrency: 2, MaxAttempts: 1, RateWindow: time.Second}, env, s.d)
		})
		if code != 0 {
			t.Fatalf("exit %d: %s", code, s.stderr.String())
		}
		var out uploadResult
		if err := json.Unmarshal(s.stdout.Bytes(), &out); err != nil {
			t.Fatalf("stdout is not one JSON object: %v\n%s", err, s.stdout.String())
		}
		if len(out.Packages) != 1 || out.Packages[0].Package.ID != p.ID() || out.Packages[0].Outcome != "imported" || out.Packages[0].Receipt == nil {
			t.Errorf("result = %+v", out)
		}
	})
	t.Run("status", func(t *testing.T) {
		s, p := setup(t)
		if code := s.upload(uploadOptions{}); code != 0 {
			t.Fatal(s.stderr.String())
		}
		code := s.run(func(ctx context.Context, env *clirun.Env) error {
			env.JSON = true
			return runStatus(ctx, statusOptions{stationFlags{StateDir: s.flags.StateDir}}, env, s.d)
		})
		var st statusResult
		if err := json.Unmarshal(s.stdout.Bytes(), &st); code != 0 || err != nil {
			t.Fatalf("exit %d, %v: %s", code, err, s.stdout.String())
		}
		if st.Policy == nil || st.Policy.ID != s.c.PolicyID || len(st.KEKs) != 1 || len(st.Uploads) != 1 || st.Uploads[0].Package != fp(p.ID()) ||
			st.Counts["imported"] != 1 || st.Online.Seq != 3 || st.Offline.Seq != s.c.Heads.Offline.Seq {
			t.Errorf("status = %+v", st)
		}
	})
}

// openDB opens the station's ledger, closed at the end of the test (closing it twice is
// harmless).
func (s *testStation) openDB() *bolt.DB {
	s.t.Helper()
	db, err := ledger.Open(filepath.Join(s.flags.StateDir, station.LedgerFile), store.Schema)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { db.Close() })
	return db
}
