package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/airgap-byok/airgap-byok/shared/secret"
)

// Options say how to reach and authenticate to Key Vault.
type Options struct {
	// CAFile is a PEM file of CA certificates trusted in addition to the system roots (for a
	// local Key Vault emulator).
	CAFile string
	// TokenFile holds a static bearer token on its first line. When set, azidentity is not
	// used and the SDK's check that the challenge's resource matches the vault's domain is
	// off (a local emulator has no Azure domain).
	TokenFile string
	// Credential, when set, is used instead of azidentity or TokenFile.
	Credential azcore.TokenCredential
	// RequestTimeout bounds each request; zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxConns is the number of connections kept open to the vault (the upload pool size).
	MaxConns int
	// Transport replaces the HTTP transport (dry runs and tests).
	Transport policy.Transporter
}

// staticToken is a TokenCredential holding one bearer token.
type staticToken struct{ token secret.Value }

// GetToken implements azcore.TokenCredential.
func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: s.token.Reveal(), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TokenFileError reports a --token-file that holds no bearer token.
type TokenFileError struct{ Err error }

func (e *TokenFileError) Error() string { return e.Err.Error() }
func (e *TokenFileError) Unwrap() error { return e.Err }

// CredentialError reports that no Azure credential could be found (no az login, no AZURE_*
// environment).
type CredentialError struct{ Err error }

func (e *CredentialError) Error() string { return "azure credential: " + e.Err.Error() }
func (e *CredentialError) Unwrap() error { return e.Err }

// CAFileError reports a --ca-file that cannot be read or holds no PEM certificate.
type CAFileError struct{ Err error }

func (e *CAFileError) Error() string { return e.Err.Error() }
func (e *CAFileError) Unwrap() error { return e.Err }

// markedCredential marks its credential's failures as credentialError.
type markedCredential struct{ azcore.TokenCredential }

// GetToken implements azcore.TokenCredential.
func (m markedCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := m.TokenCredential.GetToken(ctx, o)
	if err != nil && ctx.Err() == nil {
		err = &credentialError{err}
	}
	return tok, err
}

// credential returns the credential the options ask for.
func credential(o Options) (azcore.TokenCredential, error) {
	switch {
	case o.Credential != nil:
		return o.Credential, nil
	case o.TokenFile != "":
		tok, err := secret.Source{What: "Key Vault token", File: o.TokenFile}.Read()
		if err != nil {
			return nil, &TokenFileError{Err: err}
		}
		return staticToken{tok}, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, &CredentialError{Err: err}
	}
	return cred, nil
}

// httpTransport returns the HTTP client: system roots plus the CA file, TLS 1.2 or newer,
// and enough idle connections for a pool of concurrent uploads.
func httpTransport(o Options) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, &CAFileError{Err: fmt.Errorf("read --ca-file: %w", err)}
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &CAFileError{Err: errors.New("--ca-file holds no PEM certificate")}
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	conns := max(o.MaxConns, 2)
	tr.MaxIdleConnsPerHost = conns
	tr.MaxIdleConns = 2 * conns
	return &http.Client{Transport: tr}, nil
}

// newClient builds the azkeys client for a vault.
func newClient(vaultURL string, o Options) (keysAPI, error) {
	cred, err := credential(o)
	if err != nil {
		return nil, err
	}
	var opts azkeys.ClientOptions
	if o.Transport != nil {
		opts.Transport = boundedTransport{o.Transport}
	} else {
		hc, err := httpTransport(o)
		if err != nil {
			return nil, err
		}
		opts.Transport = boundedTransport{hc}
	}
	opts.Telemetry.ApplicationID = "byok-online"
	opts.DisableChallengeResourceVerification = o.TokenFile != "" || o.Credential != nil
	c, err := azkeys.NewClient(vaultURL, markedCredential{cred}, &opts)
	if err != nil {
		return nil, fmt.Errorf("key vault client for %s: %w", vaultURL, err)
	}
	return c, nil
}

// MaxAnswerBytes bounds the body of one Key Vault answer. Key Vault's largest answers, a
// page of 25 key versions with 15 long tags each, are a few hundred KiB; a longer body is
// refused as it is read, so that a hostile or broken endpoint cannot exhaust memory.
const MaxAnswerBytes = 4 << 20

// boundedTransport limits every response body to MaxAnswerBytes.
type boundedTransport struct{ next policy.Transporter }

// Do implements policy.Transporter. It also records the answer's status in the call's trace.
func (b boundedTransport) Do(req *http.Request) (*http.Response, error) {
	tr, _ := req.Context().Value(traceKey{}).(*trace)
	if tr != nil {
		tr.set(0)
	}
	resp, err := b.next.Do(req)
	if tr != nil && resp != nil {
		tr.set(resp.StatusCode)
	}
	if resp != nil && resp.Body != nil {
		resp.Body = &boundedBody{rc: resp.Body, left: MaxAnswerBytes}
	}
	return resp, err
}

// ErrAnswerTooLarge: Key Vault's answer is longer than MaxAnswerBytes.
var ErrAnswerTooLarge = fmt.Errorf("key vault's answer is longer than %d bytes", MaxAnswerBytes)

type boundedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrAnswerTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }
