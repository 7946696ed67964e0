package kvemu_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
)

func TestAttestationManagedHSM(t *testing.T) {
	t.Parallel()
	v, c := start(t, kvemu.KindManagedHSM)
	ctx := context.Background()
	kek := createKEK(t, c, "kek", 2048)
	aes := aesTarget(t, 32)
	if _, err := importBYOK(c, "aes", aes.kty, "", kek.wrap(t, aes.der)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		key        string
		wantKty    string
		wantOrigin string
		wantPublic bool
	}{
		{"generated RSA KEK", "kek", "RSA-HSM", "generated", true},
		{"imported AES", "aes", "oct-HSM", "imported", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := c.GetKey(ctx, tt.key, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.GetKeyAttestation(ctx, tt.key, key.Key.KID.Version(), nil)
			if err != nil {
				t.Fatal(err)
			}
			att := resp.Attributes.Attestation
			if att == nil || len(att.CertificatePEMFile) == 0 || len(att.PrivateKeyAttestation) == 0 {
				t.Fatalf("attestation = %+v, want certificates and a private key attestation", att)
			}
			if (len(att.PublicKeyAttestation) != 0) != tt.wantPublic {
				t.Errorf("public key attestation present = %v, want %v", len(att.PublicKeyAttestation) != 0, tt.wantPublic)
			}
			st, err := kvemu.VerifyAttestation(att.CertificatePEMFile, att.PrivateKeyAttestation, v.AttestationRoots())
			if err != nil {
				t.Fatalf("VerifyAttestation: %v", err)
			}
			if st.KID != string(*key.Key.KID) || st.Kty != tt.wantKty || st.Origin != tt.wantOrigin || st.Part != "private" || st.Extractable {
				t.Errorf("statement = %+v, want kid %s kty %s origin %s private, not extractable", st, *key.Key.KID, tt.wantKty, tt.wantOrigin)
			}
			if tt.wantPublic {
				pst, err := kvemu.VerifyAttestation(att.CertificatePEMFile, att.PublicKeyAttestation, v.AttestationRoots())
				if err != nil {
					t.Fatal(err)
				}
				if pst.Part != "public" || pst.N != base64.RawURLEncoding.EncodeToString(key.Key.N) {
					t.Errorf("public statement does not attest the key's modulus")
				}
			}

			other := kvemutest.Start(t, kvemu.Config{Kind: kvemu.KindManagedHSM})
			if _, err := kvemu.VerifyAttestation(att.CertificatePEMFile, att.PrivateKeyAttestation, other.AttestationRoots()); !errors.Is(err, kvemu.ErrAttestation) {
				t.Errorf("verify against another root = %v, want ErrAttestation", err)
			}
			tampered := bytes.Clone(att.PrivateKeyAttestation)
			tampered[len(tampered)/2] ^= 0x01
			if _, err := kvemu.VerifyAttestation(att.CertificatePEMFile, tampered, v.AttestationRoots()); !errors.Is(err, kvemu.ErrAttestation) {
				t.Errorf("verify a tampered attestation = %v, want ErrAttestation", err)
			}
		})
	}
	latest, err := c.GetKeyAttestation(ctx, "kek", "", nil) // the SDK sends /keys/kek/attestation
	if err != nil || *latest.Key.KID != azkeys.ID(kek.kid) || latest.Attributes.Attestation == nil {
		t.Errorf("GetKeyAttestation(kek, \"\") = %v, %v; want the latest version's attestation", latest.Key, err)
	}
	if !bytes.Contains(v.AttestationRootPEM(), []byte("BEGIN CERTIFICATE")) {
		t.Errorf("AttestationRootPEM is not a PEM certificate")
	}
}

func TestAttestationPremiumRefused(t *testing.T) {
	t.Parallel()
	v, c := start(t, kvemu.KindPremium)
	ctx := context.Background()
	resp, err := c.CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Client(t, noRetry).GetKeyAttestation(ctx, "k", resp.Key.KID.Version(), nil)
	wantAPIError(t, err, http.StatusBadRequest, kvemu.CodeBadParameter)
}
