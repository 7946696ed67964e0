package payload_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// An empty list or map has one encoding: the member is left out. Neither null nor an empty
// literal is canonical, so two payloads that mean the same cannot have different digests.
func TestEmptyMembersHaveOneEncoding(t *testing.T) {
	p := &payload.KEKOffer{
		Vault: "https://v.vault.azure.net", KID: "https://v.vault.azure.net/keys/kek/1", Kty: "RSA-HSM", KeySize: 2048,
		KeyOps: []string{"import"}, N: append([]byte{0x80}, make([]byte, 255)...), E: []byte{1, 0, 1}, Expires: 1,
		Attestation: &payload.Attestation{Format: "azure-key-attestation/1", Data: []byte{1}},
	}
	canon, err := payload.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(canon), "certificates") {
		t.Fatalf("empty certificates encoded: %s", canon)
	}
	var back payload.KEKOffer
	if err := payload.Unmarshal(canon, &back); err != nil {
		t.Fatalf("canonical form refused: %v", err)
	}
	for _, alt := range []string{`"certificates":null}`, `"certificates":[]}`} {
		b := []byte(strings.Replace(string(canon), `"data":"AQ=="}`, `"data":"AQ==",`+alt, 1))
		var pe *bundle.ParseError
		if err := payload.Unmarshal(b, new(payload.KEKOffer)); !errors.As(err, &pe) {
			t.Errorf("Unmarshal(%s) = %v, want a ParseError", alt, err)
		}
	}
}
