//go:build azurelive

package integration_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TestOnlineAzureLive runs the online side of a ceremony against a real Azure Key Vault
// (Premium tier): init, trust, kek create, upload of an RSA-2048 and an EC P-256 key, verify.
// It needs the build tag azurelive and:
//
//	BYOK_LIVE_VAULT_URL   https://<name>.vault.azure.net (a Premium vault)
//	credentials for azidentity's default chain (az login, or AZURE_TENANT_ID,
//	AZURE_CLIENT_ID and AZURE_CLIENT_SECRET) with keys/create, get, import and list.
//
// It creates keys named byok-live-<time>-kek, -rsa and -ec, and leaves them in the vault
// (deleting is not part of byok-online); remove them afterwards.
//
//	cd integration && BYOK_LIVE_VAULT_URL=https://... go test -tags azurelive -run TestOnlineAzureLive -v .
func TestOnlineAzureLive(t *testing.T) {
	url := os.Getenv("BYOK_LIVE_VAULT_URL")
	if url == "" {
		t.Skip("set BYOK_LIVE_VAULT_URL and Azure credentials to run against a real vault")
	}
	url, err := payload.CanonicalVaultURL(url)
	if err != nil {
		t.Fatal(err)
	}
	bins := buildOnline(t, t.TempDir())
	r := newLiveRig(t, bins.plain, url, onlineRigConfig{KEKBits: 3072})
	prefix := fmt.Sprintf("byok-live-%d", time.Now().Unix())
	r.init()
	p := r.policy(nil)
	r.approve(p.ID(), bundle.KindPolicy, 0, 1)
	r.must(0, "trust", "--fingerprint", p.ID().Short())
	r.must(0, "kek", "create", "--vault", url, "--name", prefix+"-kek", "--size", "3072", "--expires", "24h")
	r.takeOffer()
	pkgs := []*bundle.Bundle{r.pkg(payload.RSA2048, prefix+"-rsa"), r.pkg(payload.ECP256, prefix+"-ec")}
	res := r.must(0, "upload")
	t.Log(res.stdout)
	rcs := r.receipts()
	for _, b := range pkgs {
		got := rcs[b.ID()]
		if len(got) != 1 || got[0].Outcome != payload.OutcomeImported || !strings.HasPrefix(got[0].KID, url+"/keys/") {
			t.Errorf("package %s: receipts %+v, want one imported", b.ID().Short(), got)
		}
	}
	r.must(0, "verify")
	t.Logf("created keys %s-kek, %s-rsa and %s-ec in %s: delete them when done", prefix, prefix, prefix, url)
}
