//go:build cgo

package hsm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"testing"

	"github.com/ThalesGroup/crypto11"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
	"github.com/miekg/pkcs11"
	pkgerrors "github.com/pkg/errors"
)

const testPIN = "internal-pin-1234"

// openInternal creates a token and opens it, closing it at the end of the test.
func openInternal(t *testing.T, labels ...string) (string, *Token) {
	t.Helper()
	toks := make([]softhsmtest.Token, len(labels))
	for i, l := range labels {
		toks[i] = softhsmtest.Token{Label: l, PIN: testPIN, SOPIN: "internal-so-5678"}
	}
	mod := softhsmtest.Setup(t, toks...)
	tok, err := Open(context.Background(), Config{Module: mod, TokenLabel: labels[0], PIN: secret.New(testPIN)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tok.Close() })
	return mod, tok
}

func TestP11Err(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error
		code uint
	}{
		{"pin incorrect", pkcs11.Error(pkcs11.CKR_PIN_INCORRECT), ErrPINIncorrect, pkcs11.CKR_PIN_INCORRECT},
		{"pin len range", pkcs11.Error(pkcs11.CKR_PIN_LEN_RANGE), ErrPINIncorrect, pkcs11.CKR_PIN_LEN_RANGE},
		{"pin locked", pkcs11.Error(pkcs11.CKR_PIN_LOCKED), ErrPINLocked, pkcs11.CKR_PIN_LOCKED},
		{"token not present", pkcs11.Error(pkcs11.CKR_TOKEN_NOT_PRESENT), ErrTokenNotFound, pkcs11.CKR_TOKEN_NOT_PRESENT},
		{"mechanism invalid", pkcs11.Error(pkcs11.CKR_MECHANISM_INVALID), ErrMechanism, pkcs11.CKR_MECHANISM_INVALID},
		{"unextractable", pkcs11.Error(pkcs11.CKR_KEY_UNEXTRACTABLE), ErrUnsupportedKey, pkcs11.CKR_KEY_UNEXTRACTABLE},
		{"object handle invalid", pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID), ErrKeyNotFound, pkcs11.CKR_OBJECT_HANDLE_INVALID},
		{"general error", pkcs11.Error(pkcs11.CKR_GENERAL_ERROR), ErrModule, pkcs11.CKR_GENERAL_ERROR},
		// crypto11 wraps codes with github.com/pkg/errors.
		{"crypto11 login", pkgerrors.WithMessagef(pkcs11.Error(pkcs11.CKR_PIN_INCORRECT), "failed to log into long term session"), ErrPINIncorrect, pkcs11.CKR_PIN_INCORRECT},
		{"crypto11 without code", errors.New("could not find PKCS#11 token"), ErrModule, 0},
		{"canceled", fmt.Errorf("step: %w", context.Canceled), errCanceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p11Err("op", tt.err)
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, tt.want) || e.Code != tt.code {
				t.Fatalf("p11Err(%v) = %v, want class %v code 0x%X", tt.err, err, tt.want, tt.code)
			}
			if !errors.As(err, new(*Error)) {
				t.Errorf("%v is not an *Error", err)
			}
			if again := p11Err("outer", err); again != err {
				t.Errorf("p11Err of an *Error = %v, want it unchanged", again)
			}
		})
	}
	if p11Err("op", nil) != nil {
		t.Error("p11Err(nil) != nil")
	}
}

func TestWrapKeyErr(t *testing.T) {
	tests := []struct {
		code    uint
		trusted bool
		want    error
	}{
		{pkcs11.CKR_KEY_NOT_WRAPPABLE, true, ErrNotTrusted},
		{pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED, true, ErrNotTrusted},
		{pkcs11.CKR_KEY_NOT_WRAPPABLE, false, ErrUnsupportedKey},
		{pkcs11.CKR_KEY_UNEXTRACTABLE, true, ErrUnsupportedKey},
		{pkcs11.CKR_MECHANISM_INVALID, true, ErrMechanism},
	}
	for _, tt := range tests {
		err := wrapKeyErr("wrap", pkcs11.Error(tt.code), tt.trusted)
		if !errors.Is(err, tt.want) {
			t.Errorf("wrapKeyErr(%s, wrapWithTrusted %t) = %v, want %v", ReturnValueName(tt.code), tt.trusted, err, tt.want)
		}
	}
}

// TestOneShotPathOnSoftHSM forces the one-shot path on SoftHSM, which lacks
// CKM_RSA_AES_KEY_WRAP: the token refuses the mechanism, the error says so, and the KEK
// object is destroyed anyway.
func TestOneShotPathOnSoftHSM(t *testing.T) {
	_, tok := openInternal(t, "one-shot")
	ctx := context.Background()
	k, err := tok.GenerateTarget(ctx, RSA2048, "one-shot-key", TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok.mu.Lock()
	tok.method = &WrapMethod{Path: PathOneShot, KeyWrapMechanism: ckmRSAAESKeyWrap, Mechanisms: []string{MechanismName(ckmRSAAESKeyWrap)}}
	tok.mu.Unlock()
	kek, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tok.Wrap(ctx, k, &kek.PublicKey)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrMechanism) || e.Code != pkcs11.CKR_MECHANISM_INVALID {
		t.Fatalf("one-shot Wrap on SoftHSM = %v, want ErrMechanism with CKR_MECHANISM_INVALID", err)
	}
	tok.mu.Lock()
	defer tok.mu.Unlock()
	hs, err := tok.findLocked([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)})
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 0 {
		t.Errorf("%d session objects after the failed one-shot wrap, want 0", len(hs))
	}
}

// TestComputedCheckValue checks that the check value the token computes with C_Encrypt
// (used when a token sets no CKA_CHECK_VALUE) equals SoftHSM's CKA_CHECK_VALUE.
func TestComputedCheckValue(t *testing.T) {
	_, tok := openInternal(t, "kcv")
	ctx := context.Background()
	for _, spec := range []KeySpec{AES128, AES192, AES256} {
		k, err := tok.GenerateTarget(ctx, spec, "kcv-"+spec.String(), TargetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tok.mu.Lock()
		got, err := tok.computeKCVLocked(pkcs11.ObjectHandle(k.handle))
		tok.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if k.CheckValueSource != CheckValueAttribute || len(k.CheckValue) != 3 || !bytes.Equal(got, k.CheckValue) {
			t.Errorf("%s: computed check value %x, CKA_CHECK_VALUE %x (%s)", spec, got, k.CheckValue, k.CheckValueSource)
		}
	}
}

// TestKEKTemplate checks that the KEK template leaves out CKA_MODULUS_BITS, which SoftHSM
// refuses in C_CreateObject.
func TestKEKTemplate(t *testing.T) {
	_, tok := openInternal(t, "kek-template")
	kek, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, trusted := range []bool{false, true} {
		for _, a := range kekTemplate(&kek.PublicKey, trusted) {
			if a.Type == pkcs11.CKA_MODULUS_BITS {
				t.Errorf("kekTemplate(trusted %t) carries CKA_MODULUS_BITS", trusted)
			}
		}
	}
	tok.mu.Lock()
	defer tok.mu.Unlock()
	h, err := tok.p.CreateObject(tok.sh, kekTemplate(&kek.PublicKey, false))
	if err != nil {
		t.Fatalf("CreateObject(kekTemplate) = %v", err)
	}
	tok.destroyLocked(h)
	withBits := append(kekTemplate(&kek.PublicKey, false), pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, 2048))
	if h, err := tok.p.CreateObject(tok.sh, withBits); err == nil {
		tok.destroyLocked(h)
		t.Error("SoftHSM accepted CKA_MODULUS_BITS in C_CreateObject: the field note is stale")
	}
	// Only the SO may set CKA_TRUSTED: the user's attempt is refused.
	if h, err := tok.p.CreateObject(tok.sh, kekTemplate(&kek.PublicKey, true)); err == nil {
		tok.destroyLocked(h)
		t.Error("SoftHSM let the user create a CKA_TRUSTED key")
	}
}

// TestConfigureFailure injects crypto11 failures through the configure seam: an error
// without a PKCS#11 code is a missing token when the label is absent (found by probing the
// slots), a module failure otherwise; probing must not finalize a module another Token uses.
func TestConfigureFailure(t *testing.T) {
	mod, held := openInternal(t, "held", "present")
	boom := errors.New("boom")
	configure = func(*crypto11.Config) (*crypto11.Context, error) { return nil, boom }
	t.Cleanup(func() { configure = crypto11.Configure })

	tests := []struct {
		label string
		want  error
	}{
		{"absent", ErrTokenNotFound},
		{"present", ErrModule},
	}
	for _, tt := range tests {
		_, err := Open(context.Background(), Config{Module: mod, TokenLabel: tt.label, PIN: secret.New(testPIN)})
		if !errors.Is(err, tt.want) || !errors.As(err, new(*Error)) {
			t.Errorf("Open(%q) with failing configure = %v, want %v", tt.label, err, tt.want)
		}
		if tt.want == ErrModule && !errors.Is(err, boom) {
			t.Errorf("Open(%q) = %v, want the cause in the chain", tt.label, err)
		}
	}
	// The held token still works: the probe did not finalize the module under it.
	if _, err := held.Info(context.Background()); err != nil {
		t.Errorf("Info after probes = %v", err)
	}
	if _, err := held.GenerateSigner(context.Background(), "after-probe", []byte{7}); err != nil {
		t.Errorf("GenerateSigner after probes = %v", err)
	}
	openMu.Lock()
	n := len(openTokens)
	openMu.Unlock()
	if n != 1 {
		t.Errorf("%d tokens registered as open, want 1", n)
	}
}
