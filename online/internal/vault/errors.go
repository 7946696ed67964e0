package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Kinds of failure; every *Error has exactly one.
var (
	// ErrNotFound: the key or version does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request conflicts with the vault's state (409), e.g. a deleted key
	// of that name awaits purge or recovery.
	ErrConflict = errors.New("conflict")
	// ErrThrottled: too many requests (429); nothing was done. Error.RetryAfter says when to
	// try again.
	ErrThrottled = errors.New("throttled")
	// ErrServer: Key Vault failed (5xx) or timed out (408); the request may have taken
	// effect.
	ErrServer = errors.New("server error")
	// ErrTransport: no response arrived (connection reset, timeout); the request may have
	// taken effect.
	ErrTransport = errors.New("no response")
	// ErrUnauthorized: the credential was refused (401); nothing was done.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrRefused: Key Vault refused the request for good (400, 403 and other 4xx); nothing
	// was done.
	ErrRefused = errors.New("refused")
	// ErrConnect: no connection was made (refused, unknown host, a TLS handshake that failed,
	// e.g. on a certificate not trusted); nothing was sent.
	ErrConnect = errors.New("no connection")
	// ErrAuth: authentication failed before the request was sent: the credential gave no
	// token, or Key Vault's authentication challenge was not accepted; nothing was done.
	ErrAuth = errors.New("authentication failed")
)

// Error is a failed Key Vault call.
type Error struct {
	Op         string // "import key", "create key"...
	Vault      string
	Status     int    // HTTP status; 0 when no response arrived
	Code       string // Key Vault's error code, e.g. "BadParameter"
	Message    string // Key Vault's error message
	RetryAfter time.Duration
	Kind       error // one of the sentinels above
	Err        error // the transport error, when no response arrived
}

func (e *Error) Error() string {
	switch {
	case e.Status == 0 && e.Err != nil:
		return fmt.Sprintf("key vault %s %s: %v: %v", e.Vault, e.Op, e.Kind, e.Err)
	case e.Code != "" || e.Message != "":
		return fmt.Sprintf("key vault %s %s: %d %s: %s", e.Vault, e.Op, e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("key vault %s %s: %d %s", e.Vault, e.Op, e.Status, http.StatusText(e.Status))
}

// Is matches the error's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the transport error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Ambiguous reports whether err leaves it unknown whether a write took effect: a server
// error or no response at all. A caller that cannot tell must look before it writes again.
func Ambiguous(err error) bool {
	return errors.Is(err, ErrServer) || errors.Is(err, ErrTransport)
}

// NothingDone reports whether err says the request was refused or never sent, for a reason
// that trying again unchanged does not cure: no connection (ErrConnect), no token
// (ErrAuth), a token refused (ErrUnauthorized). Nothing was done.
func NothingDone(err error) bool {
	return errors.Is(err, ErrConnect) || errors.Is(err, ErrAuth) || errors.Is(err, ErrUnauthorized)
}

// RetryAfter returns how long err asks the caller to wait, or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// transportKind classifies a failure that carries no Key Vault answer: ErrAuth when the
// credential failed or the last answer was the authentication challenge (401) that the SDK
// did not accept, ErrConnect when no connection was made, else ErrTransport (the request may
// have been sent). lastStatus is the status of the last answer to this call, 0 if its last
// request had none.
func transportKind(err error, lastStatus int) error {
	var (
		cred *credentialError
		op   *net.OpError
		cve  *tls.CertificateVerificationError
		uae  x509.UnknownAuthorityError
		he   x509.HostnameError
		cie  x509.CertificateInvalidError
		rhe  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &cred), lastStatus == http.StatusUnauthorized:
		return ErrAuth
	case errors.As(err, &op) && op.Op == "dial",
		errors.As(err, &cve), errors.As(err, &uae), errors.As(err, &he), errors.As(err, &cie), errors.As(err, &rhe):
		return ErrConnect
	}
	return ErrTransport
}

// credentialError marks a failure of the credential to give a token.
type credentialError struct{ err error }

func (e *credentialError) Error() string { return "credential: " + e.err.Error() }
func (e *credentialError) Unwrap() error { return e.err }

// statusKind maps an HTTP status to a kind.
func statusKind(status int) error {
	switch {
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusConflict:
		return ErrConflict
	case status == http.StatusTooManyRequests:
		return ErrThrottled
	case status == http.StatusUnauthorized:
		return ErrUnauthorized
	case status == http.StatusRequestTimeout || status >= 500:
		return ErrServer
	}
	return ErrRefused
}

// parseRetryAfter reads the headers Key Vault uses to ask for a pause: retry-after-ms,
// x-ms-retry-after-ms, Retry-After (seconds or an HTTP date).
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	for _, name := range []string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		if v := h.Get(name); v != "" {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// contextErr returns the context error if ctx ended, so that an interrupt is reported as
// such and not as a Key Vault failure.
func contextErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return ctx.Err()
	}
	return nil
}
