// Package kvemutest starts the Key Vault emulator (package kvemu) inside a test and builds
// unmodified azkeys clients for it.
//
// A client built by Client trusts the emulator's TLS CA, disables the challenge resource
// check (the emulator's host is 127.0.0.1, not *.vault.azure.net) and authenticates with a
// static token, so the SDK's whole pipeline (challenge flow, retries, Retry-After) runs as
// against Azure.
package kvemutest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/shared/secret"
)

// Credential is an azcore.TokenCredential that always returns Token. Its token formats as
// "[redacted]".
type Credential struct {
	Token secret.Value
}

// GetToken implements azcore.TokenCredential.
func (c Credential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: c.Token.Reveal(), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Vault is an emulator started for one test, with the token clients must use.
type Vault struct {
	*kvemu.Server
	Token secret.Value
}

// Start starts an emulator configured by cfg and stops it when the test ends. An empty
// cfg.Token is replaced by a fresh random token; a nil cfg.Logger logs at debug level to the
// test's output.
func Start(t testing.TB, cfg kvemu.Config) *Vault {
	t.Helper()
	if cfg.Token.Empty() {
		tok, err := kvemu.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Token = tok
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := kvemu.Start(cfg)
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close emulator: %v", err)
		}
	})
	return &Vault{Server: s, Token: cfg.Token}
}

// Client returns an azkeys client for the vault. opts may set retry and other pipeline
// options; its Transport and DisableChallengeResourceVerification are overridden.
func (v *Vault) Client(t testing.TB, opts *azkeys.ClientOptions) *azkeys.Client {
	t.Helper()
	return NewClient(t, v.URL(), v.CACertPEM(), Credential{Token: v.Token}, opts)
}

// NewClient returns an azkeys client for the emulated vault at vaultURL, trusting the CA
// certificate caPEM (Server.CACertPEM, or the file of kvemu serve --ca-out) and
// authenticating with cred. opts may set retry and other pipeline options; its Transport
// and DisableChallengeResourceVerification are overridden.
func NewClient(t testing.TB, vaultURL string, caPEM []byte, cred azcore.TokenCredential, opts *azkeys.ClientOptions) *azkeys.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no CA certificate in %q", caPEM)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	var o azkeys.ClientOptions
	if opts != nil {
		o = *opts
	}
	o.Transport = &http.Client{Transport: tr}
	o.DisableChallengeResourceVerification = true
	c, err := azkeys.NewClient(vaultURL, cred, &o)
	if err != nil {
		t.Fatalf("azkeys.NewClient: %v", err)
	}
	return c
}
