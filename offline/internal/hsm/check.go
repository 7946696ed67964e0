//go:build cgo

package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
)

// selfTestSpecs are the throwaway target keys of the wrap self-test.
var selfTestSpecs = []KeySpec{RSA2048, ECP256, AES256}

// Check gathers the token's information and mechanisms, chooses the wrap path and runs the
// wrap self-test: a throwaway software RSA-2048 KEK, throwaway session target keys in the
// token (RSA-2048, EC P-256, AES-256) wrapped by the same code as Wrap, unwrapped in Go with
// keywrap.UnwrapRSAAES and checked: the PKCS#8 parses and its public key equals the token's;
// the AES key's check value equals the token's. Trailing zero bytes after the PKCS#8 are
// counted and reported (CheckReport.ZeroPadding), not treated as failure.
//
// Check returns the report as far as it got, with an error wrapping ErrMechanism (no wrap
// path) or ErrSelfTest (a self-test failed) when CheckReport.OK is false, or the token's
// failure if even the information could not be read.
func (t *Token) Check(ctx context.Context) (CheckReport, error) {
	const op = "check token"
	var r CheckReport
	info, err := t.Info(ctx)
	if err != nil {
		return r, err
	}
	r.Info = info
	if r.Mechanisms, err = t.Mechanisms(ctx); err != nil {
		return r, err
	}
	r.ZeroPaddingKnown = padsToEight(info)

	m, err := ChooseWrapMethod(r.Mechanisms)
	if err != nil {
		r.WrapError = err.Error()
		r.ZeroPadding = r.ZeroPaddingKnown
		r.ZeroPaddingNote = zeroPaddingNote(r.ZeroPaddingKnown, false, info)
		return r, err
	}
	r.Wrap = &m

	kek, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return r, errorf(op, ErrModule, "generate self-test kek: %w", err)
	}
	var failed []error
	for _, spec := range selfTestSpecs {
		res := t.selfTest(ctx, kek, spec)
		r.SelfTest = append(r.SelfTest, res)
		if !res.OK {
			failed = append(failed, fmt.Errorf("%s: %s", spec, res.Detail))
		}
		if res.TrailingZeros > 0 {
			r.ZeroPaddingObserved = true
		}
	}
	r.ZeroPadding = r.ZeroPaddingKnown || r.ZeroPaddingObserved
	r.ZeroPaddingNote = zeroPaddingNote(r.ZeroPaddingKnown, r.ZeroPaddingObserved, info)
	if len(failed) > 0 {
		return r, &Error{Op: op, Kind: ErrSelfTest, Err: errors.Join(failed...)}
	}
	r.OK = true
	t.log.Info("token check passed", "label", t.label, "path", string(m.Path), "zero_padding", r.ZeroPadding)
	return r, nil
}

// selfTest wraps one throwaway session key for kek and checks what comes out.
func (t *Token) selfTest(ctx context.Context, kek *rsa.PrivateKey, spec KeySpec) SelfTestResult {
	res := SelfTestResult{Spec: spec}
	fail := func(format string, args ...any) SelfTestResult {
		res.Detail = fmt.Sprintf(format, args...)
		return res
	}
	k, w, err := t.selfTestWrap(ctx, &kek.PublicKey, spec)
	if err != nil {
		return fail("%v", err)
	}
	res.WrappedBytes = len(w.Ciphertext)
	plain, err := keywrap.UnwrapRSAAES(kek, w.Ciphertext)
	if err != nil {
		return fail("unwrap in go: %v", err)
	}
	if spec.Type == AES {
		if len(plain) != spec.Bits/8 {
			return fail("unwrapped aes key is %d bytes, want %d", len(plain), spec.Bits/8)
		}
		kcv, err := checkValue(plain)
		if err != nil {
			return fail("check value: %v", err)
		}
		if !bytes.Equal(kcv, k.CheckValue) {
			return fail("check value of the unwrapped key %x differs from the token's %x (%s)", kcv, k.CheckValue, k.CheckValueSource)
		}
		res.OK = true
		res.Detail = fmt.Sprintf("unwrapped %d-byte key has the token's check value %x", len(plain), kcv)
		return res
	}
	der, trailing, err := keywrap.TrimDER(plain)
	if err != nil {
		return fail("unwrapped key is not DER: %v", err)
	}
	for _, b := range trailing {
		if b != 0 {
			return fail("unwrapped key has %d trailing bytes that are not zero", len(trailing))
		}
	}
	res.TrailingZeros = len(trailing)
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return fail("unwrapped key is not PKCS#8: %v", err)
	}
	type publicKey interface{ Equal(crypto.PublicKey) bool }
	signer, ok := priv.(interface{ Public() crypto.PublicKey })
	if !ok {
		return fail("unwrapped key of type %T has no public key", priv)
	}
	pub, ok := signer.Public().(publicKey)
	if !ok || !pub.Equal(k.Public) {
		return fail("public key of the unwrapped key differs from the token's")
	}
	res.OK = true
	res.Detail = fmt.Sprintf("unwrapped PKCS#8 (%d bytes + %d zero bytes) has the token's public key", len(der), len(trailing))
	return res
}

// selfTestWrap generates a session target key, wraps it and destroys it.
func (t *Token) selfTestWrap(ctx context.Context, kek *rsa.PublicKey, spec KeySpec) (*Key, *Wrapped, error) {
	op := "self-test " + spec.String()
	if err := t.lock(ctx, op); err != nil {
		return nil, nil, err
	}
	defer t.mu.Unlock()
	id := make([]byte, idBytes)
	if _, err := rand.Read(id); err != nil {
		return nil, nil, errorf(op, ErrModule, "random id: %w", err)
	}
	label := "byok-selftest-" + hex.EncodeToString(id[:4])
	priv, pub, err := t.generateLocked(op, spec, label, id, false, false)
	if err != nil {
		return nil, nil, err
	}
	defer t.destroyLocked(priv, pub)
	k, err := t.loadKeyLocked(op, priv, classOf(spec), true)
	if err != nil {
		return nil, nil, err
	}
	w, err := t.wrapLocked(ctx, op, k, kek, nil)
	if err != nil {
		return nil, nil, err
	}
	return k, w, nil
}

// checkValue returns the AES key check value: the first 3 bytes of AES-ECB of a zero block.
func checkValue(key []byte) ([]byte, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, aes.BlockSize)
	b.Encrypt(out, out)
	return out[:3], nil
}
