package cli

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TestEveryKeyTypeIsPackagedAndUnwrapsToTheHSMKey generates every key type in SoftHSM2,
// packages each for the test KEK, and unwraps every .byok twice, independently: with the
// openssl command line (FIELD-NOTES.md) and with keywrap.UnwrapRSAAES. The recovered key's
// public half must be the HSM key's (its check value for AES). The manifest must describe
// the key, and the whole medium must replay without a finding.
func TestEveryKeyTypeIsPackagedAndUnwrapsToTheHSMKey(t *testing.T) {
	if testing.Short() {
		t.Skip("generates RSA-4096 in SoftHSM2")
	}
	openssl := requireOpenSSL(t)
	f := newFixture(t)
	f.setup("--allow-weaker-kek")
	const bits = 3072
	f.offer(onlinetest.OfferOptions{Vault: premium, Bits: bits})
	f.offer(onlinetest.OfferOptions{Vault: mhsm, ManagedHSM: true, Bits: bits})
	kekPEM := filepath.Join(t.TempDir(), "kek.pem")
	writeKeyPEM(t, kekPEM, onlinetest.KEK(bits))

	for _, kt := range payload.KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			ident := strings.ToLower(string(kt))
			vault := premium
			if kt.IsSymmetric() {
				vault = mhsm
			}
			var key keyResult
			f.mustJSON(&key, "keygen", "--type", string(kt), "--ident", ident)
			var pkg packageResult
			f.mustJSON(&pkg, "package", "--key", ident, "--vault", vault)
			plain, err := os.ReadFile(filepath.Join(f.media, filepath.FromSlash(pkg.Byok)))
			if err != nil {
				t.Fatal(err)
			}
			file, err := byok.Parse(plain)
			if err != nil {
				t.Fatalf("the plain .byok copy is not canonical: %v", err)
			}

			viaGo, err := keywrap.UnwrapRSAAES(onlinetest.KEK(bits), file.Ciphertext)
			if err != nil {
				t.Fatalf("keywrap.UnwrapRSAAES: %v", err)
			}
			viaOpenSSL := opensslUnwrap(t, openssl, kekPEM, bits/8, file.Ciphertext)
			if !bytes.Equal(viaGo, viaOpenSSL) {
				t.Fatalf("openssl and keywrap recover different bytes (%d and %d)", len(viaOpenSSL), len(viaGo))
			}

			k := checkManifest(t, f, pkg, plain)
			if kt.IsSymmetric() {
				if len(viaGo) != kt.Size()/8 {
					t.Fatalf("unwrapped AES key has %d bytes, want %d", len(viaGo), kt.Size()/8)
				}
				if kcv := hex.EncodeToString(chaintest.AESCheckValue(viaGo)); kcv != key.KCV || !bytes.Equal(k.KCV, chaintest.AESCheckValue(viaGo)) {
					t.Errorf("check value of the unwrapped key %s, the HSM's %s, the manifest's %x", kcv, key.KCV, k.KCV)
				}
				return
			}
			der, trailing, err := keywrap.TrimDER(viaGo)
			if err != nil {
				t.Fatal(err)
			}
			if len(trailing) > 7 || len(bytes.Trim(trailing, "\x00")) != 0 {
				t.Errorf("%d trailing bytes after the PKCS#8, want at most 7 zero bytes", len(trailing))
			}
			if len(trailing) > 0 && !k.Provenance.Wrap.TrailingZeroPadding {
				t.Errorf("%d trailing zero bytes, but the manifest says there are none", len(trailing))
			}
			priv, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pub, key.PublicKey) || !bytes.Equal(pub, k.PublicKey) {
				t.Errorf("the unwrapped key's public half is not the HSM's")
			}
			if got := opensslPublic(t, openssl, viaOpenSSL); !bytes.Equal(got, key.PublicKey) {
				t.Errorf("openssl pkey -pubout gives another public key than the HSM's")
			}
			gotType, err := payload.KeyTypeOfPublic(priv.(crypto.Signer).Public())
			if err != nil || gotType != kt {
				t.Errorf("unwrapped a %s key (%v), want %s", gotType, err, kt)
			}
		})
	}
	f.replay()
}

// checkManifest reads the package's bundle from the medium and checks its manifest against
// the command's result and the plain .byok copy.
func checkManifest(t *testing.T, f *fixture, pkg packageResult, plain []byte) *payload.KeyPackage {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.media, filepath.FromSlash(pkg.Path)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	var k payload.KeyPackage
	if err := payload.Unmarshal(p, &k); err != nil {
		t.Fatal(err)
	}
	kt, err := k.Target.KeyType()
	if err != nil || string(kt) != pkg.KeyType {
		t.Errorf("manifest key type %s (%v), want %s", kt, err, pkg.KeyType)
	}
	if !bytes.Equal(k.BYOK, plain) {
		t.Error("the plain .byok copy differs from the one in the key package")
	}
	f2, _ := byok.Parse(k.BYOK)
	if f2.Header.KID != pkg.KID || k.KEK.KID != pkg.KID {
		t.Errorf(".byok kid %s, manifest %s, want %s", f2.Header.KID, k.KEK.KID, pkg.KID)
	}
	if !strings.Contains(f2.Generator, "byok-offline") || !strings.Contains(f2.Generator, "SoftHSM") {
		t.Errorf("generator %q does not name the tool and the HSM", f2.Generator)
	}
	prov := k.Provenance
	switch {
	case prov.Wrap.Path != "two-step" || len(prov.Wrap.Mechanisms) != 3:
		t.Errorf("wrap %+v, want SoftHSM's two-step path", prov.Wrap)
	case !prov.Wrap.EphemeralKeyDestroyed:
		t.Error("the ephemeral AES key was not destroyed")
	case prov.Token.Model == "" || prov.Token.Serial == "" || prov.Token.Firmware == "" || prov.Token.LibraryVersion == "":
		t.Errorf("token provenance incomplete: %+v", prov.Token)
	case prov.Key.Attributes["CKA_SENSITIVE"] != "true" || prov.Key.Attributes["CKA_EXTRACTABLE"] != "true" || prov.Key.Attributes["CKA_TOKEN"] != "true":
		t.Errorf("key attributes %v: want a sensitive, extractable token key", prov.Key.Attributes)
	case prov.Key.Label != pkg.Ident:
		t.Errorf("provenance label %q, want %q", prov.Key.Label, pkg.Ident)
	}
	return &k
}

func requireOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is required in CI")
		}
		t.Skip("openssl not installed")
	}
	return p
}

func writeKeyPEM(t *testing.T, path string, k crypto.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// opensslUnwrap is FIELD-NOTES.md's OpenSSL recipe: RSA-OAEP (SHA-1) of the first k bytes
// with the KEK, then AES key wrap with padding (RFC 5649) of the rest.
func opensslUnwrap(t *testing.T, openssl, kekPEM string, k int, ct []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	rsaPart, kwp := filepath.Join(dir, "rsa.bin"), filepath.Join(dir, "kwp.bin")
	aesKey, target := filepath.Join(dir, "aes.key"), filepath.Join(dir, "target.bin")
	if err := os.WriteFile(rsaPart, ct[:k], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kwp, ct[k:], 0o600); err != nil {
		t.Fatal(err)
	}
	runOpenSSL(t, openssl, "pkeyutl", "-decrypt", "-inkey", kekPEM, "-in", rsaPart, "-out", aesKey,
		"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1", "-pkeyopt", "rsa_mgf1_md:sha1")
	ak, err := os.ReadFile(aesKey)
	if err != nil {
		t.Fatal(err)
	}
	runOpenSSL(t, openssl, "enc", "-d", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(ak), "-iv", "A65959A6", "-in", kwp, "-out", target)
	out, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// opensslPublic has openssl derive the DER SPKI of a PKCS#8 private key (trailing zero
// bytes included, as SoftHSM 2.6 leaves them).
func opensslPublic(t *testing.T, openssl string, pkcs8 []byte) []byte {
	t.Helper()
	in := filepath.Join(t.TempDir(), "target.p8.der")
	if err := os.WriteFile(in, pkcs8, 0o600); err != nil {
		t.Fatal(err)
	}
	return runOpenSSL(t, openssl, "pkey", "-inform", "DER", "-in", in, "-pubout", "-outform", "DER")
}

func runOpenSSL(t *testing.T, openssl string, args ...string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(openssl, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl %s: %v: %s", args[0], err, errb.String())
	}
	return out.Bytes()
}
