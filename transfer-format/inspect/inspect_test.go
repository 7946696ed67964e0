package inspect_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/inspect"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TestBundleEveryKind renders a bundle of each kind with the keys that verify it and checks
// the header, the signature and the payload against what the ceremony wrote.
func TestBundleEveryKind(t *testing.T) {
	f := newFixture(t)
	c := f.c
	tests := []struct {
		kind  bundle.Kind
		check func(t *testing.T, b *bundle.Bundle, r *inspect.Rendering)
	}{
		{bundle.KindEnrollment, func(t *testing.T, b *bundle.Bundle, r *inspect.Rendering) {
			e := r.Payload.(*inspect.Enrollment)
			want := decoded(t, b).(*payload.Enrollment)
			if e.Station != b.Header.Chain.String() || e.Name != want.Name || e.Software != want.Software {
				t.Errorf("enrollment = %+v, want station %s and %+v", e, b.Header.Chain, want)
			}
			if e.Key.ID.Hex != b.Header.Signer.String() || e.Key.Alg != b.Header.Alg.String() {
				t.Errorf("enrollment key = %+v, want the signer %s (%s)", e.Key, b.Header.Signer, b.Header.Alg)
			}
			if e.Key.SPKI != base64.StdEncoding.EncodeToString(want.Key.SPKI) {
				t.Errorf("enrollment key spki = %s, want the payload's", e.Key.SPKI)
			}
		}},
		{bundle.KindPolicy, func(t *testing.T, b *bundle.Bundle, r *inspect.Rendering) {
			p := r.Payload.(*inspect.Policy)
			if p.Version != 1 || p.Previous != nil || p.Threshold != 2 || len(p.Custodians) != 3 {
				t.Errorf("policy version %d, previous %v, threshold %d, %d custodians; want 1, nil, 2, 3",
					p.Version, p.Previous, p.Threshold, len(p.Custodians))
			}
			for i, ck := range c.Custodians {
				if got, want := p.Custodians[i].Key.ID.Hex, keyID(t, ck.Public()).String(); got != want {
					t.Errorf("custodian %d key ID = %s, want %s", i, got, want)
				}
			}
			if got, want := p.OfflineStation.ID.Short, keyID(t, c.OfflineKey.Public()).Short(); got != want {
				t.Errorf("offline station = %s, want %s", got, want)
			}
			if got, want := p.OnlineStation.Alg, "ed25519"; got != want {
				t.Errorf("online station alg = %s, want %s", got, want)
			}
			if len(p.Vaults) != 1 || p.Vaults[0].Kind != payload.VaultPremium {
				t.Errorf("vaults = %+v, want one premium vault", p.Vaults)
			}
		}},
		{bundle.KindKEKOffer, func(t *testing.T, b *bundle.Bundle, r *inspect.Rendering) {
			o := r.Payload.(*inspect.KEKOffer)
			want := decoded(t, b).(*payload.KEKOffer)
			if o.KID != want.KID || o.KeySize != 3072 || o.E != 65537 || !slices.Equal(o.KeyOps, []string{"import"}) {
				t.Errorf("offer = %+v, want kid %s, 3072 bits, e 65537, [import]", o, want.KID)
			}
			if o.Expires != time.Unix(want.Expires, 0).UTC().Format(time.RFC3339) {
				t.Errorf("offer expires %s, want %d in RFC 3339", o.Expires, want.Expires)
			}
			spki, err := x509.MarshalPKIXPublicKey(&c.KEK.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(spki)
			if o.PublicKey.Type != "RSA-3072" || o.PublicKey.SPKI != base64.StdEncoding.EncodeToString(spki) || o.PublicKey.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("offer public key = %+v, want the ceremony's KEK", o.PublicKey)
			}
		}},
		{bundle.KindKeyPackage, func(t *testing.T, b *bundle.Bundle, r *inspect.Rendering) {
			k := r.Payload.(*inspect.KeyPackage)
			want := decoded(t, b).(*payload.KeyPackage)
			f, err := byok.Parse(want.BYOK)
			if err != nil {
				t.Fatal(err)
			}
			if k.KeyType != "RSA-2048" || k.KeyName != want.KeyName || k.KEK.KID != want.KEK.KID || k.KEK.Offer.Hex != want.KEK.Offer.String() {
				t.Errorf("package = %s %s under %s (%s), want RSA-2048 %s under %s", k.KeyType, k.KeyName, k.KEK.KID, k.KEK.Offer.Short, want.KeyName, want.KEK.KID)
			}
			sum := sha256.Sum256(want.BYOK)
			wantBYOK := inspect.BYOK{Size: len(want.BYOK), SHA256: hex.EncodeToString(sum[:]), SchemaVersion: "1.0.0",
				Header:     inspect.BYOKHeader{KID: want.KEK.KID, Alg: "dir", Enc: "CKM_RSA_AES_KEY_WRAP"},
				Ciphertext: inspect.Ciphertext{Length: len(f.Ciphertext)}, Generator: "chaintest"}
			if k.BYOK != wantBYOK {
				t.Errorf("byok = %+v, want %+v", k.BYOK, wantBYOK)
			}
			spkiSum := sha256.Sum256(want.PublicKey)
			if k.PublicKey == nil || k.PublicKey.Type != "RSA-2048" || k.PublicKey.SHA256 != hex.EncodeToString(spkiSum[:]) {
				t.Errorf("public key = %+v, want the RSA-2048 target's", k.PublicKey)
			}
			if k.KCV != "" || k.Target.Kty != "RSA-HSM" || k.Target.KeySize != 2048 || !k.Target.Enabled {
				t.Errorf("kcv %q, target %+v; want no kcv and an enabled RSA-HSM 2048", k.KCV, k.Target)
			}
		}},
		{bundle.KindApproval, func(t *testing.T, b *bundle.Bundle, r *inspect.Rendering) {
			a := r.Payload.(*inspect.Approval)
			if a.Target.Hex != c.PolicyID.String() || a.TargetKind != "policy" || len(a.Signatures) != 2 {
				t.Errorf("approval of %s (%s) with %d signatures, want the policy %s with 2", a.Target.Short, a.TargetKind, len(a.Signatures), c.PolicyID.Short())
			}
			for _, s := range a.Signatures {
				if !s.Verified || s.Error != "" {
					t.Errorf("approval by %s: verified %v (%s), want verified", s.Custodian.Short, s.Verified, s.Error)
				}
			}
		}},
		{bundle.KindReceipt, func(t *testing.T, b *bundle.Bundle, r *inspect.Rendering) {
			rc := r.Payload.(*inspect.Receipt)
			want := decoded(t, b).(*payload.Receipt)
			if rc.Outcome != "imported" || rc.KID != want.KID || rc.Package.Hex != want.Package.String() || rc.Error != "" {
				t.Errorf("receipt = %+v, want imported %s of %s", rc, want.KID, want.Package.Short())
			}
			if rc.Created != time.Unix(want.Created, 0).UTC().Format(time.RFC3339) || rc.Tags["byok-package"] != want.Package.String() {
				t.Errorf("receipt created %s, tags %v; want %d and the package tag", rc.Created, rc.Tags, want.Created)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			b := f.first(t, tt.kind)
			data := chaintest.Bytes(b)
			r, err := inspect.Bundle(data, inspect.Options{Keys: f.all})
			if err != nil {
				t.Fatalf("Bundle() = %v", err)
			}
			if err := r.Err(); err != nil {
				t.Errorf("Err() = %v, want nil", err)
			}
			h := b.Header
			switch {
			case r.ID.Hex != b.ID().String() || r.ID.Short != b.ID().Short():
				t.Errorf("id = %+v, want %s", r.ID, b.ID())
			case r.Path != media.Path(h.Chain, h.Seq, b.ID()):
				t.Errorf("path = %s, want %s", r.Path, media.Path(h.Chain, h.Seq, b.ID()))
			case r.Size != len(data):
				t.Errorf("size = %d, want %d", r.Size, len(data))
			}
			rh := r.Header
			if rh.Version != 1 || rh.Kind != h.Kind.String() || rh.Chain != h.Chain.String() || rh.Alg != h.Alg.String() || rh.Encoding != "zstd" ||
				rh.Seq != h.Seq || rh.PeerSeq != h.PeerSeq || rh.Signer.Hex != h.Signer.String() ||
				rh.PayloadLen != h.PayloadLen || rh.StoredLen != h.StoredLen ||
				rh.PayloadDigest != hex.EncodeToString(h.PayloadDigest[:]) || rh.StoredDigest != hex.EncodeToString(h.StoredDigest[:]) {
				t.Errorf("header = %+v, want %+v", rh, h)
			}
			if rh.Created != h.CreatedTime().Format(time.RFC3339) || rh.Expires != h.ExpiresTime().Format(time.RFC3339) ||
				rh.LifetimeSeconds != h.Expires-h.Created || !strings.HasSuffix(rh.Created, "Z") {
				t.Errorf("created %s, expires %s, lifetime %d; want %s, %s in UTC", rh.Created, rh.Expires, rh.LifetimeSeconds, h.CreatedTime(), h.ExpiresTime())
			}
			if (rh.Prev == nil) != h.Prev.IsZero() || (rh.Prev != nil && rh.Prev.Hex != h.Prev.String()) {
				t.Errorf("prev = %v, want %s (null if zero)", rh.Prev, h.Prev)
			}
			if (rh.Policy == nil) != h.Policy.IsZero() || (rh.Peer == nil) != h.Peer.IsZero() {
				t.Errorf("policy %v, peer %v; want null exactly for zero IDs", rh.Policy, rh.Peer)
			}
			s := r.Signature
			if !s.Verified || s.Error != "" || s.Alg != h.Alg.String() || s.Signer.Hex != h.Signer.String() || s.Value != hex.EncodeToString(b.Signature[:]) {
				t.Errorf("signature = %+v, want verified %x by %s", s, b.Signature, h.Signer.Short())
			}
			if r.PayloadState != inspect.PayloadDecoded || r.Payload == nil || r.PayloadError != "" {
				t.Fatalf("payload state %q (%s), want decoded", r.PayloadState, r.PayloadError)
			}
			tt.check(t, b, r)
			m := checkJSON(t, r.JSON())
			if m["payload"] == nil || m["signature"].(map[string]any)["verified"] != true {
				t.Errorf("JSON lacks the payload or the verified signature:\n%s", r.JSON())
			}
		})
	}
}

// TestBundleNotVerified covers every way the signature can fail to verify, and tampering
// after the signature: the payload is withheld unless Unverified is set, and Err says why.
func TestBundleNotVerified(t *testing.T) {
	f := newFixture(t)
	pol := f.first(t, bundle.KindPolicy)
	data := chaintest.Bytes(pol)
	otherKey := f.c.Custodians[0].Public()
	onlineOnly := map[bundle.ID]crypto.PublicKey{keyID(t, f.c.OnlineKey.Public()): f.c.OnlineKey.Public()}
	const (
		created   = 167 // last byte of the creation time
		signature = bundle.HeaderSize
		stored    = bundle.HeaderSize + bundle.SignatureSize + 5
	)
	tests := []struct {
		name         string
		data         []byte
		keys         map[bundle.ID]crypto.PublicKey
		unverified   bool
		wantVerified bool
		wantState    string
		wantErr      error // errors.Is target; nil for *bundle.HashMismatchError
	}{
		{"no keys", data, nil, false, false, inspect.PayloadWithheld, inspect.ErrNoKey},
		{"no keys, unverified", data, nil, true, false, inspect.PayloadDecodedUnverified, inspect.ErrNoKey},
		{"another station's key", data, onlineOnly, false, false, inspect.PayloadWithheld, inspect.ErrNoKey},
		{"header changed", flip(data, created), f.stations, false, false, inspect.PayloadWithheld, bundle.ErrBadSignature},
		{"header changed, unverified", flip(data, created), f.stations, true, false, inspect.PayloadDecodedUnverified, bundle.ErrBadSignature},
		{"signature changed", flip(data, signature+40), f.stations, false, false, inspect.PayloadWithheld, bundle.ErrBadSignature},
		{"wrong key under the signer's ID", data, map[bundle.ID]crypto.PublicKey{pol.Header.Signer: otherKey}, false, false, inspect.PayloadWithheld, bundle.ErrBadSignature},
		{"stored payload changed", flip(data, stored), f.stations, false, true, inspect.PayloadInvalid, nil},
		{"stored payload changed, unverified", flip(data, stored), nil, true, false, inspect.PayloadInvalid, inspect.ErrNoKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := inspect.Bundle(tt.data, inspect.Options{Keys: tt.keys, Unverified: tt.unverified})
			if err != nil {
				t.Fatalf("Bundle() = %v, want a rendering", err)
			}
			if r.Signature.Verified != tt.wantVerified || (r.Signature.Error == "") != tt.wantVerified {
				t.Errorf("signature verified %v (%q), want %v", r.Signature.Verified, r.Signature.Error, tt.wantVerified)
			}
			if r.PayloadState != tt.wantState {
				t.Errorf("payload state %q, want %q", r.PayloadState, tt.wantState)
			}
			decodedState := tt.wantState == inspect.PayloadDecoded || tt.wantState == inspect.PayloadDecodedUnverified
			if (r.Payload != nil) != decodedState {
				t.Errorf("payload = %v, want it present exactly when decoded", r.Payload)
			}
			if tt.wantState == inspect.PayloadDecodedUnverified && !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "not authenticated") }) {
				t.Errorf("notes = %q, want one saying the payload is not authenticated", r.Notes)
			}
			err = r.Err()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Err() = %v, want %v", err, tt.wantErr)
				}
			} else if hm := (*bundle.HashMismatchError)(nil); !errors.As(err, &hm) || hm.What != "stored payload" {
				t.Errorf("Err() = %v, want a stored payload hash mismatch", err)
			}
			if tt.wantState == inspect.PayloadInvalid && r.PayloadError == "" {
				t.Errorf("payload error is empty for an invalid payload")
			}
			m := checkJSON(t, r.JSON())
			if _, ok := m["payload"]; ok != decodedState {
				t.Errorf("JSON has payload %v, want %v", ok, decodedState)
			}
		})
	}
}

// TestBundleMalformed checks that input which is not a bundle is refused with the bundle
// package's typed errors and no rendering.
func TestBundleMalformed(t *testing.T) {
	f := newFixture(t)
	data := chaintest.Bytes(f.first(t, bundle.KindEnrollment))
	version3 := bytes.Clone(data)
	version3[9] = 3
	tests := []struct {
		name    string
		data    []byte
		wantErr error // errors.Is target, or nil for any *bundle.ParseError
		wantVer uint16
	}{
		{"empty", nil, nil, 0},
		{"header only", data[:bundle.HeaderSize], nil, 0},
		{"truncated", data[:len(data)-1], nil, 0},
		{"trailing byte", append(bytes.Clone(data), 0), nil, 0},
		{"bad magic", flip(data, 1), nil, 0},
		{"reserved byte set", flip(data, 250), nil, 0},
		{"unsupported version", version3, nil, 3},
		{"over the file limit", make([]byte, bundle.MaxFileSize+1), bundle.ErrTooLarge, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := inspect.Bundle(tt.data, inspect.Options{Keys: f.all, Unverified: true})
			if r != nil {
				t.Errorf("Bundle() rendering = %+v, want nil", r)
			}
			var pe *bundle.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Bundle() = %v, want a *bundle.ParseError", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Bundle() = %v, want %v", err, tt.wantErr)
			}
			var uv *bundle.UnsupportedVersionError
			if got := errors.As(err, &uv); got != (tt.wantVer != 0) || (got && uv.Version != tt.wantVer) {
				t.Errorf("Bundle() = %v, want unsupported version %d: %v", err, tt.wantVer, got)
			}
		})
	}
}

// TestBundleHidesCiphertext checks that a key package's rendering shows no part of the
// wrapped key: neither the ciphertext nor the .byok file that holds it, in any of the
// encodings they travel in.
func TestBundleHidesCiphertext(t *testing.T) {
	f := newFixture(t)
	for _, b := range f.c.Written {
		if b.Header.Kind != bundle.KindKeyPackage {
			continue
		}
		k := decoded(t, b).(*payload.KeyPackage)
		bf, err := byok.Parse(k.BYOK)
		if err != nil {
			t.Fatal(err)
		}
		r, err := inspect.Bundle(chaintest.Bytes(b), inspect.Options{Keys: f.stations})
		if err != nil || r.PayloadState != inspect.PayloadDecoded {
			t.Fatalf("Bundle() = %v, %v; want a decoded payload", r, err)
		}
		out := r.JSON()
		for _, enc := range []string{
			base64.RawURLEncoding.EncodeToString(bf.Ciphertext), // as in the .byok
			base64.StdEncoding.EncodeToString(k.BYOK),           // as in the payload
			base64.StdEncoding.EncodeToString(bf.Ciphertext),
			hex.EncodeToString(bf.Ciphertext),
		} {
			for i := 0; i+16 <= len(enc); i += 16 {
				if bytes.Contains(out, []byte(enc[i:i+16])) {
					t.Fatalf("%s: the rendering holds %q, part of the wrapped key", k.KeyName, enc[i:i+16])
				}
			}
		}
	}
}

// TestBundleApprovals checks that each approval signature is verified on its own: with the
// custodian's key, without it, and when it is wrong.
func TestBundleApprovals(t *testing.T) {
	f := newFixture(t)
	c := f.c
	pkg := f.first(t, bundle.KindKeyPackage)
	a := c.Approval(pkg.ID(), bundle.KindKeyPackage, 0, 1, 2)
	bad := a.Signatures[1].Custodian
	a.Signatures[1].Sig = flip(a.Signatures[1].Sig, 10)
	b, err := c.Append(bundle.ChainOffline, a, chaintest.NoWrite())
	if err != nil {
		t.Fatal(err)
	}
	only0 := map[bundle.ID]crypto.PublicKey{keyID(t, c.OfflineKey.Public()): c.OfflineKey.Public(), a.Signatures[0].Custodian: f.all[a.Signatures[0].Custodian]}
	tests := []struct {
		name         string
		keys         map[bundle.ID]crypto.PublicKey
		wantVerified []bool
		wantErr      []string
	}{
		{"all keys", f.all, []bool{true, false, true}, []string{"", "bad signature", ""}},
		{"one custodian's key", only0, []bool{true, false, false}, []string{"", "no key", "no key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := inspect.Bundle(chaintest.Bytes(b), inspect.Options{Keys: tt.keys})
			if err != nil || r.Err() != nil {
				t.Fatalf("Bundle() = %v, Err() = %v", err, r.Err())
			}
			got := r.Payload.(*inspect.Approval)
			if got.Target.Hex != pkg.ID().String() || got.TargetKind != "key_package" || len(got.Signatures) != 3 {
				t.Fatalf("approval of %s (%s), %d signatures; want %s, key_package, 3", got.Target.Short, got.TargetKind, len(got.Signatures), pkg.ID().Short())
			}
			for i, s := range got.Signatures {
				if s.Custodian.Hex != a.Signatures[i].Custodian.String() || s.Sig != hex.EncodeToString(a.Signatures[i].Sig) {
					t.Errorf("signature %d = %s by %s, want the payload's", i, s.Sig, s.Custodian.Short)
				}
				if s.Verified != tt.wantVerified[i] || !strings.Contains(s.Error, tt.wantErr[i]) || (tt.wantErr[i] == "") != (s.Error == "") {
					t.Errorf("signature %d (custodian %s, tampered %v): verified %v, error %q; want %v, %q",
						i, s.Custodian.Short, a.Signatures[i].Custodian == bad, s.Verified, s.Error, tt.wantVerified[i], tt.wantErr[i])
				}
			}
		})
	}
}

// TestJSONEscapesText checks that text from the medium reaches the JSON escaped, as ASCII,
// and decodes back to itself.
func TestJSONEscapesText(t *testing.T) {
	f := newFixture(t)
	c := f.c
	off := f.first(t, bundle.KindKEKOffer)
	k, err := c.PackagePayload(off.ID(), payload.ECP256, "text-key")
	if err != nil {
		t.Fatal(err)
	}
	const generator = "caf\u00e9 \u2028 \U0001F600 \x7f \x1b[31m <&>"
	bf, err := byok.Parse(k.BYOK)
	if err != nil {
		t.Fatal(err)
	}
	nf, err := byok.New(bf.Header.KID, bf.Ciphertext, generator)
	if err != nil {
		t.Fatal(err)
	}
	k.BYOK = nf.Marshal()
	b, err := c.Append(bundle.ChainOffline, k, chaintest.NoWrite())
	if err != nil {
		t.Fatal(err)
	}
	r, err := inspect.Bundle(chaintest.Bytes(b), inspect.Options{Keys: f.stations})
	if err != nil || r.Err() != nil {
		t.Fatalf("Bundle() = %v, Err() = %v", err, r.Err())
	}
	out := r.JSON()
	m := checkJSON(t, out)
	got := m["payload"].(map[string]any)["byok"].(map[string]any)["generator"]
	if got != generator {
		t.Errorf("generator decodes to %q, want %q", got, generator)
	}
	if !bytes.Contains(out, []byte(`\ud83d\ude00`)) || !bytes.Contains(out, []byte(`\u001b`)) || !bytes.Contains(out, []byte(`<&>`)) {
		t.Errorf("JSON() = %s, want the emoji as a surrogate pair, ESC escaped and no HTML escaping", out)
	}
}

// TestJSONStable checks that equal bundles render to equal bytes, and that JSON is a pure
// function of the rendering.
func TestJSONStable(t *testing.T) {
	f1, f2 := newFixture(t), newFixture(t)
	for i, b := range f1.c.Written {
		r1, err1 := inspect.Bundle(chaintest.Bytes(b), inspect.Options{Keys: f1.all})
		r2, err2 := inspect.Bundle(chaintest.Bytes(f2.c.Written[i]), inspect.Options{Keys: f2.all})
		if err1 != nil || err2 != nil {
			t.Fatalf("Bundle() = %v, %v", err1, err2)
		}
		if j1, j2 := r1.JSON(), r2.JSON(); !bytes.Equal(j1, j2) || !bytes.Equal(j1, r1.JSON()) {
			t.Errorf("bundle %d renders differently:\n%s\n%s", i, j1, j2)
		}
	}
}

// TestBundleAttestation checks the rendering of a Managed HSM's KEK attestation: the data by
// length and digest, each certificate by its names, serial, validity and digest.
func TestBundleAttestation(t *testing.T) {
	f := newFixture(t)
	c := f.c
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	notBefore := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x1234), Subject: pkix.Name{CommonName: "test attestation root"},
		NotBefore: notBefore, NotAfter: notBefore.AddDate(10, 0, 0),
	}
	cert, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	o := c.OfferPayload("0123456789abcdef0123456789abcdef")
	data := []byte("attestation blob")
	o.Attestation = &payload.Attestation{Format: "test", Data: data, Certificates: [][]byte{cert}}
	b, err := c.Append(bundle.ChainOnline, o, chaintest.NoWrite())
	if err != nil {
		t.Fatal(err)
	}
	r, err := inspect.Bundle(chaintest.Bytes(b), inspect.Options{Keys: f.stations})
	if err != nil || r.Err() != nil {
		t.Fatalf("Bundle() = %v, Err() = %v", err, r.Err())
	}
	got := r.Payload.(*inspect.KEKOffer).Attestation
	dataSum, certSum := sha256.Sum256(data), sha256.Sum256(cert)
	want := &inspect.Attestation{Format: "test", Data: inspect.Blob{Length: len(data), SHA256: hex.EncodeToString(dataSum[:])},
		Certificates: []inspect.Certificate{{Subject: "CN=test attestation root", Issuer: "CN=test attestation root", Serial: "1234",
			NotBefore: "2026-01-01T00:00:00Z", NotAfter: "2036-01-01T00:00:00Z", SHA256: hex.EncodeToString(certSum[:])}}}
	if got == nil || got.Format != want.Format || got.Data != want.Data || !slices.Equal(got.Certificates, want.Certificates) {
		t.Errorf("attestation = %+v, want %+v", got, want)
	}
	if bytes.Contains(r.JSON(), []byte(base64.StdEncoding.EncodeToString(data))) {
		t.Errorf("the rendering holds the attestation data, want its length and digest only")
	}
}

// TestPolicyKeys checks that the keys a policy names verify every bundle of its ceremony and
// every approval signature, exactly as the ceremony's own keys do.
func TestPolicyKeys(t *testing.T) {
	f := newFixture(t)
	keys := inspect.PolicyKeys(nil, f.c.Policy)
	if len(keys) != len(f.all) {
		t.Fatalf("PolicyKeys() has %d keys, want %d", len(keys), len(f.all))
	}
	for id := range f.all {
		if _, ok := keys[id]; !ok {
			t.Errorf("PolicyKeys() lacks key %s", id.Short())
		}
	}
	for _, b := range f.c.Written {
		r, err := inspect.Bundle(chaintest.Bytes(b), inspect.Options{Keys: keys})
		if err != nil || r.Err() != nil {
			t.Fatalf("%s seq %d: Bundle() = %v, Err() = %v", b.Header.Chain, b.Header.Seq, err, r.Err())
		}
		if a, ok := r.Payload.(*inspect.Approval); ok {
			for _, s := range a.Signatures {
				if !s.Verified {
					t.Errorf("approval by %s not verified with the policy's keys: %s", s.Custodian.Short, s.Error)
				}
			}
		}
	}
}
