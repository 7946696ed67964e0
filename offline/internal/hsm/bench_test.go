//go:build cgo

package hsm_test

import (
	"context"
	"crypto/rsa"
	"math/big"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
	"github.com/miekg/pkcs11"
	"golang.org/x/sys/unix"
)

// benchTarget opens a fresh token holding an RSA-3072 target key.
func benchTarget(b *testing.B, label string) (string, *hsm.Token, *hsm.Key, *rsa.PublicKey) {
	b.Helper()
	mod := softhsmtest.Setup(b, softhsmtest.Token{Label: label, PIN: userPIN, SOPIN: soPIN})
	tok, err := hsm.Open(context.Background(), hsm.Config{Module: mod, TokenLabel: label, PIN: secret.New(userPIN)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tok.Close() })
	k, err := tok.GenerateTarget(context.Background(), hsm.RSA3072, "bench-target", hsm.TargetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return mod, tok, k, &kek(b, 3072).PublicKey
}

// BenchmarkWrapRSA3072 is the package's Wrap of an RSA-3072 target for an RSA-3072 KEK.
func BenchmarkWrapRSA3072(b *testing.B) {
	_, tok, k, kek := benchTarget(b, "bench-pkg")
	ctx := context.Background()
	for b.Loop() {
		w, err := tok.Wrap(ctx, k, kek)
		if err != nil {
			b.Fatal(err)
		}
		if len(w.Ciphertext) <= kek.Size() {
			b.Fatal("short ciphertext")
		}
	}
}

// BenchmarkWrapRSA3072Direct makes the same PKCS#11 calls as Wrap on SoftHSM's two-step
// path (C_CreateObject KEK, C_GenerateKey AES-256, C_WrapKey RFC 5649, C_WrapKey RSA-OAEP,
// two C_DestroyObject) straight through miekg/pkcs11, with no package code around them.
func BenchmarkWrapRSA3072Direct(b *testing.B) {
	mod, _, k, kek := benchTarget(b, "bench-direct")
	r := rawSession(b, mod, "bench-direct")
	hs := r.find(b, pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), pkcs11.NewAttribute(pkcs11.CKA_ID, k.ID))
	if len(hs) != 1 {
		b.Fatalf("found %d targets", len(hs))
	}
	target := hs[0]
	for b.Loop() {
		directWrap(b, r, target, kek)
	}
}

// BenchmarkWrapRSA3072Paired alternates the package's Wrap and the direct calls on one
// token and target, so that load from other processes hits both alike. It reports, for
// each, the median wall time and the median CPU time of the benchmark's OS thread (SoftHSM
// works in the calling thread, so this leaves out time spent waiting for a CPU on a shared
// machine), and the package's overhead in percent of the direct medians.
func BenchmarkWrapRSA3072Paired(b *testing.B) {
	mod, tok, k, kek := benchTarget(b, "bench-paired")
	r := rawSession(b, mod, "bench-paired")
	hs := r.find(b, pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), pkcs11.NewAttribute(pkcs11.CKA_ID, k.ID))
	if len(hs) != 1 {
		b.Fatalf("found %d targets", len(hs))
	}
	ctx := context.Background()
	pkgWrap := func() {
		if _, err := tok.Wrap(ctx, k, kek); err != nil {
			b.Fatal(err)
		}
	}
	directWrapOnce := func() { directWrap(b, r, hs[0], kek) }
	pkgWrap() // the first Wrap reads the mechanism list, once per Token
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var pkg, direct, pkgCPU, directCPU []time.Duration
	measure := func(f func(), wall, cpu *[]time.Duration) {
		c0 := threadCPU(b)
		t0 := time.Now()
		f()
		*wall = append(*wall, time.Since(t0))
		*cpu = append(*cpu, threadCPU(b)-c0)
	}
	for b.Loop() {
		// Alternate which goes first.
		if len(pkg)%2 == 0 {
			measure(pkgWrap, &pkg, &pkgCPU)
			measure(directWrapOnce, &direct, &directCPU)
		} else {
			measure(directWrapOnce, &direct, &directCPU)
			measure(pkgWrap, &pkg, &pkgCPU)
		}
	}
	report := func(pkg, direct []time.Duration, unit string) {
		pm, dm := median(pkg), median(direct)
		b.ReportMetric(float64(pm.Nanoseconds()), "pkg-"+unit)
		b.ReportMetric(float64(dm.Nanoseconds()), "direct-"+unit)
		b.ReportMetric(100*(float64(pm)-float64(dm))/float64(dm), "overhead-%-"+unit)
	}
	report(pkg, direct, "wall-ns")
	report(pkgCPU, directCPU, "cpu-ns")
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

// directWrap is Wrap's two-step path on SoftHSM as bare miekg/pkcs11 calls.
func directWrap(b *testing.B, r *raw, target pkcs11.ObjectHandle, kek *rsa.PublicKey) {

	kekObj, err := r.p.CreateObject(r.sh, []*pkcs11.Attribute{
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
	aesObj, err := r.p.GenerateKey(r.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "byok-ephemeral (session)"),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
	})
	if err != nil {
		b.Fatal(err)
	}
	kwp, err := r.p.WrapKey(r.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, aesObj, target)
	if err != nil {
		b.Fatal(err)
	}
	oaep := pkcs11.NewOAEPParams(pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, pkcs11.CKZ_DATA_SPECIFIED, nil)
	rsaPart, err := r.p.WrapKey(r.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, oaep)}, kekObj, aesObj)
	if err != nil {
		b.Fatal(err)
	}
	ct := append(append(make([]byte, 0, len(rsaPart)+len(kwp)), rsaPart...), kwp...)
	if err := r.p.DestroyObject(r.sh, aesObj); err != nil {
		b.Fatal(err)
	}
	if err := r.p.DestroyObject(r.sh, kekObj); err != nil {
		b.Fatal(err)
	}
	if len(ct) <= kek.Size() {
		b.Fatal("short ciphertext")
	}
}

// BenchmarkFindTarget looks up an RSA-3072 target key (private and public objects share its
// label and ID) as package does, among a few keys.
func BenchmarkFindTarget(b *testing.B) {
	_, tok, k, _ := benchTarget(b, "bench-find")
	ctx := context.Background()
	for i := range 4 {
		if _, err := tok.GenerateTarget(ctx, hsm.ECP256, "other-"+string(rune('a'+i)), hsm.TargetOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := tok.FindTarget(ctx, hsm.KeyRef{Label: k.Label, ID: k.ID}); err != nil {
			b.Fatal(err)
		}
	}
}
