package kvemu_test

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
)

// target is a key to import and the public key Key Vault must return for it.
type target struct {
	kty    azkeys.KeyType
	crv    string
	der    []byte // what is wrapped: PKCS#8, or raw AES bytes
	n, e   []byte // RSA public key
	x, y   []byte // EC public key
	secret []byte // AES key
}

func rsaTarget(t testing.TB, bits int) target {
	k := rsaKey(t, bits)
	return target{kty: azkeys.KeyTypeRSAHSM, der: pkcs8(t, k), n: k.N.Bytes(), e: []byte{1, 0, 1}}
}

func ecTarget(t testing.TB, c elliptic.Curve, crv string) target {
	k := ecKey(t, c)
	raw, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	n := (len(raw) - 1) / 2
	return target{kty: azkeys.KeyTypeECHSM, crv: crv, der: pkcs8(t, k), x: raw[1 : 1+n], y: raw[1+n:]}
}

// p256kTarget makes a secp256k1 key with OpenSSL, which the standard library cannot.
func p256kTarget(t testing.TB) target {
	dir := t.TempDir()
	// genpkey's DER output is SEC 1; convert it to PKCS#8 as the BYOK spec requires.
	runOpenSSL(t, dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1", "-out", "k.pem")
	der := runOpenSSL(t, dir, "pkcs8", "-topk8", "-nocrypt", "-in", "k.pem", "-outform", "DER")
	spki := runOpenSSL(t, dir, "pkey", "-in", "k.pem", "-pubout", "-outform", "DER")
	pt := spki[len(spki)-65:]
	if pt[0] != 4 {
		t.Fatalf("unexpected SPKI from openssl")
	}
	return target{kty: azkeys.KeyTypeECHSM, crv: "P-256K", der: der, x: pt[1:33], y: pt[33:]}
}

func aesTarget(t testing.TB, n int) target {
	k := randomBytes(t, n)
	return target{kty: azkeys.KeyTypeOctHSM, der: k, secret: k}
}

// check compares the key Key Vault returned with the target's public key.
func (tg target) check(t testing.TB, k *azkeys.JSONWebKey) {
	t.Helper()
	if *k.Kty != tg.kty {
		t.Errorf("kty = %s, want %s", *k.Kty, tg.kty)
	}
	if !bytes.Equal(k.N, tg.n) || !bytes.Equal(k.E, tg.e) || !bytes.Equal(k.X, tg.x) || !bytes.Equal(k.Y, tg.y) {
		t.Errorf("returned public key differs from the wrapped key's")
	}
	if len(k.K) != 0 || len(k.D) != 0 || len(k.T) != 0 {
		t.Errorf("response carries key material")
	}
	if tg.crv != "" && (k.Crv == nil || string(*k.Crv) != tg.crv) {
		t.Errorf("crv = %v, want %s", k.Crv, tg.crv)
	}
}

func TestImportEveryKeyType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		kind   kvemu.Kind
		target func(testing.TB) target
	}{
		{"RSA-2048", kvemu.KindPremium, func(t testing.TB) target { return rsaTarget(t, 2048) }},
		{"RSA-3072", kvemu.KindPremium, func(t testing.TB) target { return rsaTarget(t, 3072) }},
		{"RSA-4096", kvemu.KindManagedHSM, func(t testing.TB) target { return rsaTarget(t, 4096) }},
		{"EC P-256", kvemu.KindPremium, func(t testing.TB) target { return ecTarget(t, elliptic.P256(), "P-256") }},
		{"EC P-384", kvemu.KindManagedHSM, func(t testing.TB) target { return ecTarget(t, elliptic.P384(), "P-384") }},
		{"EC P-521", kvemu.KindPremium, func(t testing.TB) target { return ecTarget(t, elliptic.P521(), "P-521") }},
		{"EC P-256K", kvemu.KindPremium, p256kTarget},
		{"AES-128", kvemu.KindManagedHSM, func(t testing.TB) target { return aesTarget(t, 16) }},
		{"AES-192", kvemu.KindManagedHSM, func(t testing.TB) target { return aesTarget(t, 24) }},
		{"AES-256", kvemu.KindManagedHSM, func(t testing.TB) target { return aesTarget(t, 32) }},
	}
	type vault struct {
		v   *kvemutest.Vault
		c   *azkeys.Client
		kek kek
	}
	logs := &logCapture{next: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})}
	vaults := map[kvemu.Kind]vault{}
	for _, kind := range []kvemu.Kind{kvemu.KindPremium, kvemu.KindManagedHSM} {
		v := kvemutest.Start(t, kvemu.Config{Kind: kind, Logger: slog.New(logs)})
		c := v.Client(t, nil)
		vaults[kind] = vault{v, c, createKEK(t, c, "kek", 2048)}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vt := vaults[tt.kind]
			tg := tt.target(t)
			name := strings.ReplaceAll(strings.ReplaceAll(tt.name, " ", "-"), "--", "-")
			before := vt.v.Stats().Imports
			resp, err := importBYOK(vt.c, name, tg.kty, tg.crv, vt.kek.wrap(t, tg.der))
			if err != nil {
				t.Fatalf("ImportKey: %v", err)
			}
			tg.check(t, resp.Key)
			kid := resp.Key.KID
			if kid.Name() != name || !versionRE.MatchString(kid.Version()) || !strings.HasPrefix(string(*kid), vt.v.URL()+"/keys/") {
				t.Errorf("kid = %s, want %s/keys/%s/<32 hex>", *kid, vt.v.URL(), name)
			}
			if len(resp.Key.KeyOps) == 0 {
				t.Errorf("imported key has no key_ops")
			}
			got, err := vt.c.GetKey(context.Background(), name, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			tg.check(t, got.Key)
			vs, err := vt.v.KeyVersions(name)
			if err != nil || len(vs) != 1 || !vs[0].Imported {
				t.Errorf("KeyVersions = %+v, %v; want one imported version", vs, err)
			}
			if n := vt.v.Stats().Imports - before; n != 1 {
				t.Errorf("Stats().Imports grew by %d, want 1", n)
			}
			if tg.secret != nil {
				text := logs.allText()
				for _, enc := range []string{hex.EncodeToString(tg.secret), base64.RawURLEncoding.EncodeToString(tg.secret),
					base64.StdEncoding.EncodeToString(tg.secret)} {
					if strings.Contains(text, enc) {
						t.Errorf("logs contain the imported AES key")
					}
				}
			}
		})
	}
}

func TestImportRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	premium := kvemutest.Start(t, kvemu.Config{Kind: kvemu.KindPremium})
	mhsm := kvemutest.Start(t, kvemu.Config{Kind: kvemu.KindManagedHSM})
	other := kvemutest.Start(t, kvemu.Config{Kind: kvemu.KindPremium})
	pc, mc := premium.Client(t, nil), mhsm.Client(t, nil)
	pk, mk := createKEK(t, pc, "kek", 2048), createKEK(t, mc, "kek", 2048)
	otherKEK := createKEK(t, other.Client(t, nil), "kek", 2048)

	// Keys that are not usable KEKs.
	signer, err := pc.CreateKey(ctx, "signer", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	notKEK := kek{kid: string(*signer.Key.KID), pub: jwkRSA(t, signer.Key)}
	disabled := createKEK(t, pc, "disabled", 2048)
	if _, err := pc.UpdateKey(ctx, "disabled", "", azkeys.UpdateKeyParameters{
		KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	timed := func(name string, attrs azkeys.KeyAttributes) kek {
		resp, err := pc.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM),
			KeyOps: ops(azkeys.KeyOperationImport), KeyAttributes: &attrs}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return kek{kid: string(*resp.Key.KID), pub: jwkRSA(t, resp.Key)}
	}
	expired := timed("expired", azkeys.KeyAttributes{Expires: to.Ptr(time.Now().Add(-time.Hour))})
	notYet := timed("notyet", azkeys.KeyAttributes{NotBefore: to.Ptr(time.Now().Add(time.Hour))})

	rsa2048 := pkcs8(t, rsaKey(t, 2048))
	p256 := ecTarget(t, elliptic.P256(), "P-256").der
	p384 := ecTarget(t, elliptic.P384(), "P-384").der
	rsa1024 := pkcs8(t, rsaKey(t, 1024))

	tamper := func(k kek, target []byte, at func(ct []byte) int) []byte {
		f, err := byok.Parse(k.wrap(t, target))
		if err != nil {
			t.Fatal(err)
		}
		f.Ciphertext[at(f.Ciphertext)] ^= 0x01
		f2, err := byok.New(f.Header.KID, f.Ciphertext, f.Generator)
		if err != nil {
			t.Fatal(err)
		}
		return f2.Marshal()
	}
	withKID := func(kid string, k kek, target []byte) []byte { return byokFile(t, kid, k.pub, target) }

	tests := []struct {
		name string
		v    *kvemutest.Vault
		kty  azkeys.KeyType
		crv  string
		file []byte
	}{
		{"oct-HSM on premium", premium, azkeys.KeyTypeOctHSM, "", pk.wrap(t, randomBytes(t, 32))},
		{"RSA key as EC-HSM", premium, azkeys.KeyTypeECHSM, "P-256", pk.wrap(t, rsa2048)},
		{"EC key as RSA-HSM", premium, azkeys.KeyTypeRSAHSM, "", pk.wrap(t, p256)},
		{"P-384 key as P-256", premium, azkeys.KeyTypeECHSM, "P-256", pk.wrap(t, p384)},
		{"EC without crv", premium, azkeys.KeyTypeECHSM, "", pk.wrap(t, p256)},
		{"RSA-1024", premium, azkeys.KeyTypeRSAHSM, "", pk.wrap(t, rsa1024)},
		{"AES bytes as RSA-HSM", premium, azkeys.KeyTypeRSAHSM, "", pk.wrap(t, randomBytes(t, 32))},
		{"AES of 20 bytes", mhsm, azkeys.KeyTypeOctHSM, "", mk.wrap(t, randomBytes(t, 20))},
		{"PKCS#8 as oct-HSM", mhsm, azkeys.KeyTypeOctHSM, "", mk.wrap(t, p256)},
		{"software kty", premium, azkeys.KeyTypeRSA, "", pk.wrap(t, rsa2048)},
		{"kid of another vault", premium, azkeys.KeyTypeRSAHSM, "", otherKEK.wrap(t, rsa2048)},
		{"kid with localhost instead of 127.0.0.1", premium, azkeys.KeyTypeRSAHSM, "",
			withKID(strings.Replace(pk.kid, "127.0.0.1", "localhost", 1), pk, rsa2048)},
		{"kid of the other vault kind", mhsm, azkeys.KeyTypeRSAHSM, "", pk.wrap(t, rsa2048)},
		{"kid of a key without import", premium, azkeys.KeyTypeRSAHSM, "", notKEK.wrap(t, rsa2048)},
		{"kid with unknown version", premium, azkeys.KeyTypeRSAHSM, "",
			withKID(pk.kid[:len(pk.kid)-32]+strings.Repeat("0", 32), pk, rsa2048)},
		{"kid of unknown key", premium, azkeys.KeyTypeRSAHSM, "",
			withKID(strings.Replace(pk.kid, "/keys/kek/", "/keys/nokek/", 1), pk, rsa2048)},
		{"disabled KEK", premium, azkeys.KeyTypeRSAHSM, "", disabled.wrap(t, rsa2048)},
		{"expired KEK", premium, azkeys.KeyTypeRSAHSM, "", expired.wrap(t, rsa2048)},
		{"KEK not yet active", premium, azkeys.KeyTypeRSAHSM, "", notYet.wrap(t, rsa2048)},
		{"wrapped for another key", premium, azkeys.KeyTypeRSAHSM, "", withKID(pk.kid, otherKEK, rsa2048)},
		{"RSA part tampered", premium, azkeys.KeyTypeRSAHSM, "", tamper(pk, rsa2048, func([]byte) int { return 10 })},
		{"RFC 5649 part tampered", premium, azkeys.KeyTypeRSAHSM, "", tamper(pk, rsa2048, func(ct []byte) int { return len(ct) - 1 })},
		{"eight trailing zeros", premium, azkeys.KeyTypeECHSM, "P-256", pk.wrap(t, append(bytes.Clone(p256), make([]byte, 8)...))},
		{"trailing non-zero bytes", premium, azkeys.KeyTypeECHSM, "P-256", pk.wrap(t, append(bytes.Clone(p256), 0, 1))},
		{"truncated PKCS#8", premium, azkeys.KeyTypeECHSM, "P-256", pk.wrap(t, p256[:len(p256)-8])},
		{"not a .byok file", premium, azkeys.KeyTypeRSAHSM, "", []byte(`{"schema_version":"1.0.0"}`)},
		{"unknown .byok member", premium, azkeys.KeyTypeRSAHSM, "",
			bytes.Replace(pk.wrap(t, rsa2048), []byte(`"generator"`), []byte(`"extra":1,"generator"`), 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.v.Stats().ImportsRefused
			c := tt.v.Client(t, noRetry)
			_, err := importBYOK(c, "target", tt.kty, tt.crv, tt.file)
			wantAPIError(t, err, http.StatusBadRequest, kvemu.CodeBadParameter)
			if n := versionCount(t, tt.v.Server, "target"); n != 0 {
				t.Errorf("%d versions stored, want 0", n)
			}
			if n := tt.v.Stats().ImportsRefused - before; n != 1 {
				t.Errorf("Stats().ImportsRefused grew by %d, want 1", n)
			}
		})
	}

	t.Run("import operation on an imported key", func(t *testing.T) {
		jwk := &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), T: pk.wrap(t, rsa2048),
			KeyOps: ops(azkeys.KeyOperationImport)}
		_, err := premium.Client(t, noRetry).ImportKey(ctx, "target", azkeys.ImportKeyParameters{Key: jwk}, nil)
		wantAPIError(t, err, http.StatusBadRequest, kvemu.CodeBadParameter)
	})
	t.Run("plaintext JWK import is not emulated", func(t *testing.T) {
		k := rsaKey(t, 2048)
		jwk := &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSA), N: k.N.Bytes(), E: []byte{1, 0, 1}, D: k.D.Bytes()}
		_, err := premium.Client(t, noRetry).ImportKey(ctx, "target", azkeys.ImportKeyParameters{Key: jwk}, nil)
		wantAPIError(t, err, http.StatusNotImplemented, kvemu.CodeNotSupported)
	})
	if n := versionCount(t, premium.Server, "target"); n != 0 {
		t.Errorf("%d versions stored, want 0", n)
	}
}

func TestImportTrailingZeroPadding(t *testing.T) {
	t.Parallel()
	logs := &logCapture{next: slog.NewTextHandler(t.Output(), nil)}
	v := kvemutest.Start(t, kvemu.Config{Logger: slog.New(logs)})
	c := v.Client(t, nil)
	k := createKEK(t, c, "kek", 2048)
	tests := []struct {
		name string
		tg   target
		pad  int
	}{
		{"EC P-256 + 1", ecTarget(t, elliptic.P256(), "P-256"), 1},
		{"EC P-384 + 4", ecTarget(t, elliptic.P384(), "P-384"), 4},
		{"RSA-2048 + 7", rsaTarget(t, 2048), 7},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("padded%d", i)
			padded := append(bytes.Clone(tt.tg.der), make([]byte, tt.pad)...)
			resp, err := importBYOK(c, name, tt.tg.kty, tt.tg.crv, k.wrap(t, padded))
			if err != nil {
				t.Fatalf("ImportKey: %v", err)
			}
			tt.tg.check(t, resp.Key)
			found := false
			for _, r := range logs.withAttr(slog.LevelWarn, "trailing_bytes") {
				r.Attrs(func(a slog.Attr) bool {
					if a.Key == "trailing_bytes" && a.Value.Int64() == int64(tt.pad) {
						found = true
					}
					return true
				})
			}
			if !found {
				t.Errorf("no warning with trailing_bytes=%d logged", tt.pad)
			}
		})
	}
}

func TestImportLenientBYOK(t *testing.T) {
	t.Parallel()
	v, c := start(t, kvemu.KindPremium)
	k := createKEK(t, c, "kek", 2048)
	tg := ecTarget(t, elliptic.P256(), "P-256")
	f, err := byok.Parse(k.wrap(t, tg.der))
	if err != nil {
		t.Fatal(err)
	}
	// Another tool's formatting: reordered members, whitespace, padded base64url.
	other := fmt.Sprintf("{\n  \"generator\": \"other tool\",\n  \"ciphertext\": %q,\n  \"header\": {\"enc\": \"CKM_RSA_AES_KEY_WRAP\", \"alg\": \"dir\", \"kid\": %q},\n  \"schema_version\": \"1.0.0\"\n}\n",
		base64.URLEncoding.EncodeToString(f.Ciphertext), f.Header.KID)
	resp, err := importBYOK(c, "lenient", tg.kty, tg.crv, []byte(other))
	if err != nil {
		t.Fatalf("ImportKey: %v", err)
	}
	tg.check(t, resp.Key)
	if n := versionCount(t, v.Server, "lenient"); n != 1 {
		t.Errorf("versions = %d, want 1", n)
	}
}

// TestImportOpenSSLWrapped has OpenSSL's command line wrap the target, independently of
// package keywrap, and checks the emulator unwraps it to the same key.
func TestImportOpenSSLWrapped(t *testing.T) {
	t.Parallel()
	requireOpenSSL(t)
	_, c := start(t, kvemu.KindPremium)
	k := createKEK(t, c, "kek", 3072)
	tests := []struct {
		name string
		tg   target
	}{
		{"RSA-3072", rsaTarget(t, 3072)},
		{"EC P-384", ecTarget(t, elliptic.P384(), "P-384")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			spki, err := x509.MarshalPKIXPublicKey(k.pub)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "kek.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
			aes := randomBytes(t, 32)
			writeFile(t, dir, "aes.key", aes)
			writeFile(t, dir, "target.der", tt.tg.der)
			runOpenSSL(t, dir, "pkeyutl", "-encrypt", "-pubin", "-inkey", "kek.pem", "-in", "aes.key", "-out", "rsa.bin",
				"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1", "-pkeyopt", "rsa_mgf1_md:sha1")
			runOpenSSL(t, dir, "enc", "-e", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(aes), "-iv", "A65959A6",
				"-in", "target.der", "-out", "kwp.bin")
			rsaPart, err := os.ReadFile(filepath.Join(dir, "rsa.bin"))
			if err != nil {
				t.Fatal(err)
			}
			kwpPart, err := os.ReadFile(filepath.Join(dir, "kwp.bin"))
			if err != nil {
				t.Fatal(err)
			}
			f, err := byok.New(k.kid, append(rsaPart, kwpPart...), "openssl")
			if err != nil {
				t.Fatal(err)
			}
			resp, err := importBYOK(c, fmt.Sprintf("openssl%d", i), tt.tg.kty, tt.tg.crv, f.Marshal())
			if err != nil {
				t.Fatalf("ImportKey: %v", err)
			}
			tt.tg.check(t, resp.Key)
		})
	}
}

// TestImportNewVersion checks that importing to an existing name adds a version, as Azure.
func TestImportNewVersion(t *testing.T) {
	t.Parallel()
	v, c := start(t, kvemu.KindPremium)
	k := createKEK(t, c, "kek", 2048)
	var last *azkeys.ID
	for i := range 3 {
		tg := ecTarget(t, elliptic.P256(), "P-256")
		resp, err := importBYOK(c, "target", tg.kty, tg.crv, k.wrap(t, tg.der))
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Key.KID
		if n := versionCount(t, v.Server, "target"); n != i+1 {
			t.Fatalf("versions = %d, want %d", n, i+1)
		}
	}
	got, err := c.GetKey(context.Background(), "target", "", nil)
	if err != nil || *got.Key.KID != *last {
		t.Errorf("latest = %v (%v), want %s", got.Key, err, *last)
	}
}
