package vault

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// keysAPI is the part of *azkeys.Client byok-online uses.
type keysAPI interface {
	CreateKey(ctx context.Context, name string, parameters azkeys.CreateKeyParameters, options *azkeys.CreateKeyOptions) (azkeys.CreateKeyResponse, error)
	GetKey(ctx context.Context, name string, version string, options *azkeys.GetKeyOptions) (azkeys.GetKeyResponse, error)
	ImportKey(ctx context.Context, name string, parameters azkeys.ImportKeyParameters, options *azkeys.ImportKeyOptions) (azkeys.ImportKeyResponse, error)
	NewListKeyPropertiesVersionsPager(name string, options *azkeys.ListKeyPropertiesVersionsOptions) *runtime.Pager[azkeys.ListKeyPropertiesVersionsResponse]
	GetKeyAttestation(ctx context.Context, name string, version string, options *azkeys.GetKeyAttestationOptions) (azkeys.GetKeyAttestationResponse, error)
}

var _ keysAPI = (*azkeys.Client)(nil)

// DefaultRequestTimeout bounds one request when Options.RequestTimeout is zero.
const DefaultRequestTimeout = 60 * time.Second

// Azure is a Vault backed by azkeys. Its zero value is not usable; call NewAzure.
type Azure struct {
	url     string
	opts    Options
	timeout time.Duration

	once sync.Once
	api  keysAPI
	err  error
	// newAPI builds the client; tests replace it.
	newAPI func() (keysAPI, error)
}

// NewAzure returns the vault at vaultURL. It does nothing else: the credential and the
// client are built on the first call.
func NewAzure(vaultURL string, o Options) *Azure {
	a := &Azure{url: vaultURL, opts: o, timeout: o.RequestTimeout}
	if a.timeout <= 0 {
		a.timeout = DefaultRequestTimeout
	}
	a.newAPI = func() (keysAPI, error) { return newClient(vaultURL, o) }
	return a
}

// URL implements Vault.
func (a *Azure) URL() string { return a.url }

func (a *Azure) client() (keysAPI, error) {
	a.once.Do(func() { a.api, a.err = a.newAPI() })
	return a.api, a.err
}

// noRetry turns the SDK's retry policy off for one call: every retry is the caller's.
func noRetry(ctx context.Context) context.Context {
	return policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1})
}

// call runs one request with the per-request timeout and translates its failure.
func (a *Azure) call(ctx context.Context, op string, f func(ctx context.Context, api keysAPI) error) error {
	api, err := a.client()
	if err != nil {
		return err
	}
	tr := &trace{}
	cctx, cancel := context.WithTimeout(context.WithValue(noRetry(ctx), traceKey{}, tr), a.timeout)
	defer cancel()
	err = f(cctx, api)
	if err == nil {
		return nil
	}
	return a.translate(ctx, cctx, op, err, tr.status())
}

// trace records, for one call, the status of the answer to its last request (0 while that
// request has none), so that a failure can be told to have happened before anything was sent.
type trace struct {
	mu   sync.Mutex
	last int
}

type traceKey struct{}

func (t *trace) set(status int) {
	t.mu.Lock()
	t.last = status
	t.mu.Unlock()
}

func (t *trace) status() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// translate turns an azkeys failure into an *Error (or the caller's context error).
func (a *Azure) translate(parent, cctx context.Context, op string, err error, lastStatus int) error {
	if cerr := contextErr(parent, err); cerr != nil {
		return cerr
	}
	e := &Error{Op: op, Vault: a.url}
	var re *azcore.ResponseError
	switch {
	case errors.As(err, &re):
		e.Status, e.Code, e.Kind = re.StatusCode, re.ErrorCode, statusKind(re.StatusCode)
		if re.RawResponse != nil {
			e.Message = errorMessage(re.RawResponse)
			if e.Kind == ErrThrottled || e.Kind == ErrServer {
				e.RetryAfter = parseRetryAfter(re.RawResponse.Header, time.Now())
			}
		}
	case cctx.Err() != nil:
		e.Kind, e.Err = ErrTransport, fmt.Errorf("no response within %s", a.timeout)
	default:
		e.Kind, e.Err = transportKind(err, lastStatus), err
	}
	return e
}

// errorMessage returns Key Vault's error message from an error body
// {"error":{"code":"...","message":"..."}}, bounded in length.
func errorMessage(resp *http.Response) string {
	body, err := runtime.Payload(resp)
	if err != nil || len(body) == 0 {
		return ""
	}
	var eb struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &eb) != nil {
		return ""
	}
	m := eb.Error.Message
	if len(m) > 512 {
		m = m[:512] + "..."
	}
	return m
}

// CreateKey implements Vault.
func (a *Azure) CreateKey(ctx context.Context, name string, p CreateParams) (*Key, error) {
	params := azkeys.CreateKeyParameters{
		Kty:           to.Ptr(azkeys.KeyType(p.Kty)),
		KeyOps:        keyOps(p.KeyOps),
		Tags:          tags(p.Tags),
		KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)},
	}
	if p.Size > 0 {
		params.KeySize = to.Ptr(int32(p.Size))
	}
	if !p.Expires.IsZero() {
		params.KeyAttributes.Expires = to.Ptr(p.Expires.UTC())
	}
	var kb azkeys.KeyBundle
	err := a.call(ctx, "create key "+name, func(ctx context.Context, api keysAPI) error {
		r, err := api.CreateKey(ctx, name, params, nil)
		kb = r.KeyBundle
		return err
	})
	if err != nil {
		return nil, err
	}
	return keyOf(kb)
}

// GetKey implements Vault.
func (a *Azure) GetKey(ctx context.Context, name, version string) (*Key, error) {
	var kb azkeys.KeyBundle
	err := a.call(ctx, "get key "+name, func(ctx context.Context, api keysAPI) error {
		r, err := api.GetKey(ctx, name, version, nil)
		kb = r.KeyBundle
		return err
	})
	if err != nil {
		return nil, err
	}
	return keyOf(kb)
}

// importParams returns the azkeys parameters of an import.
func importParams(p ImportParams) azkeys.ImportKeyParameters {
	jwk := &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyType(p.Kty)), KeyOps: keyOps(p.KeyOps), T: p.BYOK}
	if p.Curve != "" {
		jwk.Crv = to.Ptr(azkeys.CurveName(p.Curve))
	}
	attrs := &azkeys.KeyAttributes{Enabled: to.Ptr(p.Enabled)}
	if !p.NotBefore.IsZero() {
		attrs.NotBefore = to.Ptr(p.NotBefore.UTC())
	}
	if !p.Expires.IsZero() {
		attrs.Expires = to.Ptr(p.Expires.UTC())
	}
	return azkeys.ImportKeyParameters{Key: jwk, HSM: to.Ptr(true), KeyAttributes: attrs, Tags: tags(p.Tags)}
}

// ImportKey implements Vault. It sends one PUT: the SDK's retries are off, because a PUT
// retried after a lost response imports a second version.
func (a *Azure) ImportKey(ctx context.Context, name string, p ImportParams) (*Key, error) {
	params := importParams(p)
	var kb azkeys.KeyBundle
	err := a.call(ctx, "import key "+name, func(ctx context.Context, api keysAPI) error {
		r, err := api.ImportKey(ctx, name, params, nil)
		kb = r.KeyBundle
		return err
	})
	if err != nil {
		return nil, err
	}
	return keyOf(kb)
}

// KeyVersions implements Vault. Each page is one request (azkeys v1.5.0 cannot ask for a
// page size, so Key Vault's default of 25 applies).
func (a *Azure) KeyVersions(ctx context.Context, name string) ([]Version, error) {
	api, err := a.client()
	if err != nil {
		return nil, err
	}
	pager := api.NewListKeyPropertiesVersionsPager(name, nil)
	var out []Version
	for pager.More() {
		var page azkeys.ListKeyPropertiesVersionsResponse
		err := a.call(ctx, "list versions of "+name, func(ctx context.Context, _ keysAPI) error {
			var err error
			page, err = pager.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, kp := range page.Value {
			if kp == nil || kp.KID == nil {
				continue
			}
			v := Version{KID: string(*kp.KID), Version: kp.KID.Version(), Tags: untags(kp.Tags)}
			if at := kp.Attributes; at != nil {
				v.Enabled = at.Enabled != nil && *at.Enabled
				if at.Created != nil {
					v.Created = *at.Created
				}
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// KeyAttestation implements Vault.
func (a *Azure) KeyAttestation(ctx context.Context, name, version string) (*Attestation, error) {
	var kb azkeys.KeyBundle
	err := a.call(ctx, "get attestation of "+name, func(ctx context.Context, api keysAPI) error {
		r, err := api.GetKeyAttestation(ctx, name, version, nil)
		kb = r.KeyBundle
		return err
	})
	if err != nil {
		return nil, err
	}
	if kb.Attributes == nil || kb.Attributes.Attestation == nil {
		return nil, fmt.Errorf("key vault %s: key %s has no attestation", a.url, name)
	}
	at := kb.Attributes.Attestation
	out := &Attestation{CertificatePEM: at.CertificatePEMFile, PrivateKey: at.PrivateKeyAttestation, PublicKey: at.PublicKeyAttestation}
	if at.Version != nil {
		out.Version = *at.Version
	}
	return out, nil
}

func keyOps(ops []string) []*azkeys.KeyOperation {
	if len(ops) == 0 {
		return nil
	}
	out := make([]*azkeys.KeyOperation, len(ops))
	for i, op := range ops {
		out[i] = to.Ptr(azkeys.KeyOperation(op))
	}
	return out
}

func tags(m map[string]string) map[string]*string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]*string, len(m))
	for k, v := range m {
		out[k] = to.Ptr(v)
	}
	return out
}

func untags(m map[string]*string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

var curves = map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}

// keyOf converts a key bundle. A public key Key Vault sent that does not parse, or a bundle
// without a key, is reported in Key.PublicErr: the caller must never mistake it for "no
// key", and still sees everything else the answer claims (package upload tells the
// operator what the vault holds).
func keyOf(kb azkeys.KeyBundle) (*Key, error) {
	k := &Key{Tags: untags(kb.Tags)}
	if at := kb.Attributes; at != nil {
		k.Enabled = at.Enabled != nil && *at.Enabled
		if at.NotBefore != nil {
			k.NotBefore = *at.NotBefore
		}
		if at.Expires != nil {
			k.Expires = *at.Expires
		}
		if at.Created != nil {
			k.Created = *at.Created
		}
	}
	j := kb.Key
	if j == nil {
		k.PublicErr = errors.New("key vault returned no key")
		return k, nil
	}
	if j.KID != nil {
		k.KID = string(*j.KID)
	}
	if j.Kty != nil {
		k.Kty = string(*j.Kty)
	}
	if j.Crv != nil {
		k.Curve = string(*j.Crv)
	}
	for _, op := range j.KeyOps {
		if op != nil {
			k.KeyOps = append(k.KeyOps, string(*op))
		}
	}
	k.N, k.E = j.N, j.E
	pub, err := publicKey(k.Kty, k.Curve, j)
	if err != nil {
		k.PublicErr = err
		return k, nil
	}
	k.Public = pub
	if r, ok := pub.(*rsa.PublicKey); ok {
		k.Size = r.N.BitLen()
	}
	return k, nil
}

func publicKey(kty, crv string, j *azkeys.JSONWebKey) (crypto.PublicKey, error) {
	switch kty {
	case "RSA", "RSA-HSM":
		if len(j.N) == 0 || len(j.E) == 0 {
			return nil, nil
		}
		e := new(big.Int).SetBytes(j.E)
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
			return nil, errors.New("RSA public exponent out of range")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(j.N), E: int(e.Int64())}, nil
	case "EC", "EC-HSM":
		if len(j.X) == 0 || len(j.Y) == 0 {
			return nil, nil
		}
		c, ok := curves[crv]
		if !ok {
			return nil, fmt.Errorf("unsupported curve %q", crv)
		}
		size := (c.Params().BitSize + 7) / 8
		if len(j.X) > size || len(j.Y) > size {
			return nil, errors.New("EC coordinates longer than the curve")
		}
		raw := make([]byte, 1+2*size)
		raw[0] = 4
		copy(raw[1+size-len(j.X):1+size], j.X)
		copy(raw[1+2*size-len(j.Y):], j.Y)
		pub, err := ecdsa.ParseUncompressedPublicKey(c, raw)
		if err != nil {
			return nil, fmt.Errorf("EC public key: %v", err)
		}
		return pub, nil
	}
	return nil, nil
}
