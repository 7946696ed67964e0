package cli

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
	"golang.org/x/sys/unix"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
)

// Sizes of the benchmark's pool: every (key, vault) pair is packaged at most once, so one
// run packages at most benchKeys*benchVaults keys (the policy allows 64 vaults): enough for
// -benchtime 100x -count 3 of both sub-benchmarks.
const (
	benchKeys   = 10
	benchVaults = 64
)

// BenchmarkPackageRSA3072Paired packages RSA-3072 keys through the tool's code path (the
// package command's plan and pack: ledger checks, HSM lookup and wrap, .byok, manifest,
// seal with the station key in the HSM, the journaled write of the bundle to the medium,
// the ledger, the plain .byok copy) and, alternately, makes the same HSM calls straight
// through miekg/pkcs11 (find the key, read its attributes, import the KEK, generate the
// ephemeral AES key, two C_WrapKey, two C_DestroyObject, one ECDSA C_Sign). It reports the
// median wall time and the median CPU time of the benchmark's thread of each, per key, and
// the tool's overhead in percent of the direct calls.
//
// keys=1 packages one key per run of the command, as "package --key k" does: one journal
// cycle per key. keys=8 packages eight keys per run, as "package --key k1,...,k8" does: the
// bundles of the eight share one journal cycle (one pending record, one folder sync, one
// commit) and the tool's time per key is the batch's time divided by eight, set against eight
// rounds of the direct calls divided by eight. In both, b.N counts keys.
//
// The wall time includes the fsyncs that make a package survive a power cut (bundle file,
// medium folder, plain copy and its folder, two ledger commits per journal cycle); run with
// TMPDIR on a tmpfs to measure the tool without the disk. Run with -benchtime=Nx, with
// 2*count*(N+1) at most benchKeys*benchVaults.
func BenchmarkPackageRSA3072Paired(b *testing.B) {
	f := newFixture(b)
	on := f.online()
	if _, err := on.Enroll(); err != nil {
		b.Fatal(err)
	}
	args := []string{"init", "--custodian", "alice=alice", "--threshold", "1", "--online-fingerprint", on.Fingerprint()}
	var vaults []string
	for i := range benchVaults {
		v := fmt.Sprintf("https://bench-%02d.vault.azure.net", i)
		vaults = append(vaults, v)
		args = append(args, "--vault", v+"=premium:westeurope")
	}
	f.quiet(args...)
	for _, v := range vaults {
		if _, _, err := f.online().Offer(onlinetest.OfferOptions{Vault: v}); err != nil {
			b.Fatal(err)
		}
	}
	f.quiet("kek", "accept")
	for i := range benchKeys {
		f.quiet("keygen", "--type", "RSA-3072", "--ident", fmt.Sprintf("k%d", i))
	}

	ctx := context.Background()
	env := clirun.NewEnv(Name, strings.NewReader(""), discard{}, discard{})
	p, err := openPacker(ctx, env, stateOptions{StateDir: f.state, Media: f.media}, hsmOptions{}.withDefaults(mustStation(b, f)), "")
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	d := newDirect(b, p)
	defer d.close()

	next := 0
	plan := func() *ceremony.PackagePlan {
		k, v := next%benchKeys, next/benchKeys
		if v >= benchVaults {
			b.Fatalf("more than %d keys: lower -benchtime", benchKeys*benchVaults)
		}
		next++
		plan, err := p.Plan(ceremony.PackageRequest{Ident: fmt.Sprintf("k%d", k), Vault: vaults[v], KeyName: fmt.Sprintf("k%d", k), Enabled: true})
		if err != nil {
			b.Fatal(err)
		}
		return plan
	}
	toolPackage := func(n int) func() {
		return func() {
			var plans []*ceremony.PackagePlan
			for range n {
				plans = append(plans, plan())
			}
			res, err := p.PackAll(ctx, plans)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range res {
				if r.Existing {
					b.Fatalf("package %s existed already", r.Record.ID.Short())
				}
			}
		}
	}
	kek := onlinetest.KEK(3072).PublicKey
	directPackage := func(n int) func() {
		return func() {
			for i := range n {
				d.packageOnce(b, fmt.Sprintf("k%d", (next+i)%benchKeys), &kek)
			}
		}
	}

	toolPackage(1)() // the first call reads the mechanism list, once per token
	directPackage(1)()
	for _, batch := range []int{1, 8} {
		b.Run(fmt.Sprintf("keys=%d", batch), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var tool, direct, toolCPU, directCPU []time.Duration
			measure := func(fn func(), n int, wall, cpu *[]time.Duration) {
				c0 := threadCPU(b)
				t0 := time.Now()
				fn()
				*wall = append(*wall, time.Since(t0)/time.Duration(n))
				*cpu = append(*cpu, (threadCPU(b)-c0)/time.Duration(n))
			}
			for done := 0; done < b.N; done += batch {
				n := min(batch, b.N-done)
				if len(tool)%2 == 0 {
					measure(toolPackage(n), n, &tool, &toolCPU)
					measure(directPackage(n), n, &direct, &directCPU)
				} else {
					measure(directPackage(n), n, &direct, &directCPU)
					measure(toolPackage(n), n, &tool, &toolCPU)
				}
			}
			report := func(tool, direct []time.Duration, unit string) {
				tm, dm := median(tool), median(direct)
				b.ReportMetric(float64(tm.Nanoseconds()), "tool-"+unit)
				b.ReportMetric(float64(dm.Nanoseconds()), "direct-"+unit)
				b.ReportMetric(100*(float64(tm)-float64(dm))/float64(dm), "overhead-%-"+unit)
			}
			report(tool, direct, "wall-ns")
			report(toolCPU, directCPU, "cpu-ns")
		})
	}
}

// quiet runs a setup command and fails the benchmark unless it succeeds.
func (f *fixture) quiet(args ...string) {
	f.t.Helper()
	env := clirun.NewEnv(Name, strings.NewReader(""), discard{}, discard{})
	if code := clirun.Run(context.Background(), NewApp(env), env, append([]string{Name}, args...)); code != 0 {
		f.t.Fatalf("byok-offline %s: exit %d", strings.Join(args, " "), code)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func mustStation(tb testing.TB, f *fixture) *store.Station {
	var st *store.Station
	f.withLedger(func(s *store.Store) {
		var err error
		if st, err = s.Station(); err != nil {
			tb.Fatal(err)
		}
	})
	return st
}

// direct makes the HSM calls of one package straight through miekg/pkcs11, on its own
// session of the station's token (opened after the tool's, so the module is initialised
// and the user logged in).
type direct struct {
	p       *pkcs11.Ctx
	sh      pkcs11.SessionHandle
	station pkcs11.ObjectHandle
	ids     map[string][]byte
}

func newDirect(b *testing.B, pk *packing) *direct {
	b.Helper()
	p := pkcs11.New(pk.st.Module)
	if p == nil {
		b.Fatal("pkcs11.New failed")
	}
	if err := p.Initialize(); err != nil && err != pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		b.Fatal(err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		b.Fatal(err)
	}
	d := &direct{p: p, ids: map[string][]byte{}}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil || strings.TrimSpace(ti.Label) != pk.st.TokenLabel {
			continue
		}
		if d.sh, err = p.OpenSession(s, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
			b.Fatal(err)
		}
	}
	if d.sh == 0 {
		b.Fatal("station token not found")
	}
	hs := d.find(b, pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), pkcs11.NewAttribute(pkcs11.CKA_LABEL, pk.st.KeyLabel))
	if len(hs) != 1 {
		b.Fatalf("%d station keys", len(hs))
	}
	d.station = hs[0]
	keys, err := pk.sess.Store.Keys()
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range keys {
		id, _ := hex.DecodeString(k.ID)
		d.ids[k.Label] = id
	}
	return d
}

func (d *direct) close() { _ = d.p.CloseSession(d.sh) }

func (d *direct) find(b *testing.B, tmpl ...*pkcs11.Attribute) []pkcs11.ObjectHandle {
	if err := d.p.FindObjectsInit(d.sh, tmpl); err != nil {
		b.Fatal(err)
	}
	hs, _, err := d.p.FindObjects(d.sh, 64)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.p.FindObjectsFinal(d.sh); err != nil {
		b.Fatal(err)
	}
	return hs
}

// directAttributes are the attributes the tool reads of a target key, one call each as it
// does: its provenance, label, ID, type, modulus and exponent.
var directAttributes = []uint{
	pkcs11.CKA_CLASS, pkcs11.CKA_KEY_TYPE, pkcs11.CKA_LABEL, pkcs11.CKA_ID, pkcs11.CKA_TOKEN, pkcs11.CKA_PRIVATE,
	pkcs11.CKA_MODIFIABLE, pkcs11.CKA_COPYABLE, pkcs11.CKA_DESTROYABLE, pkcs11.CKA_LOCAL, pkcs11.CKA_KEY_GEN_MECHANISM,
	pkcs11.CKA_SENSITIVE, pkcs11.CKA_ALWAYS_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_NEVER_EXTRACTABLE,
	pkcs11.CKA_WRAP_WITH_TRUSTED, pkcs11.CKA_ALWAYS_AUTHENTICATE, pkcs11.CKA_SIGN, pkcs11.CKA_DECRYPT, pkcs11.CKA_UNWRAP,
	pkcs11.CKA_DERIVE, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_LABEL, pkcs11.CKA_ID, pkcs11.CKA_KEY_TYPE,
	pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT,
}

// packageOnce makes the HSM calls of packaging the key labelled label for kek.
func (d *direct) packageOnce(b *testing.B, label string, kek *rsa.PublicKey) {
	hs := d.find(b, pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label), pkcs11.NewAttribute(pkcs11.CKA_ID, d.ids[label]))
	if len(hs) != 1 {
		b.Fatalf("%d keys labelled %s", len(hs), label)
	}
	target := hs[0]
	for _, a := range directAttributes {
		// Some attributes do not apply to RSA keys: the token says so, as for the tool.
		_, _ = d.p.GetAttributeValue(d.sh, target, []*pkcs11.Attribute{pkcs11.NewAttribute(a, nil)})
	}
	kekObj, err := d.p.CreateObject(d.sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "byok-kek (session)"),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, kek.N.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(kek.E)).Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
	})
	if err != nil {
		b.Fatal(err)
	}
	aesObj, err := d.p.GenerateKey(d.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
	})
	if err != nil {
		b.Fatal(err)
	}
	kwp, err := d.p.WrapKey(d.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, aesObj, target)
	if err != nil {
		b.Fatal(err)
	}
	oaep := pkcs11.NewOAEPParams(pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, pkcs11.CKZ_DATA_SPECIFIED, nil)
	rsaPart, err := d.p.WrapKey(d.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, oaep)}, kekObj, aesObj)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.p.DestroyObject(d.sh, aesObj); err != nil {
		b.Fatal(err)
	}
	if err := d.p.DestroyObject(d.sh, kekObj); err != nil {
		b.Fatal(err)
	}
	if len(rsaPart)+len(kwp) <= kek.Size() {
		b.Fatal("short ciphertext")
	}
	// The station's signature over a bundle ID.
	var id [32]byte
	_, _ = rand.Read(id[:])
	digest := sha256.Sum256(id[:])
	if err := d.p.SignInit(d.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, d.station); err != nil {
		b.Fatal(err)
	}
	if _, err := d.p.Sign(d.sh, digest[:]); err != nil {
		b.Fatal(err)
	}
}

// threadCPU returns the CPU time consumed by the calling OS thread.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
