package hsm

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// These tests need no PKCS#11 module.

func mech(typ, flags uint) Mechanism {
	return Mechanism{Type: typ, Name: MechanismName(typ), FlagBits: flags}
}

func TestChooseWrapMethod(t *testing.T) {
	oaep := mech(ckmRSAPKCSOAEP, ckfWrap|0x100)
	gen := mech(ckmAESKeyGen, ckfGenerate)
	pad := mech(ckmAESKeyWrapPad, ckfWrap|0x40000)
	kwp := mech(ckmAESKeyWrapKWP, ckfWrap)
	tests := []struct {
		name     string
		mechs    []Mechanism
		wantPath WrapPath
		wantKW   uint
		wantErr  error
	}{
		{"softhsm", []Mechanism{gen, pad, oaep}, PathTwoStep, ckmAESKeyWrapPad, nil},
		{"kwp preferred over pad", []Mechanism{gen, pad, kwp, oaep}, PathTwoStep, ckmAESKeyWrapKWP, nil},
		{"one-shot preferred", []Mechanism{gen, pad, oaep, mech(ckmRSAAESKeyWrap, ckfWrap|0x40000)}, PathOneShot, ckmRSAAESKeyWrap, nil},
		{"one-shot without CKF_WRAP ignored", []Mechanism{mech(ckmRSAAESKeyWrap, 0x100), gen, kwp, oaep}, PathTwoStep, ckmAESKeyWrapKWP, nil},
		{"one-shot alone", []Mechanism{mech(ckmRSAAESKeyWrap, ckfWrap)}, PathOneShot, ckmRSAAESKeyWrap, nil},
		{"kwp without CKF_WRAP", []Mechanism{gen, mech(ckmAESKeyWrapKWP, 0x100), oaep}, "", 0, ErrMechanism},
		{"no oaep", []Mechanism{gen, pad}, "", 0, ErrMechanism},
		{"oaep without CKF_WRAP", []Mechanism{gen, pad, mech(ckmRSAPKCSOAEP, 0x100)}, "", 0, ErrMechanism},
		{"no aes key gen", []Mechanism{pad, oaep}, "", 0, ErrMechanism},
		{"nothing", nil, "", 0, ErrMechanism},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ChooseWrapMethod(tt.mechs)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !errors.As(err, new(*Error)) {
					t.Fatalf("ChooseWrapMethod = %v, %v, want %v", m, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ChooseWrapMethod = %v", err)
			}
			if m.Path != tt.wantPath || m.KeyWrapMechanism != tt.wantKW {
				t.Errorf("ChooseWrapMethod = %s 0x%X, want %s 0x%X", m.Path, m.KeyWrapMechanism, tt.wantPath, tt.wantKW)
			}
			if m.Path == PathTwoStep && (len(m.Mechanisms) != 3 || m.Mechanisms[1] != MechanismName(tt.wantKW)) {
				t.Errorf("Mechanisms = %v", m.Mechanisms)
			}
		})
	}
}

func TestChooseWrapMethodNamesWhatIsMissing(t *testing.T) {
	_, err := ChooseWrapMethod([]Mechanism{mech(ckmAESKeyGen, ckfGenerate)})
	for _, want := range []string{"CKM_RSA_AES_KEY_WRAP", "0x210B", "0x210A", "CKM_RSA_PKCS_OAEP"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestMechanismName(t *testing.T) {
	tests := []struct {
		typ  uint
		want string
	}{
		{0x210B, "CKM_AES_KEY_WRAP_KWP"},
		{0x210A, "CKM_AES_KEY_WRAP_PAD"},
		{0x1054, "CKM_RSA_AES_KEY_WRAP"},
		{0x1055, "CKM_EC_EDWARDS_KEY_PAIR_GEN"},
		{0x1057, "CKM_EDDSA"},
		{0x1040, "CKM_EC_KEY_PAIR_GEN"},
		{0x0009, "CKM_RSA_PKCS_OAEP"},
		{0x80001234, "CKM_VENDOR_0x80001234"},
		{0x7fff, "CKM_0x00007FFF"},
	}
	for _, tt := range tests {
		if got := MechanismName(tt.typ); got != tt.want {
			t.Errorf("MechanismName(0x%X) = %q, want %q", tt.typ, got, tt.want)
		}
	}
}

func TestKeySpecs(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range KeySpecs() {
		name := s.String()
		if seen[name] {
			t.Errorf("duplicate spec name %s", name)
		}
		seen[name] = true
		got, err := ParseKeySpec(name)
		if err != nil || got != s {
			t.Errorf("ParseKeySpec(%q) = %v, %v, want %v", name, got, err, s)
		}
		if !s.Valid() {
			t.Errorf("%v.Valid() = false", s)
		}
	}
	tests := []struct {
		in      string
		want    KeySpec
		wantErr bool
	}{
		{"RSA-3072", RSA3072, false},
		{"ec-p-521", ECP521, false},
		{" aes-128 ", AES128, false},
		{"rsa-1024", KeySpec{}, true},
		{"ec-p256k", KeySpec{}, true},
		{"ed25519", KeySpec{}, true},
		{"", KeySpec{}, true},
	}
	for _, tt := range tests {
		got, err := ParseKeySpec(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseKeySpec(%q) = %v, %v, want ErrInvalid", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseKeySpec(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	if (KeySpec{Type: RSA, Bits: 1024}).Valid() {
		t.Error("rsa-1024 is valid")
	}
}

func TestPadsToEight(t *testing.T) {
	softhsm := func(lib, fw Version) Info {
		return Info{
			Library: LibraryInfo{Manufacturer: "SoftHSM", Version: lib},
			Token:   TokenInfo{Manufacturer: "SoftHSM project", FirmwareVersion: fw},
		}
	}
	tests := []struct {
		name string
		info Info
		want bool
	}{
		{"softhsm 2.6", softhsm(Version{2, 6}, Version{2, 6}), true},
		{"softhsm 2.5", softhsm(Version{2, 5}, Version{2, 5}), true},
		{"softhsm 2.7", softhsm(Version{2, 7}, Version{2, 7}), false},
		{"softhsm 3.0", softhsm(Version{3, 0}, Version{3, 0}), false},
		{"token only", Info{Token: TokenInfo{Manufacturer: "SoftHSM project", FirmwareVersion: Version{2, 6}}}, true},
		{"luna", Info{Library: LibraryInfo{Manufacturer: "SafeNet", Version: Version{2, 6}}, Token: TokenInfo{Manufacturer: "Safenet, Inc."}}, false},
		{"nothing known", Info{}, false},
	}
	for _, tt := range tests {
		if got := padsToEight(tt.info); got != tt.want {
			t.Errorf("%s: padsToEight = %t, want %t", tt.name, got, tt.want)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	kinds := []error{
		ErrTokenNotFound, ErrKeyNotFound, ErrAmbiguous, ErrExists, ErrPINIncorrect, ErrPINLocked, ErrMechanism,
		ErrNotTrusted, ErrUnsupportedKey, ErrSelfTest, ErrInvalid, ErrClosed, ErrNoCGO, ErrModule, errCanceled,
	}
	for _, k := range kinds {
		for _, err := range []error{
			&Error{Op: "op", Kind: k, Code: 0xA0},
			fmt.Errorf("outer: %w", &Error{Op: "op", Kind: k, Err: errors.New("cause")}),
		} {
			var he *Error
			if !errors.Is(err, k) || !errors.As(err, &he) || he.Kind != k {
				t.Errorf("%v: Is(%v) = %t, want an *Error of that kind", err, k, errors.Is(err, k))
			}
			for _, other := range kinds {
				if other != k && errors.Is(err, other) {
					t.Errorf("errors.Is(%v, %v) = true", err, other)
				}
			}
		}
	}
}

func TestErrorMessage(t *testing.T) {
	err := &Error{Op: `open token "byok"`, Code: 0xA0, Kind: ErrPINIncorrect}
	if got, want := err.Error(), `open token "byok": pin incorrect (CKR_PIN_INCORRECT)`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	cause := errors.New("failed to log into long term session")
	err = &Error{Op: "op", Code: 0x12345, Kind: ErrModule, Err: cause}
	if got, want := err.Error(), "op: pkcs11 failure (CKR_0x00012345): failed to log into long term session"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, cause) {
		t.Error("the cause is not in the chain")
	}
	ctxErr := &Error{Op: "op", Kind: errCanceled, Err: context.Canceled}
	if !errors.Is(ctxErr, context.Canceled) {
		t.Errorf("errors.Is(%v, context.Canceled) = false", ctxErr)
	}
}

// TestWrappedNeverPrintsCiphertext checks fmt, slog and JSON output of a Wrapped.
func TestWrappedNeverPrintsCiphertext(t *testing.T) {
	ct := bytes.Repeat([]byte{0xC3, 0x7B, 0x7E, 0x64}, 80)
	w := &Wrapped{Ciphertext: ct, RSAPartLen: 256, Method: WrapMethod{Path: PathTwoStep}, EphemeralDestroyed: true}
	leaks := func(s string) bool {
		return strings.Contains(s, hex.EncodeToString(ct[:8])) || strings.Contains(strings.ToUpper(s), strings.ToUpper(hex.EncodeToString(ct[:8]))) ||
			strings.Contains(s, "195 123 126 100") || strings.Contains(s, "0xc3, 0x7b") || strings.Contains(s, "w3t+ZMN7") // decimal and base64 forms
	}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, w), fmt.Sprintf(verb, *w))
	}
	outs = append(outs, fmt.Sprint(w), fmt.Sprintln(*w))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("wrapped", "w", w, "v", *w)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("wrapped", "w", w)
	outs = append(outs, buf.String())
	j, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	for _, s := range outs {
		if leaks(s) {
			t.Errorf("output reveals the ciphertext: %.120s", s)
		}
	}
	if !strings.Contains(buf.String(), `"bytes":320`) {
		t.Errorf("slog output %q lacks the size", buf.String())
	}
	if s := fmt.Sprint(w); !strings.Contains(s, "320 bytes") || !strings.Contains(s, "two-step") {
		t.Errorf("String() = %q, want size and path", s)
	}
}
