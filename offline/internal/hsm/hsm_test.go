//go:build cgo

package hsm_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/shared/softhsmtest"
	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
	"github.com/miekg/pkcs11"
)

// keks caches software KEKs by size: RSA-4096 generation is slow.
var keks sync.Map

func kek(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	if k, ok := keks.Load(bits); ok {
		return k.(*rsa.PrivateKey)
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	keks.Store(bits, k)
	return k
}

// assertHSMError checks that err is an *hsm.Error of class want (or with want as its cause),
// and that it does not leak any test PIN.
func assertHSMError(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if !errors.As(err, new(*hsm.Error)) {
		t.Errorf("err = %#v, want an *hsm.Error", err)
	}
	for _, pin := range []string{userPIN, soPIN, otherPIN, "wrong-pin-0000"} {
		if strings.Contains(err.Error(), pin) {
			t.Errorf("error %q contains a PIN", err)
		}
	}
}

func TestOpenWrongPIN(t *testing.T) {
	mod := setup(t, "pin-token")
	ctx := context.Background()
	_, err := hsm.Open(ctx, hsm.Config{Module: mod, TokenLabel: "pin-token", PIN: secret.New("wrong-pin-0000"), Logger: logger(t)})
	assertHSMError(t, err, hsm.ErrPINIncorrect)
	// The failed login left the module usable: the right PIN opens the token.
	tok := open(t, mod, "pin-token", userPIN)
	if tok.Label() != "pin-token" || tok.Serial() == "" {
		t.Errorf("Label, Serial = %q, %q", tok.Label(), tok.Serial())
	}
}

func TestOpenErrors(t *testing.T) {
	mod := setup(t, "present")
	tests := []struct {
		name string
		cfg  hsm.Config
		want error
	}{
		{"missing label", hsm.Config{Module: mod, TokenLabel: "absent", PIN: secret.New(userPIN)}, hsm.ErrTokenNotFound},
		{"wrong serial", hsm.Config{Module: mod, TokenLabel: "present", TokenSerial: "0000000000000000", PIN: secret.New(userPIN)}, hsm.ErrTokenNotFound},
		{"no module file", hsm.Config{Module: mod + ".missing", TokenLabel: "present", PIN: secret.New(userPIN)}, hsm.ErrModule},
		{"module required", hsm.Config{TokenLabel: "present", PIN: secret.New(userPIN)}, hsm.ErrInvalid},
		{"label required", hsm.Config{Module: mod, PIN: secret.New(userPIN)}, hsm.ErrInvalid},
		{"pin required", hsm.Config{Module: mod, TokenLabel: "present"}, hsm.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := hsm.Open(context.Background(), tt.cfg)
			if err == nil {
				tok.Close()
				t.Fatalf("Open = nil error, want %v", tt.want)
			}
			assertHSMError(t, err, tt.want)
		})
	}
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := hsm.Open(ctx, hsm.Config{Module: mod, TokenLabel: "present", PIN: secret.New(userPIN)})
		if !errors.Is(err, context.Canceled) || !errors.As(err, new(*hsm.Error)) {
			t.Errorf("Open(canceled) = %v, want an *hsm.Error with context.Canceled", err)
		}
	})
}

func TestOpenBySerial(t *testing.T) {
	mod := setup(t, "serial-token")
	tok := open(t, mod, "serial-token", userPIN)
	serial := tok.Serial()
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	tok2, err := hsm.Open(context.Background(), hsm.Config{Module: mod, TokenLabel: "serial-token", TokenSerial: serial, PIN: secret.New(userPIN)})
	if err != nil {
		t.Fatalf("Open by serial = %v", err)
	}
	defer tok2.Close()
	if tok2.Serial() != serial {
		t.Errorf("Serial() = %q, want %q", tok2.Serial(), serial)
	}
}

// TestOpenAmbiguousLabel: two tokens share a label; Open refuses the label alone and opens
// each by serial.
func TestOpenAmbiguousLabel(t *testing.T) {
	mod := setup(t, "twin", "twin")
	_, err := hsm.Open(context.Background(), hsm.Config{Module: mod, TokenLabel: "twin", PIN: secret.New(userPIN)})
	assertHSMError(t, err, hsm.ErrAmbiguous)

	serials := tokenSerials(t, mod, "twin")
	if len(serials) != 2 {
		t.Fatalf("%d tokens labelled twin, want 2", len(serials))
	}
	for _, serial := range serials {
		tok, err := hsm.Open(context.Background(), hsm.Config{Module: mod, TokenLabel: "twin", TokenSerial: serial, PIN: secret.New(userPIN)})
		if err != nil {
			t.Fatalf("Open(serial %s) = %v", serial, err)
		}
		got := tok.Serial()
		if err := tok.Close(); err != nil {
			t.Fatal(err)
		}
		if got != serial {
			t.Errorf("Open(serial %s) opened serial %s", serial, got)
		}
	}
}

// tokenSerials lists the serials of the tokens labelled label. Nothing else may have the
// module open: it initialises and finalizes the module itself.
func tokenSerials(t *testing.T, mod, label string) []string {
	t.Helper()
	p := pkcs11.New(mod)
	if p == nil {
		t.Fatal("pkcs11.New failed")
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer p.Finalize()
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err == nil && ti.Label == label {
			out = append(out, ti.SerialNumber)
		}
	}
	return out
}

func TestOpenSameTokenTwiceRefused(t *testing.T) {
	mod := setup(t, "once")
	open(t, mod, "once", userPIN)
	// PKCS#11 login is per process: a second Open would "log in" with any PIN.
	_, err := hsm.Open(context.Background(), hsm.Config{Module: mod, TokenLabel: "once", PIN: secret.New("wrong-pin-0000")})
	assertHSMError(t, err, hsm.ErrInvalid)
}

func TestTwoTokensDifferentPINs(t *testing.T) {
	mod := softhsmSetup(t)
	ctx := context.Background()
	a := open(t, mod, "custodian-a", userPIN)
	b := open(t, mod, "custodian-b", otherPIN)

	sa, err := a.GenerateSigner(ctx, "approval-a", []byte{0xa1})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.GenerateSigner(ctx, "approval-b", []byte{0xb1})
	if err != nil {
		t.Fatal(err)
	}
	// Each token sees only its own keys.
	if _, err := a.FindSigner(ctx, "approval-b"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Errorf("token a: FindSigner(approval-b) = %v, want ErrKeyNotFound", err)
	}
	if _, err := b.FindSigner(ctx, "approval-a"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Errorf("token b: FindSigner(approval-a) = %v, want ErrKeyNotFound", err)
	}
	verifySigns(t, sa)
	verifySigns(t, sb)

	// Closing one token leaves the other working; the closed one opens again.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	verifySigns(t, sb)
	a2 := open(t, mod, "custodian-a", userPIN)
	sa2, err := a2.FindSigner(ctx, "approval-a")
	if err != nil {
		t.Fatal(err)
	}
	if !sa2.Public().(*ecdsa.PublicKey).Equal(sa.Public()) {
		t.Error("reopened token: signing key has another public key")
	}
	verifySigns(t, sa2)
}

// softhsmSetup makes two custodian tokens with different PINs.
func softhsmSetup(t *testing.T) string {
	t.Helper()
	return softhsmtest.Setup(t,
		softhsmtest.Token{Label: "custodian-a", PIN: userPIN, SOPIN: soPIN},
		softhsmtest.Token{Label: "custodian-b", PIN: otherPIN, SOPIN: soPIN},
	)
}

func TestCloseIdempotentAndUseAfterClose(t *testing.T) {
	mod := setup(t, "closing")
	tok, err := hsm.Open(context.Background(), hsm.Config{Module: mod, TokenLabel: "closing", PIN: secret.New(userPIN)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := tok.Close(); err != nil {
			t.Fatalf("Close #%d = %v", i+1, err)
		}
	}
	_, err = tok.Info(context.Background())
	assertHSMError(t, err, hsm.ErrClosed)
	_, err = tok.GenerateTarget(context.Background(), hsm.AES256, "after-close", hsm.TargetOptions{})
	assertHSMError(t, err, hsm.ErrClosed)
}

func TestInfo(t *testing.T) {
	mod := setup(t, "info-token")
	tok := open(t, mod, "info-token", userPIN)
	info, err := tok.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want string
	}{
		{"library manufacturer", info.Library.Manufacturer, "SoftHSM"},
		{"library path", info.Library.Path, mod},
		{"cryptoki version", info.Library.CryptokiVersion.String(), "2.40"},
		{"token label", info.Token.Label, "info-token"},
		{"token manufacturer", info.Token.Manufacturer, "SoftHSM project"},
		{"token model", info.Token.Model, "SoftHSM v2"},
		{"token serial", info.Token.Serial, tok.Serial()},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if info.Library.Version.Major != 2 || info.Token.FirmwareVersion.Major != 2 {
		t.Errorf("library version %s, firmware %s: want SoftHSM 2.x", info.Library.Version, info.Token.FirmwareVersion)
	}
	for _, want := range []string{"CKF_TOKEN_INITIALIZED", "CKF_LOGIN_REQUIRED", "CKF_USER_PIN_INITIALIZED", "CKF_RNG"} {
		if !contains(info.Token.Flags, want) {
			t.Errorf("token flags %v lack %s", info.Token.Flags, want)
		}
	}
	if !contains(info.Slot.Flags, "CKF_TOKEN_PRESENT") {
		t.Errorf("slot flags %v lack CKF_TOKEN_PRESENT", info.Slot.Flags)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestMechanisms(t *testing.T) {
	mod := setup(t, "mech-token")
	tok := open(t, mod, "mech-token", userPIN)
	mechs, err := tok.Mechanisms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byType := map[uint]hsm.Mechanism{}
	for _, m := range mechs {
		byType[m.Type] = m
	}
	for _, want := range []struct {
		typ  uint
		name string
		flag string
	}{
		{0x210A, "CKM_AES_KEY_WRAP_PAD", "CKF_WRAP"},
		{0x0009, "CKM_RSA_PKCS_OAEP", "CKF_WRAP"},
		{0x1080, "CKM_AES_KEY_GEN", "CKF_GENERATE"},
		{0x1040, "CKM_EC_KEY_PAIR_GEN", "CKF_GENERATE_KEY_PAIR"},
	} {
		m, ok := byType[want.typ]
		if !ok {
			t.Errorf("mechanism 0x%X missing", want.typ)
			continue
		}
		if m.Name != want.name || !contains(m.Flags, want.flag) {
			t.Errorf("mechanism 0x%X = %s %v, want %s with %s", want.typ, m.Name, m.Flags, want.name, want.flag)
		}
	}
	// SoftHSM 2.6.1 has no one-shot CKM_RSA_AES_KEY_WRAP.
	if _, ok := byType[0x1054]; ok {
		t.Error("SoftHSM lists CKM_RSA_AES_KEY_WRAP: the two-step expectations below are stale")
	}
	m, err := tok.WrapMethod(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.Path != hsm.PathTwoStep || m.KeyWrapMechanism != 0x210A {
		t.Errorf("WrapMethod = %v, want two-step with 0x210A", m)
	}
}

func TestCheck(t *testing.T) {
	mod := setup(t, "check-token")
	tok := open(t, mod, "check-token", userPIN)
	r, err := tok.Check(context.Background())
	if err != nil {
		t.Fatalf("Check = %v", err)
	}
	if !r.OK {
		t.Error("report OK = false")
	}
	if r.Wrap == nil || r.Wrap.Path != hsm.PathTwoStep || r.Wrap.KeyWrapMechanism != 0x210A {
		t.Fatalf("report wrap = %v, want two-step with 0x210A", r.Wrap)
	}
	wantMechs := []string{"CKM_AES_KEY_GEN", "CKM_AES_KEY_WRAP_PAD", "CKM_RSA_PKCS_OAEP"}
	if strings.Join(r.Wrap.Mechanisms, ",") != strings.Join(wantMechs, ",") {
		t.Errorf("wrap mechanisms = %v, want %v", r.Wrap.Mechanisms, wantMechs)
	}
	if !r.ZeroPadding || !r.ZeroPaddingKnown {
		t.Errorf("ZeroPadding, ZeroPaddingKnown = %t, %t, want true, true on SoftHSM 2.6", r.ZeroPadding, r.ZeroPaddingKnown)
	}
	if !strings.Contains(r.ZeroPaddingNote, "zero") || !strings.Contains(r.ZeroPaddingNote, "SoftHSM") {
		t.Errorf("ZeroPaddingNote = %q, want a sentence naming SoftHSM and the zero bytes", r.ZeroPaddingNote)
	}
	if len(r.SelfTest) != 3 {
		t.Fatalf("%d self-test results, want 3", len(r.SelfTest))
	}
	observed := false
	for _, st := range r.SelfTest {
		if !st.OK {
			t.Errorf("self-test %s failed: %s", st.Spec, st.Detail)
		}
		if st.WrappedBytes <= 256+16 {
			t.Errorf("self-test %s: %d wrapped bytes, want more than the 256-byte rsa part + 16", st.Spec, st.WrappedBytes)
		}
		if st.Spec.Type == hsm.AES && st.TrailingZeros != 0 {
			t.Errorf("self-test %s: %d trailing zeros for an AES key", st.Spec, st.TrailingZeros)
		}
		if st.TrailingZeros < 0 || st.TrailingZeros > 7 {
			t.Errorf("self-test %s: %d trailing zeros, want 0..7", st.Spec, st.TrailingZeros)
		}
		observed = observed || st.TrailingZeros > 0
	}
	if observed != r.ZeroPaddingObserved {
		t.Errorf("ZeroPaddingObserved = %t, self-tests say %t", r.ZeroPaddingObserved, observed)
	}
	// The throwaway keys are gone: no object is left on the token.
	if n := len(rawSession(t, mod, "check-token").find(t)); n != 0 {
		t.Errorf("%d objects left on the token after Check, want 0", n)
	}
}

// TestGenerateAndWrapEveryKeyType generates every target spec, wraps it, unwraps the result
// with the OpenSSL command line and with keywrap.UnwrapRSAAES, and checks it is the key the
// token holds.
func TestGenerateAndWrapEveryKeyType(t *testing.T) {
	requireOpenSSL(t)
	mod := setup(t, "targets")
	tok := open(t, mod, "targets", userPIN)
	ctx := context.Background()
	tests := []struct {
		spec    hsm.KeySpec
		kekBits int
		genMech string
	}{
		{hsm.RSA2048, 2048, "CKM_RSA_PKCS_KEY_PAIR_GEN"},
		{hsm.RSA3072, 3072, "CKM_RSA_PKCS_KEY_PAIR_GEN"},
		{hsm.RSA4096, 4096, "CKM_RSA_PKCS_KEY_PAIR_GEN"},
		{hsm.ECP256, 2048, "CKM_EC_KEY_PAIR_GEN"},
		{hsm.ECP384, 3072, "CKM_EC_KEY_PAIR_GEN"},
		{hsm.ECP521, 4096, "CKM_EC_KEY_PAIR_GEN"},
		{hsm.AES128, 2048, "CKM_AES_KEY_GEN"},
		{hsm.AES192, 3072, "CKM_AES_KEY_GEN"},
		{hsm.AES256, 4096, "CKM_AES_KEY_GEN"},
	}
	if len(tests) != len(hsm.KeySpecs()) {
		t.Fatalf("test covers %d specs, the package has %d", len(tests), len(hsm.KeySpecs()))
	}
	for _, tt := range tests {
		t.Run(tt.spec.String(), func(t *testing.T) {
			label := "target-" + tt.spec.String()
			k, err := tok.GenerateTarget(ctx, tt.spec, label, hsm.TargetOptions{})
			if err != nil {
				t.Fatalf("GenerateTarget = %v", err)
			}
			if k.Spec != tt.spec || k.Label != label || len(k.ID) != 16 {
				t.Errorf("key = %s %q id %x, want %s %q with a 16-byte id", k.Spec, k.Label, k.ID, tt.spec, label)
			}
			wantAttrs := map[string]string{
				"CKA_TOKEN":             "true",
				"CKA_PRIVATE":           "true",
				"CKA_SENSITIVE":         "true",
				"CKA_ALWAYS_SENSITIVE":  "true",
				"CKA_EXTRACTABLE":       "true",
				"CKA_NEVER_EXTRACTABLE": "false",
				"CKA_LOCAL":             "true",
				"CKA_WRAP_WITH_TRUSTED": "false",
				"CKA_KEY_GEN_MECHANISM": tt.genMech,
				"CKA_LABEL":             label,
				"CKA_DECRYPT":           "false",
				"CKA_UNWRAP":            "false",
				"CKA_DERIVE":            "false",
			}
			for name, want := range wantAttrs {
				if got := k.Attributes[name]; got != want {
					t.Errorf("Attributes[%s] = %q, want %q", name, got, want)
				}
			}
			if _, ok := k.Attributes["CKA_MODIFIABLE"]; !ok {
				t.Error("Attributes lack CKA_MODIFIABLE")
			}

			kek := kek(t, tt.kekBits)
			w, err := tok.Wrap(ctx, k, &kek.PublicKey)
			if err != nil {
				t.Fatalf("Wrap = %v", err)
			}
			if w.RSAPartLen != kek.Size() || !w.EphemeralCreated || !w.EphemeralDestroyed || !w.KEKDestroyed || w.Trusted {
				t.Errorf("provenance = %+v", w)
			}
			if w.ZeroPaddingExpected != (tt.spec.Type != hsm.AES) {
				t.Errorf("ZeroPaddingExpected = %t for %s on SoftHSM 2.6", w.ZeroPaddingExpected, tt.spec)
			}

			fromOpenSSL, spki := opensslUnwrap(t, kek, w.Ciphertext, tt.spec.Type != hsm.AES)
			fromGo, err := keywrap.UnwrapRSAAES(kek, w.Ciphertext)
			if err != nil {
				t.Fatalf("keywrap.UnwrapRSAAES = %v", err)
			}
			if !bytes.Equal(fromGo, fromOpenSSL) {
				t.Fatal("keywrap.UnwrapRSAAES and OpenSSL recover different bytes")
			}

			if tt.spec.Type == hsm.AES {
				if len(fromOpenSSL) != tt.spec.Bits/8 {
					t.Fatalf("recovered %d bytes, want %d", len(fromOpenSSL), tt.spec.Bits/8)
				}
				if got := kcv(t, fromOpenSSL); !bytes.Equal(got, k.CheckValue) {
					t.Errorf("check value of the recovered key = %x, token says %x (%s)", got, k.CheckValue, k.CheckValueSource)
				}
				if k.CheckValueSource != hsm.CheckValueAttribute {
					t.Errorf("CheckValueSource = %q, want %q (SoftHSM sets CKA_CHECK_VALUE)", k.CheckValueSource, hsm.CheckValueAttribute)
				}
				return
			}
			want, err := x509.MarshalPKIXPublicKey(k.Public)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(spki, want) {
				t.Error("openssl pkey -pubout of the recovered key differs from the token's public key")
			}
			der, trailing, err := keywrap.TrimDER(fromGo)
			if err != nil {
				t.Fatal(err)
			}
			if len(trailing) > 7 || (len(der)+len(trailing))%8 != 0 || bytes.Count(trailing, []byte{0}) != len(trailing) {
				t.Errorf("PKCS#8 of %d bytes + %d trailing bytes %x: want zero padding to a multiple of 8", len(der), len(trailing), trailing)
			}
			priv, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				t.Fatal(err)
			}
			if !priv.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public) {
				t.Error("the recovered private key does not match the token's public key")
			}
		})
	}
}

// kcv is the AES key check value: AES-ECB of a zero block, first 3 bytes.
func kcv(t *testing.T, key []byte) []byte {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 16)
	b.Encrypt(out, out)
	return out[:3]
}

func TestGenerateRefusesExistingLabel(t *testing.T) {
	mod := setup(t, "exists")
	tok := open(t, mod, "exists", userPIN)
	ctx := context.Background()
	if _, err := tok.GenerateTarget(ctx, hsm.ECP256, "taken", hsm.TargetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.GenerateSigner(ctx, "station", []byte("station-1")); err != nil {
		t.Fatal(err)
	}
	r := rawSession(t, mod, "exists")
	before := len(r.find(t))
	tests := []struct {
		name string
		gen  func() error
	}{
		{"target over target", func() error {
			_, err := tok.GenerateTarget(ctx, hsm.AES256, "taken", hsm.TargetOptions{})
			return err
		}},
		{"target over signer", func() error {
			_, err := tok.GenerateTarget(ctx, hsm.RSA2048, "station", hsm.TargetOptions{})
			return err
		}},
		{"signer over target", func() error {
			_, err := tok.GenerateSigner(ctx, "taken", []byte("other-id"))
			return err
		}},
		{"signer over signer id", func() error {
			_, err := tok.GenerateSigner(ctx, "new-label", []byte("station-1"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.gen()
			assertHSMError(t, err, hsm.ErrExists)
		})
	}
	if after := len(r.find(t)); after != before {
		t.Errorf("%d objects after refused generations, want %d", after, before)
	}
}

func TestFindTarget(t *testing.T) {
	mod := setup(t, "finder")
	tok := open(t, mod, "finder", userPIN)
	ctx := context.Background()
	ec, err := tok.GenerateTarget(ctx, hsm.ECP384, "find-ec", hsm.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	aesKey, err := tok.GenerateTarget(ctx, hsm.AES192, "find-aes", hsm.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ref     hsm.KeyRef
		want    *hsm.Key
		wantErr error
	}{
		{"ec by label", hsm.KeyRef{Label: "find-ec"}, ec, nil},
		{"ec by id", hsm.KeyRef{ID: ec.ID}, ec, nil},
		{"aes by label and id", hsm.KeyRef{Label: "find-aes", ID: aesKey.ID}, aesKey, nil},
		{"aes by id", hsm.KeyRef{ID: aesKey.ID}, aesKey, nil},
		{"label and id of different keys", hsm.KeyRef{Label: "find-ec", ID: aesKey.ID}, nil, hsm.ErrKeyNotFound},
		{"unknown label", hsm.KeyRef{Label: "nope"}, nil, hsm.ErrKeyNotFound},
		{"unknown id", hsm.KeyRef{ID: []byte{1, 2, 3}}, nil, hsm.ErrKeyNotFound},
		{"empty ref", hsm.KeyRef{}, nil, hsm.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := tok.FindTarget(ctx, tt.ref)
			if tt.wantErr != nil {
				assertHSMError(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("FindTarget(%s) = %v", tt.ref, err)
			}
			if k.Label != tt.want.Label || !bytes.Equal(k.ID, tt.want.ID) || k.Spec != tt.want.Spec ||
				!bytes.Equal(k.CheckValue, tt.want.CheckValue) {
				t.Errorf("FindTarget(%s) = %s %q %x kcv %x, want %s %q %x kcv %x", tt.ref,
					k.Spec, k.Label, k.ID, k.CheckValue, tt.want.Spec, tt.want.Label, tt.want.ID, tt.want.CheckValue)
			}
			if tt.want.Public != nil && !k.Public.(*ecdsa.PublicKey).Equal(tt.want.Public) {
				t.Error("found key has another public key")
			}
		})
	}
	// A found key wraps like a generated one.
	k, err := tok.FindTarget(ctx, hsm.KeyRef{Label: "find-ec"})
	if err != nil {
		t.Fatal(err)
	}
	kek := kek(t, 2048)
	w, err := tok.Wrap(ctx, k, &kek.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := keywrap.UnwrapRSAAES(kek, w.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	der, _, err := keywrap.TrimDER(plain)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if !priv.(*ecdsa.PrivateKey).PublicKey.Equal(ec.Public) {
		t.Error("wrapped found key is not the generated key")
	}
}

func TestWrapDestroysSessionObjects(t *testing.T) {
	mod := setup(t, "cleanup")
	tok := open(t, mod, "cleanup", userPIN)
	ctx := context.Background()
	r := rawSession(t, mod, "cleanup")
	k, err := tok.GenerateTarget(ctx, hsm.RSA2048, "to-wrap", hsm.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := tok.GenerateTarget(ctx, hsm.AES256, "trusted-only", hsm.TargetOptions{WrapWithTrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	kek := kek(t, 3072)

	during := -1
	*hsm.TestOnlyBeforeDestroy = func() { during = r.sessionObjects(t) }
	t.Cleanup(func() { *hsm.TestOnlyBeforeDestroy = nil })

	tests := []struct {
		name    string
		key     *hsm.Key
		wantErr error
	}{
		{"success", k, nil},
		{"refused by the token", trusted, hsm.ErrNotTrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := r.sessionObjects(t); n != 0 {
				t.Fatalf("%d session objects before Wrap, want 0", n)
			}
			during = -1
			w, err := tok.Wrap(ctx, tt.key, &kek.PublicKey)
			if tt.wantErr != nil {
				assertHSMError(t, err, tt.wantErr)
			} else if err != nil {
				t.Fatal(err)
			} else if !w.EphemeralDestroyed || !w.KEKDestroyed {
				t.Errorf("EphemeralDestroyed, KEKDestroyed = %t, %t", w.EphemeralDestroyed, w.KEKDestroyed)
			}
			// The KEK and the ephemeral AES key existed as session objects during the wrap...
			if during != 2 {
				t.Errorf("%d session objects during Wrap, want 2 (kek and ephemeral aes key)", during)
			}
			// ...and are gone afterwards, on success and on error.
			if n := r.sessionObjects(t); n != 0 {
				t.Errorf("%d session objects after Wrap, want 0", n)
			}
		})
	}
}

// TestKEKObjectTemplate checks the KEK session object Wrap imports: a session public key
// with CKA_WRAP and the KEK's modulus.
func TestKEKObjectTemplate(t *testing.T) {
	mod := setup(t, "kek-object")
	tok := open(t, mod, "kek-object", userPIN)
	ctx := context.Background()
	r := rawSession(t, mod, "kek-object")
	k, err := tok.GenerateTarget(ctx, hsm.AES128, "kek-object-target", hsm.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kek := kek(t, 2048)
	var attrs []*pkcs11.Attribute
	*hsm.TestOnlyBeforeDestroy = func() {
		hs := r.find(t, pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false))
		if len(hs) != 1 {
			t.Errorf("%d session public keys during Wrap, want 1", len(hs))
			return
		}
		var err error
		attrs, err = r.p.GetAttributeValue(r.sh, hs[0], []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, nil),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
		})
		if err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { *hsm.TestOnlyBeforeDestroy = nil })
	if _, err := tok.Wrap(ctx, k, &kek.PublicKey); err != nil {
		t.Fatal(err)
	}
	if len(attrs) != 2 {
		t.Fatal("kek object attributes not read")
	}
	if !bytes.Equal(attrs[0].Value, []byte{1}) {
		t.Errorf("kek CKA_WRAP = %x, want 01", attrs[0].Value)
	}
	if !bytes.Equal(attrs[1].Value, kek.N.Bytes()) {
		t.Error("kek CKA_MODULUS differs from the KEK")
	}
}

func TestWrapArguments(t *testing.T) {
	mod := setup(t, "wrap-args", "wrap-args-other")
	tok := open(t, mod, "wrap-args", userPIN)
	other := open(t, mod, "wrap-args-other", userPIN)
	ctx := context.Background()
	k, err := tok.GenerateTarget(ctx, hsm.AES128, "wrap-args-key", hsm.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.GenerateTarget(ctx, hsm.AES128, "foreign-key", hsm.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		key     *hsm.Key
		kek     *rsa.PublicKey
		wantErr error
	}{
		{"nil key", ctx, nil, &kek(t, 2048).PublicKey, hsm.ErrInvalid},
		{"nil kek", ctx, k, nil, hsm.ErrInvalid},
		{"1024-bit kek", ctx, k, &small.PublicKey, hsm.ErrInvalid},
		{"canceled", canceled, k, &kek(t, 2048).PublicKey, context.Canceled},
		{"key of another token", ctx, foreign, &kek(t, 2048).PublicKey, hsm.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tok.Wrap(tt.ctx, tt.key, tt.kek)
			assertHSMError(t, err, tt.wantErr)
		})
	}
}

func TestSigningKeys(t *testing.T) {
	mod := setup(t, "station")
	tok := open(t, mod, "station", userPIN)
	ctx := context.Background()
	s, err := tok.GenerateSigner(ctx, "station-key", []byte("station-key-id"))
	if err != nil {
		t.Fatal(err)
	}
	var _ crypto.Signer = s
	verifySigns(t, s)
	if !bytes.Equal(s.ID, []byte("station-key-id")) || s.Label != "station-key" {
		t.Errorf("signer label, id = %q, %q", s.Label, s.ID)
	}
	for name, want := range map[string]string{
		"CKA_EXTRACTABLE":       "false",
		"CKA_NEVER_EXTRACTABLE": "true",
		"CKA_SENSITIVE":         "true",
		"CKA_ALWAYS_SENSITIVE":  "true",
		"CKA_TOKEN":             "true",
		"CKA_PRIVATE":           "true",
		"CKA_LOCAL":             "true",
		"CKA_SIGN":              "true",
		"CKA_DERIVE":            "false",
		"CKA_ID":                "73746174696f6e2d6b65792d6964",
		"CKA_EC_PARAMS":         "P-256",
	} {
		if got := s.Attributes[name]; got != want {
			t.Errorf("Attributes[%s] = %q, want %q", name, got, want)
		}
	}

	found, err := tok.FindSigner(ctx, "station-key")
	if err != nil {
		t.Fatal(err)
	}
	if !found.Public().(*ecdsa.PublicKey).Equal(s.Public()) || !bytes.Equal(found.ID, s.ID) {
		t.Error("FindSigner returned another key")
	}
	verifySigns(t, found)

	// A target key is extractable: never acceptable as a station or custodian key.
	if _, err := tok.GenerateTarget(ctx, hsm.ECP256, "extractable-ec", hsm.TargetOptions{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		find    func() error
		wantErr error
	}{
		{"missing", func() error { _, err := tok.FindSigner(ctx, "nope"); return err }, hsm.ErrKeyNotFound},
		{"extractable", func() error { _, err := tok.FindSigner(ctx, "extractable-ec"); return err }, hsm.ErrUnsupportedKey},
		{"empty label", func() error { _, err := tok.FindSigner(ctx, ""); return err }, hsm.ErrInvalid},
		{"generate without id", func() error { _, err := tok.GenerateSigner(ctx, "no-id", nil); return err }, hsm.ErrInvalid},
		{"generate without label", func() error { _, err := tok.GenerateSigner(ctx, "", []byte{1}); return err }, hsm.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assertHSMError(t, tt.find(), tt.wantErr) })
	}
}

// verifySigns signs a digest with s and verifies it with ecdsa.VerifyASN1, and checks that a
// different digest does not verify.
func verifySigns(t *testing.T, s crypto.Signer) {
	t.Helper()
	digest := sha256.Sum256([]byte("bundle id"))
	sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign = %v", err)
	}
	pub := s.Public().(*ecdsa.PublicKey)
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		t.Fatal("ecdsa.VerifyASN1 rejects the token's signature")
	}
	other := sha256.Sum256([]byte("another bundle id"))
	if ecdsa.VerifyASN1(pub, other[:], sig) {
		t.Fatal("signature verifies for another digest")
	}
}

func TestWrapTrusted(t *testing.T) {
	mod := setup(t, "trusted")
	tok := open(t, mod, "trusted", userPIN)
	ctx := context.Background()
	r := rawSession(t, mod, "trusted")
	signer, err := tok.GenerateSigner(ctx, "station-key", []byte("station"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := tok.GenerateTarget(ctx, hsm.RSA2048, "plain-key", hsm.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kek := kek(t, 2048)

	for _, spec := range []hsm.KeySpec{hsm.RSA3072, hsm.ECP256, hsm.AES256} {
		t.Run(spec.String(), func(t *testing.T) {
			k, err := tok.GenerateTarget(ctx, spec, "trusted-"+spec.String(), hsm.TargetOptions{WrapWithTrusted: true})
			if err != nil {
				t.Fatal(err)
			}
			if !k.WrapWithTrusted || k.Attributes["CKA_WRAP_WITH_TRUSTED"] != "true" {
				t.Fatalf("WrapWithTrusted = %t, attribute %q", k.WrapWithTrusted, k.Attributes["CKA_WRAP_WITH_TRUSTED"])
			}

			// The token refuses a plain wrap: the ephemeral key is not trusted.
			_, err = tok.Wrap(ctx, k, &kek.PublicKey)
			assertHSMError(t, err, hsm.ErrNotTrusted)

			// A wrong SO PIN is refused, and the user is logged back in.
			_, err = tok.WrapTrusted(ctx, k, &kek.PublicKey, secret.New("wrong-pin-0000"))
			assertHSMError(t, err, hsm.ErrPINIncorrect)
			verifySigns(t, signer)

			// With the SO PIN the wrap succeeds and unwraps to the same key.
			w, err := tok.WrapTrusted(ctx, k, &kek.PublicKey, secret.New(soPIN))
			if err != nil {
				t.Fatalf("WrapTrusted = %v", err)
			}
			if !w.Trusted || !w.EphemeralCreated || !w.EphemeralDestroyed || !w.KEKDestroyed {
				t.Errorf("provenance = %+v", w)
			}
			got, err := keywrap.UnwrapRSAAES(kek, w.Ciphertext)
			if err != nil {
				t.Fatal(err)
			}
			if spec.Type == hsm.AES {
				if !bytes.Equal(kcv(t, got), k.CheckValue) {
					t.Error("unwrapped AES key has another check value")
				}
			} else {
				der, _, err := keywrap.TrimDER(got)
				if err != nil {
					t.Fatal(err)
				}
				priv, err := x509.ParsePKCS8PrivateKey(der)
				if err != nil {
					t.Fatal(err)
				}
				if !priv.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public) {
					t.Error("unwrapped key is not the token's key")
				}
			}
			if n := r.sessionObjects(t); n != 0 {
				t.Errorf("%d session objects after WrapTrusted, want 0", n)
			}

			// The logout invalidated handles: keys and signers found before still work.
			verifySigns(t, signer)
			if _, err := tok.Wrap(ctx, plain, &kek.PublicKey); err != nil {
				t.Errorf("Wrap of a key found before WrapTrusted = %v", err)
			}
			// And the trusted key still refuses a plain wrap.
			_, err = tok.Wrap(ctx, k, &kek.PublicKey)
			assertHSMError(t, err, hsm.ErrNotTrusted)
		})
	}
	t.Run("empty so pin", func(t *testing.T) {
		_, err := tok.WrapTrusted(ctx, plain, &kek.PublicKey, secret.Value{})
		assertHSMError(t, err, hsm.ErrInvalid)
	})
}

// TestWrapTrustedAfterCallerWipesPIN: the caller may wipe the PIN it passed to Open; the
// Token logs the user back in after WrapTrusted with its own copy.
func TestWrapTrustedAfterCallerWipesPIN(t *testing.T) {
	mod := setup(t, "wiped")
	pin := secret.New(userPIN)
	tok, err := hsm.Open(context.Background(), hsm.Config{Module: mod, TokenLabel: "wiped", PIN: pin, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tok.Close() })
	pin.Wipe()
	ctx := context.Background()
	signer, err := tok.GenerateSigner(ctx, "station-key", []byte("station"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := tok.GenerateTarget(ctx, hsm.ECP256, "guarded", hsm.TargetOptions{WrapWithTrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.WrapTrusted(ctx, k, &kek(t, 2048).PublicKey, secret.New(soPIN)); err != nil {
		t.Fatalf("WrapTrusted after the caller wiped the PIN = %v", err)
	}
	verifySigns(t, signer)
}
