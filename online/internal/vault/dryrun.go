package vault

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Request is an HTTP request exactly as the SDK would send it, minus its Authorization
// header and with the .byok blob replaced by a placeholder that names its length.
type Request struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// String renders the request as an HTTP/1.1 message, headers in order.
func (r *Request) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s\n", r.Method, r.URL)
	names := make([]string, 0, len(r.Headers))
	for k := range r.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&sb, "%s: %s\n", k, r.Headers[k])
	}
	fmt.Fprintf(&sb, "\n%s\n", r.Body)
	return sb.String()
}

// DryRunImport returns the ImportKey request for the key name and parameters without
// sending anything: the real azkeys client builds it and a capturing transport answers the
// SDK's authentication challenge and keeps the request.
func DryRunImport(ctx context.Context, vaultURL, name string, p ImportParams) (*Request, error) {
	ct := &captureTransport{byokLen: len(p.BYOK)}
	api, err := newClient(vaultURL, Options{Credential: dryRunCredential{}, Transport: ct})
	if err != nil {
		return nil, err
	}
	if _, err := api.ImportKey(noRetry(ctx), name, importParams(p), nil); err != nil {
		return nil, fmt.Errorf("dry run of import key %s: %w", name, err)
	}
	if ct.req == nil {
		return nil, fmt.Errorf("dry run of import key %s: the SDK sent nothing", name)
	}
	return ct.req, nil
}

type dryRunCredential struct{}

func (dryRunCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "dry-run"}, nil
}

// captureTransport answers the challenge request (no Authorization) as Key Vault does, and
// records the authorised request instead of sending it.
type captureTransport struct {
	byokLen int
	mu      sync.Mutex
	req     *Request
}

var keyHSM = regexp.MustCompile(`"key_hsm":"([A-Za-z0-9_-]*)"`)

func (c *captureTransport) Do(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		h := http.Header{}
		h.Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/dry-run", resource="https://vault.azure.net"`)
		return &http.Response{StatusCode: http.StatusUnauthorized, Header: h, Body: http.NoBody, Request: r}, nil
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		body = b
	}
	out := &Request{Method: r.Method, URL: r.URL.String(), Headers: map[string]string{}}
	for k, v := range r.Header {
		if strings.EqualFold(k, "Authorization") {
			continue
		}
		out.Headers[k] = strings.Join(v, ", ")
	}
	if len(body) > 0 {
		out.Headers["Content-Length"] = strconv.Itoa(len(body))
	}
	out.Body = string(keyHSM.ReplaceAllFunc(body, func(m []byte) []byte {
		n := len(keyHSM.FindSubmatch(m)[1])
		return fmt.Appendf(nil, `"key_hsm":"<the .byok file: %d bytes as %d characters of base64url>"`, c.byokLen, n)
	}))
	c.mu.Lock()
	c.req = out
	c.mu.Unlock()
	h := http.Header{"Content-Type": {"application/json"}}
	return &http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(bytes.NewReader([]byte(`{}`))), Request: r}, nil
}
