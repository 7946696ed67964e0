package kvemu_test

import (
	"context"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
)

func tagsOf(n int) map[string]*string {
	m := map[string]*string{}
	for i := range n {
		m[fmt.Sprintf("t%02d", i)] = to.Ptr("v")
	}
	return m
}

// TestTagLimit: Key Vault allows 15 tags on a key version; a 16th is refused with its 400
// BadParameter answer, on creation, import and update alike, and nothing is stored.
func TestTagLimit(t *testing.T) {
	t.Parallel()
	v := kvemutest.Start(t, kvemu.Config{})
	c := v.Client(t, noRetry)
	ctx := context.Background()
	p := ecHSM
	p.Tags = tagsOf(16)
	_, err := c.CreateKey(ctx, "sixteen", p, nil)
	re := wantAPIError(t, err, http.StatusBadRequest, kvemu.CodeBadParameter)
	if !strings.Contains(re.Error(), "Property has invalid value") {
		t.Errorf("error = %s", re.Error())
	}
	if n := versionCount(t, v.Server, "sixteen"); n != 0 {
		t.Errorf("a refused create stored %d versions", n)
	}
	p.Tags = tagsOf(15)
	if _, err := c.CreateKey(ctx, "fifteen", p, nil); err != nil {
		t.Fatalf("15 tags: %v", err)
	}
	_, err = c.UpdateKey(ctx, "fifteen", "", azkeys.UpdateKeyParameters{Tags: tagsOf(16)}, nil)
	wantAPIError(t, err, http.StatusBadRequest, kvemu.CodeBadParameter)

	k := createKEK(t, v.Client(t, nil), "kek", 2048)
	tg := ecTarget(t, elliptic.P256(), "P-256")
	jwk := &azkeys.JSONWebKey{Kty: &tg.kty, Crv: (*azkeys.CurveName)(&tg.crv), T: k.wrap(t, tg.der)}
	_, err = c.ImportKey(ctx, "target", azkeys.ImportKeyParameters{Key: jwk, Tags: tagsOf(16)}, nil)
	wantAPIError(t, err, http.StatusBadRequest, kvemu.CodeBadParameter)
	if n := versionCount(t, v.Server, "target"); n != 0 {
		t.Errorf("a refused import stored %d versions", n)
	}
	if st := v.Stats(); st.ImportsRefused != 1 || st.Imports != 0 {
		t.Errorf("imports %d, refused %d; want 0 and 1", st.Imports, st.ImportsRefused)
	}
	if _, err := c.ImportKey(ctx, "target", azkeys.ImportKeyParameters{Key: jwk, Tags: tagsOf(15)}, nil); err != nil {
		t.Fatalf("import with 15 tags: %v", err)
	}
}

// TestLies: a lie changes the answer, not what the vault holds.
func TestLies(t *testing.T) {
	t.Parallel()
	v := kvemutest.Start(t, kvemu.Config{})
	c := v.Client(t, noRetry)
	ctx := context.Background()
	p := ecHSM
	p.Tags = map[string]*string{"owner": to.Ptr("web")}
	if _, err := c.CreateKey(ctx, "k", p, nil); err != nil {
		t.Fatal(err)
	}
	lie := func(l kvemu.Lie) azkeys.KeyBundle {
		t.Helper()
		if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultLie, Method: "GET", Path: `^/keys/k/`, Lie: &l}); err != nil {
			t.Fatal(err)
		}
		r, err := c.GetKey(ctx, "k", "", nil)
		if err != nil {
			t.Fatalf("GetKey under %+v: %v", l, err)
		}
		return r.KeyBundle
	}
	truth, err := c.GetKey(ctx, "k", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	version := truth.Key.KID.Version()

	if got := string(*lie(kvemu.Lie{KIDVault: "https://other.vault.azure.net"}).Key.KID); got != "https://other.vault.azure.net/keys/k/"+version {
		t.Errorf("kid_vault: kid = %s", got)
	}
	if got := string(*lie(kvemu.Lie{KIDName: "someone-else"}).Key.KID); got != v.URL()+"/keys/someone-else/"+version {
		t.Errorf("kid_name: kid = %s", got)
	}
	b := lie(kvemu.Lie{Set: map[string]json.RawMessage{"key.kty": json.RawMessage(`"RSA-HSM"`), "attributes.created": json.RawMessage(`0`),
		"key.key_ops": json.RawMessage(`["sign"]`), "attributes.enabled": json.RawMessage(`false`)}})
	if *b.Key.Kty != azkeys.KeyTypeRSAHSM || !b.Attributes.Created.Equal(time.Unix(0, 0)) || len(b.Key.KeyOps) != 1 || *b.Attributes.Enabled {
		t.Errorf("set: kty %s, created %v, key_ops %d, enabled %v", *b.Key.Kty, b.Attributes.Created, len(b.Key.KeyOps), *b.Attributes.Enabled)
	}
	if b := lie(kvemu.Lie{ExtraTags: 15}); len(b.Tags) != 16 || b.Tags["owner"] == nil {
		t.Errorf("extra_tags: %d tags, want 16 with the real one", len(b.Tags))
	}
	// Malformed and oversized answers.
	if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultLie, Method: "GET", Lie: &kvemu.Lie{Body: "{not json"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetKey(ctx, "k", "", nil); err == nil {
		t.Error("GetKey of a malformed answer succeeded")
	}
	if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultLie, Method: "GET", Lie: &kvemu.Lie{BodyBytes: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	if r, err := c.GetKey(ctx, "k", "", nil); err != nil || r.Key == nil {
		t.Fatalf("GetKey of a padded answer: %v", err)
	}
	// A lie in a list changes every entry.
	if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultLie, Method: "GET", Path: `/versions$`, Lie: &kvemu.Lie{KIDVault: "https://evil.example", Set: map[string]json.RawMessage{"key.tags": json.RawMessage(`{}`)}}}); err != nil {
		t.Fatal(err)
	}
	page, err := c.NewListKeyPropertiesVersionsPager("k", nil).NextPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Value) != 1 || !strings.HasPrefix(string(*page.Value[0].KID), "https://evil.example/keys/k/") || len(page.Value[0].Tags) != 0 {
		t.Errorf("list entry after a lie: %s, %d tags", *page.Value[0].KID, len(page.Value[0].Tags))
	}
	// The vault itself was never changed.
	after, err := c.GetKey(ctx, "k", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *after.Key.KID != *truth.Key.KID || *after.Key.Kty != azkeys.KeyTypeECHSM || len(after.Tags) != 1 || !*after.Attributes.Enabled {
		t.Errorf("the lies changed the vault: %+v", after.KeyBundle)
	}
	for _, bad := range []kvemu.Fault{
		{Kind: kvemu.FaultLie},
		{Kind: kvemu.FaultLie, Lie: &kvemu.Lie{ExtraTags: -1}},
		{Kind: kvemu.FaultLie, Lie: &kvemu.Lie{Set: map[string]json.RawMessage{"key.": json.RawMessage(`1`)}}},
		{Kind: kvemu.FaultLateCommit},
	} {
		if err := v.InjectFault(bad); err == nil {
			t.Errorf("InjectFault(%+v) succeeded, want an error", bad)
		}
	}
}

// TestLateCommit: the request is held before it runs, so a client that gave up and looks
// at once finds nothing; the write lands later.
func TestLateCommit(t *testing.T) {
	t.Parallel()
	v := kvemutest.Start(t, kvemu.Config{})
	k := createKEK(t, v.Client(t, nil), "kek", 2048)
	tg := ecTarget(t, elliptic.P256(), "P-256")
	if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultLateCommit, Delay: 2 * time.Second, Method: "PUT", Path: `^/keys/target$`}); err != nil {
		t.Fatal(err)
	}
	c := v.Client(t, noRetry)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	jwk := &azkeys.JSONWebKey{Kty: &tg.kty, Crv: (*azkeys.CurveName)(&tg.crv), T: k.wrap(t, tg.der)}
	_, err := c.ImportKey(ctx, "target", azkeys.ImportKeyParameters{Key: jwk}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ImportKey error = %v, want the client's deadline", err)
	}
	if n := versionCount(t, v.Server, "target"); n != 0 {
		t.Fatalf("versions right after the client gave up = %d, want 0", n)
	}
	// The commit lands later (polled, with a generous bound).
	deadline := time.Now().Add(30 * time.Second)
	for versionCount(t, v.Server, "target") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the late commit never landed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := v.Stats(); st.Imports != 1 || st.Faults != 1 {
		t.Errorf("imports %d, faults %d; want 1 and 1", st.Imports, st.Faults)
	}
}

// TestLateCommitDroppedOnClose: a late commit still held when the vault closes never lands,
// and does not hold Close up.
func TestLateCommitDroppedOnClose(t *testing.T) {
	t.Parallel()
	v := kvemutest.Start(t, kvemu.Config{})
	c := v.Client(t, noRetry)
	if err := v.InjectFault(kvemu.Fault{Kind: kvemu.FaultLateCommit, Delay: time.Hour, Method: "POST"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.CreateKey(context.Background(), "k", ecHSM, nil)
		done <- err
	}()
	for v.Stats().Faults == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Error("CreateKey succeeded although its request was dropped")
	}
	if st := v.Stats(); st.Creates != 0 {
		t.Errorf("creates = %d, want 0", st.Creates)
	}
}

// TestFaultJSON: faults travel to the admin endpoint as JSON, a lie and a delay included.
func TestFaultJSON(t *testing.T) {
	t.Parallel()
	in := kvemu.Fault{Kind: kvemu.FaultLie, Method: "PUT", Count: 2, Lie: &kvemu.Lie{KIDVault: "https://other.vault.azure.net", ExtraTags: 1,
		Set: map[string]json.RawMessage{"attributes.created": json.RawMessage(`-1`)}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out kvemu.Fault
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Kind != in.Kind || out.Lie == nil || out.Lie.KIDVault != in.Lie.KIDVault || out.Lie.ExtraTags != 1 || string(out.Lie.Set["attributes.created"]) != "-1" {
		t.Errorf("round trip of %s = %+v", b, out)
	}
	late := kvemu.Fault{Kind: kvemu.FaultLateCommit, Delay: 4 * time.Second}
	if b, err = json.Marshal(late); err != nil || !strings.Contains(string(b), `"delay":"4s"`) {
		t.Errorf("late commit as JSON = %s, %v", b, err)
	}
}
