package kvemu_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
)

var versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestCreateKEKAndReadBack(t *testing.T) {
	t.Parallel()
	v, c := start(t, kvemu.KindPremium)
	ctx := context.Background()
	exp := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	created, err := c.CreateKey(ctx, "kek", azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr[int32](3072),
		KeyOps:        []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)},
		KeyAttributes: &azkeys.KeyAttributes{Expires: &exp},
		Tags:          map[string]*string{"purpose": to.Ptr("byok")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kid := created.Key.KID
	if !versionRE.MatchString(kid.Version()) || kid.Name() != "kek" || !strings.HasPrefix(string(*kid), v.URL()+"/keys/kek/") {
		t.Fatalf("kid = %s, want %s/keys/kek/<32 hex>", *kid, v.URL())
	}
	for _, version := range []string{kid.Version(), ""} { // "" sends /keys/kek/ (trailing slash)
		got, err := c.GetKey(ctx, "kek", version, nil)
		if err != nil {
			t.Fatalf("GetKey(kek, %q): %v", version, err)
		}
		k := got.Key
		if *k.KID != *kid || *k.Kty != azkeys.KeyTypeRSAHSM || len(k.N) != 384 ||
			new(big.Int).SetBytes(k.E).Int64() != 65537 {
			t.Errorf("GetKey(kek, %q) = kid %s kty %s |n| %d, want %s RSA-HSM 384", version, *k.KID, *k.Kty, len(k.N), *kid)
		}
		if len(k.KeyOps) != 1 || *k.KeyOps[0] != azkeys.KeyOperationImport {
			t.Errorf("key_ops = %v, want [import]", deref(k.KeyOps))
		}
		a := got.Attributes
		if !*a.Enabled || !a.Expires.Equal(exp) || a.Created == nil || a.Updated == nil ||
			*a.RecoveryLevel != "Recoverable+Purgeable" {
			t.Errorf("attributes = enabled %v exp %v created %v recovery %v; want true %v set Recoverable+Purgeable",
				*a.Enabled, a.Expires, a.Created, *a.RecoveryLevel, exp)
		}
		if got.Tags["purpose"] == nil || *got.Tags["purpose"] != "byok" {
			t.Errorf("tags = %v, want purpose=byok", got.Tags)
		}
		if !slices.Equal(got.Key.N, created.Key.N) {
			t.Errorf("GetKey returned another modulus than CreateKey")
		}
	}
	vs, err := v.KeyVersions("kek")
	if err != nil || len(vs) != 1 || vs[0].Imported || !slices.Equal(vs[0].KeyOps, []string{"import"}) {
		t.Errorf("KeyVersions(kek) = %+v, %v; want one generated import-only version", vs, err)
	}
}

func deref[T any](ps []*T) []T {
	var out []T
	for _, p := range ps {
		out = append(out, *p)
	}
	return out
}

func ops(names ...azkeys.KeyOperation) []*azkeys.KeyOperation {
	var out []*azkeys.KeyOperation
	for _, n := range names {
		out = append(out, to.Ptr(n))
	}
	return out
}

func TestCreateKeyRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		kind  kvemu.Kind
		key   string
		param azkeys.CreateKeyParameters
	}{
		{"import with sign", kvemu.KindPremium, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM),
			KeySize: to.Ptr[int32](2048), KeyOps: ops(azkeys.KeyOperationImport, azkeys.KeyOperationSign)}},
		{"import with wrapKey on managed HSM", kvemu.KindManagedHSM, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM),
			KeySize: to.Ptr[int32](2048), KeyOps: ops(azkeys.KeyOperationWrapKey, azkeys.KeyOperationImport)}},
		{"import on EC-HSM", kvemu.KindPremium, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM),
			KeyOps: ops(azkeys.KeyOperationImport)}},
		{"import on software RSA", kvemu.KindPremium, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA),
			KeyOps: ops(azkeys.KeyOperationImport)}},
		{"unknown operation", kvemu.KindPremium, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM),
			KeyOps: ops("frobnicate")}},
		{"oct-HSM on premium", kvemu.KindPremium, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM),
			KeySize: to.Ptr[int32](256)}},
		{"software RSA on managed HSM", kvemu.KindManagedHSM, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}},
		{"RSA-1024", kvemu.KindPremium, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr[int32](1024)}},
		{"RSA-2000", kvemu.KindPremium, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr[int32](2000)}},
		{"unknown curve", kvemu.KindPremium, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM), Curve: to.Ptr(azkeys.CurveName("P-192"))}},
		{"AES-512", kvemu.KindManagedHSM, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr[int32](512)}},
		{"no kty", kvemu.KindPremium, "k", azkeys.CreateKeyParameters{}},
		{"public exponent 3", kvemu.KindPremium, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), PublicExponent: to.Ptr[int32](3)}},
		{"exportable without release policy", kvemu.KindPremium, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM),
			KeyAttributes: &azkeys.KeyAttributes{Exportable: to.Ptr(true)}}},
		{"name with underscore", kvemu.KindPremium, "bad_name", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM)}},
	}
	vaults := map[kvemu.Kind]*kvemutest.Vault{
		kvemu.KindPremium:    kvemutest.Start(t, kvemu.Config{Kind: kvemu.KindPremium}),
		kvemu.KindManagedHSM: kvemutest.Start(t, kvemu.Config{Kind: kvemu.KindManagedHSM}),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := vaults[tt.kind]
			_, err := v.Client(t, noRetry).CreateKey(context.Background(), tt.key, tt.param, nil)
			wantAPIError(t, err, http.StatusBadRequest, kvemu.CodeBadParameter)
			if n := versionCount(t, v.Server, tt.key); n != 0 {
				t.Errorf("%d versions stored, want 0", n)
			}
		})
	}
}

func TestCreateKeyTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind  kvemu.Kind
		kty   azkeys.KeyType
		size  int32
		crv   azkeys.CurveName
		nLen  int // RSA modulus bytes
		cLen  int // EC coordinate bytes
		noPub bool
	}{
		{kind: kvemu.KindPremium, kty: azkeys.KeyTypeRSAHSM, size: 2048, nLen: 256},
		{kind: kvemu.KindManagedHSM, kty: azkeys.KeyTypeRSAHSM, size: 3072, nLen: 384},
		{kind: kvemu.KindPremium, kty: azkeys.KeyTypeRSA, size: 2048, nLen: 256},
		{kind: kvemu.KindPremium, kty: azkeys.KeyTypeECHSM, crv: azkeys.CurveNameP256, cLen: 32},
		{kind: kvemu.KindPremium, kty: azkeys.KeyTypeECHSM, crv: azkeys.CurveNameP384, cLen: 48},
		{kind: kvemu.KindManagedHSM, kty: azkeys.KeyTypeECHSM, crv: azkeys.CurveNameP521, cLen: 66},
		{kind: kvemu.KindPremium, kty: azkeys.KeyTypeECHSM, crv: azkeys.CurveNameP256K, cLen: 32},
		{kind: kvemu.KindManagedHSM, kty: azkeys.KeyTypeOctHSM, size: 128, noPub: true},
		{kind: kvemu.KindManagedHSM, kty: azkeys.KeyTypeOctHSM, size: 192, noPub: true},
		{kind: kvemu.KindManagedHSM, kty: azkeys.KeyTypeOctHSM, size: 256, noPub: true},
	}
	vaults := map[kvemu.Kind]*kvemutest.Vault{
		kvemu.KindPremium:    kvemutest.Start(t, kvemu.Config{Kind: kvemu.KindPremium, Limits: kvemu.Limits{Create: -1}}),
		kvemu.KindManagedHSM: kvemutest.Start(t, kvemu.Config{Kind: kvemu.KindManagedHSM, Limits: kvemu.Limits{Create: -1}}),
	}
	for _, tt := range tests {
		t.Run(string(tt.kind)+"/"+string(tt.kty)+"/"+string(tt.crv)+"/"+itoa(tt.size), func(t *testing.T) {
			v := vaults[tt.kind]
			p := azkeys.CreateKeyParameters{Kty: to.Ptr(tt.kty)}
			if tt.size != 0 {
				p.KeySize = to.Ptr(tt.size)
			}
			if tt.crv != "" {
				p.Curve = to.Ptr(tt.crv)
			}
			resp, err := v.Client(t, nil).CreateKey(context.Background(), "k", p, nil)
			if err != nil {
				t.Fatal(err)
			}
			k := resp.Key
			if *k.Kty != tt.kty || len(k.N) != tt.nLen || len(k.X) != tt.cLen || len(k.Y) != tt.cLen || len(k.K) != 0 || len(k.D) != 0 {
				t.Fatalf("key = kty %s |n| %d |x| %d |y| %d |k| %d |d| %d; want %s %d %d %d 0 0",
					*k.Kty, len(k.N), len(k.X), len(k.Y), len(k.K), len(k.D), tt.kty, tt.nLen, tt.cLen, tt.cLen)
			}
			if tt.crv != "" {
				if *k.Crv != tt.crv {
					t.Errorf("crv = %s, want %s", *k.Crv, tt.crv)
				}
				if !onCurve(tt.crv, k.X, k.Y) {
					t.Errorf("public point is not on %s", tt.crv)
				}
			}
			if len(k.KeyOps) == 0 {
				t.Errorf("no default key_ops")
			}
		})
	}
}

func itoa(n int32) string { return big.NewInt(int64(n)).String() }

// onCurve reports whether (x, y) is on the named curve.
func onCurve(crv azkeys.CurveName, x, y []byte) bool {
	if crv == azkeys.CurveNameP256K {
		p, _ := new(big.Int).SetString("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f", 16)
		X, Y := new(big.Int).SetBytes(x), new(big.Int).SetBytes(y)
		l := new(big.Int).Exp(Y, big.NewInt(2), p)
		r := new(big.Int).Exp(X, big.NewInt(3), p)
		r.Add(r, big.NewInt(7)).Mod(r, p)
		return l.Cmp(r) == 0
	}
	c := map[azkeys.CurveName]elliptic.Curve{azkeys.CurveNameP256: elliptic.P256(),
		azkeys.CurveNameP384: elliptic.P384(), azkeys.CurveNameP521: elliptic.P521()}[crv]
	_, err := ecdsa.ParseUncompressedPublicKey(c, append(append([]byte{4}, x...), y...))
	return err == nil
}

// addQuery is a pipeline policy that adds a query parameter to every request, to send
// maxresults, which azkeys cannot.
type addQuery struct{ key, value string }

func (p addQuery) Do(req *policy.Request) (*http.Response, error) {
	q := req.Raw().URL.Query()
	if q.Get(p.key) == "" {
		q.Set(p.key, p.value)
		req.Raw().URL.RawQuery = q.Encode()
	}
	return req.Next()
}

func TestListVersionsPaging(t *testing.T) {
	t.Parallel()
	v := kvemutest.Start(t, kvemu.Config{PageSize: 2})
	c := v.Client(t, nil)
	ctx := context.Background()
	var want []string
	for range 5 {
		resp, err := c.CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, string(*resp.Key.KID))
	}
	tests := []struct {
		name      string
		opts      *azkeys.ClientOptions
		wantPages int
	}{
		{"default page size", nil, 3},
		{"maxresults 4", &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{
			PerCallPolicies: []policy.Policy{addQuery{"maxresults", "4"}}}}, 2},
		{"maxresults 1", &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{
			PerCallPolicies: []policy.Policy{addQuery{"maxresults", "1"}}}}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pager := v.Client(t, tt.opts).NewListKeyPropertiesVersionsPager("k", nil)
			var got []string
			pages := 0
			for pager.More() {
				page, err := pager.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, item := range page.Value {
					got = append(got, string(*item.KID))
					if item.Attributes == nil || item.Attributes.Enabled == nil || !*item.Attributes.Enabled {
						t.Errorf("item %s has no enabled attribute", *item.KID)
					}
				}
			}
			if !slices.Equal(got, want) || pages != tt.wantPages {
				t.Errorf("versions = %v in %d pages, want %v in %d", got, pages, want, tt.wantPages)
			}
		})
	}

	t.Run("maxresults 26 refused", func(t *testing.T) {
		c := v.Client(t, &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{
			PerCallPolicies: []policy.Policy{addQuery{"maxresults", "26"}}, Retry: policy.RetryOptions{MaxRetries: -1}}})
		_, err := c.NewListKeyPropertiesVersionsPager("k", nil).NextPage(ctx)
		wantAPIError(t, err, http.StatusBadRequest, kvemu.CodeBadParameter)
	})
	t.Run("unknown key", func(t *testing.T) {
		_, err := c.NewListKeyPropertiesVersionsPager("nope", nil).NextPage(ctx)
		wantAPIError(t, err, http.StatusNotFound, kvemu.CodeKeyNotFound)
	})
}

func TestListKeys(t *testing.T) {
	t.Parallel()
	v := kvemutest.Start(t, kvemu.Config{PageSize: 2})
	c := v.Client(t, nil)
	ctx := context.Background()
	for _, name := range []string{"charlie", "alpha", "bravo"} {
		for range 2 {
			if _, err := c.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM)}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []string
	pager := c.NewListKeyPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range page.Value {
			got = append(got, string(*item.KID))
		}
	}
	want := []string{v.URL() + "/keys/alpha", v.URL() + "/keys/bravo", v.URL() + "/keys/charlie"}
	if !slices.Equal(got, want) {
		t.Errorf("keys = %v, want %v (one unversioned kid per key)", got, want)
	}
}

func TestUpdateKey(t *testing.T) {
	t.Parallel()
	v, c := start(t, kvemu.KindPremium)
	ctx := context.Background()
	created, err := c.CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ver := created.Key.KID.Version()
	upd, err := c.UpdateKey(ctx, "k", ver, azkeys.UpdateKeyParameters{
		KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)},
		Tags:          map[string]*string{"bundle": to.Ptr("abc")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *upd.Attributes.Enabled || *upd.Tags["bundle"] != "abc" {
		t.Errorf("UpdateKey = enabled %v tags %v, want false bundle=abc", *upd.Attributes.Enabled, upd.Tags)
	}
	_, err = v.Client(t, noRetry).GetKey(ctx, "k", ver, nil)
	wantAPIError(t, err, http.StatusForbidden, kvemu.CodeForbidden)

	if _, err := c.UpdateKey(ctx, "k", "", azkeys.UpdateKeyParameters{ // PATCH /keys/k/
		KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetKey(ctx, "k", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Tags["bundle"] != "abc" || !*got.Attributes.Enabled {
		t.Errorf("after re-enable: tags %v enabled %v, want bundle=abc true", got.Tags, *got.Attributes.Enabled)
	}

	k := createKEK(t, c, "kek", 2048)
	_, err = v.Client(t, noRetry).UpdateKey(ctx, "kek", "", azkeys.UpdateKeyParameters{
		KeyOps: ops(azkeys.KeyOperationImport, azkeys.KeyOperationSign)}, nil)
	wantAPIError(t, err, http.StatusBadRequest, kvemu.CodeBadParameter)
	vs, _ := v.KeyVersions("kek")
	if !slices.Equal(vs[0].KeyOps, []string{"import"}) || vs[0].KID != k.kid {
		t.Errorf("KEK after refused update = %+v, want unchanged import-only", vs[0])
	}
}

func TestDeleteRecoverPurge(t *testing.T) {
	t.Parallel()
	v, c := start(t, kvemu.KindPremium)
	nr := v.Client(t, noRetry)
	ctx := context.Background()
	ec := azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM)}
	if _, err := c.CreateKey(ctx, "k", ec, nil); err != nil {
		t.Fatal(err)
	}
	del, err := c.DeleteKey(ctx, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *del.RecoveryID != v.URL()+"/deletedkeys/k" || del.DeletedDate == nil || del.ScheduledPurgeDate == nil {
		t.Errorf("DeleteKey = recovery %v deleted %v purge %v", *del.RecoveryID, del.DeletedDate, del.ScheduledPurgeDate)
	}
	_, err = nr.GetKey(ctx, "k", "", nil)
	wantAPIError(t, err, http.StatusNotFound, kvemu.CodeKeyNotFound)
	_, err = nr.CreateKey(ctx, "k", ec, nil)
	wantAPIError(t, err, http.StatusConflict, kvemu.CodeConflict)
	if _, err := c.GetDeletedKey(ctx, "k", nil); err != nil {
		t.Errorf("GetDeletedKey: %v", err)
	}
	page, err := c.NewListDeletedKeyPropertiesPager(nil).NextPage(ctx)
	if err != nil || len(page.Value) != 1 || *page.Value[0].RecoveryID != v.URL()+"/deletedkeys/k" {
		t.Errorf("ListDeletedKeyProperties = %v, %v; want the deleted key", page.Value, err)
	}
	if _, err := c.RecoverDeletedKey(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetKey(ctx, "k", "", nil); err != nil {
		t.Errorf("GetKey after recover: %v", err)
	}
	if _, err := c.DeleteKey(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedKey(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	_, err = nr.GetDeletedKey(ctx, "k", nil)
	wantAPIError(t, err, http.StatusNotFound, kvemu.CodeKeyNotFound)
	if _, err := c.CreateKey(ctx, "k", ec, nil); err != nil {
		t.Fatalf("CreateKey after purge: %v", err)
	}
	if n := versionCount(t, v.Server, "k"); n != 1 {
		t.Errorf("versions after purge and create = %d, want 1", n)
	}
}
