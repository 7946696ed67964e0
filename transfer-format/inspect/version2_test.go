package inspect_test

import (
	"crypto"
	"encoding/json"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/inspect"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// A version 2 bundle renders its version, the toolset that wrote it and, for a policy, the
// allowed toolsets; its approvals verify in version 2's domain.
func TestVersion2Rendering(t *testing.T) {
	c, err := chaintest.New(chaintest.Config{Dir: t.TempDir(), Version: bundle.Version2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(c.Enroll())
	p := c.NewPolicy()
	p.AllowedToolsets = []string{chaintest.TestToolset.SHA256}
	pb, err := c.Append(bundle.ChainOffline, p)
	check(err)
	c.Policy, c.PolicyID = p, pb.ID()
	_, err = c.Approve(pb.ID(), bundle.KindPolicy, 0, 1)
	check(err)
	keys := map[bundle.ID]crypto.PublicKey{}
	for _, k := range []crypto.PublicKey{c.OfflineKey.Public(), c.OnlineKey.Public(), c.Custodians[0].Public(), c.Custodians[1].Public()} {
		keys[keyID(t, k)] = k
	}
	for _, b := range c.Written {
		r, err := inspect.Bundle(chaintest.Bytes(b), inspect.Options{Keys: keys})
		check(err)
		check(r.Err())
		out := r.JSON()
		checkJSON(t, out)
		var got struct {
			Header struct {
				Version uint16 `json:"version"`
			} `json:"header"`
			Payload struct {
				Toolset         *payload.Toolset `json:"toolset"`
				AllowedToolsets []string         `json:"allowed_toolsets"`
				Signatures      []struct {
					Verified bool `json:"verified"`
				} `json:"signatures"`
			} `json:"payload"`
		}
		check(json.Unmarshal(out, &got))
		if got.Header.Version != 2 || got.Payload.Toolset == nil || *got.Payload.Toolset != chaintest.TestToolset {
			t.Errorf("%s: version %d, toolset %+v; want 2 and %+v", b.Header.Kind, got.Header.Version, got.Payload.Toolset, chaintest.TestToolset)
		}
		switch b.Header.Kind {
		case bundle.KindPolicy:
			if len(got.Payload.AllowedToolsets) != 1 || got.Payload.AllowedToolsets[0] != chaintest.TestToolset.SHA256 {
				t.Errorf("policy: allowed toolsets %q", got.Payload.AllowedToolsets)
			}
		case bundle.KindApproval:
			if len(got.Payload.Signatures) != 2 || !got.Payload.Signatures[0].Verified || !got.Payload.Signatures[1].Verified {
				t.Errorf("approval: signatures %+v, want both verified", got.Payload.Signatures)
			}
		}
	}
}
