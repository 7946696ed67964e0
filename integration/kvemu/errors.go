package kvemu

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error codes of Key Vault error bodies, as the service spells them.
const (
	CodeBadParameter = "BadParameter"
	CodeKeyNotFound  = "KeyNotFound"
	CodeUnauthorized = "Unauthorized"
	CodeForbidden    = "Forbidden"
	CodeThrottled    = "Throttled"
	CodeConflict     = "Conflict"
	CodeNotSupported = "NotSupported"
	CodeInternal     = "InternalServerError"
	CodeUnavailable  = "ServiceUnavailable"
)

// Errors of the Go API.
var (
	// ErrNotFound is returned by inspection methods for a key or version that does not exist.
	ErrNotFound = errors.New("key not found")
	// ErrStateLocked is returned by Start when another process holds the state file.
	ErrStateLocked = errors.New("state file locked by another process")
)

// apiError is an error answered to a client in Key Vault's shape:
// {"error":{"code":..., "message":..., "innererror":{"code":...}}}.
type apiError struct {
	status  int
	code    string
	inner   string // optional innererror code
	message string
	// retryAfter, when positive, is sent as Retry-After in whole seconds, rounded up.
	retryAfter time.Duration
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

func badParameter(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: CodeBadParameter, message: fmt.Sprintf(format, args...)}
}

func keyNotFound(name string) *apiError {
	return &apiError{status: http.StatusNotFound, code: CodeKeyNotFound,
		message: fmt.Sprintf("A key with (name/id) %s was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command.", name)}
}

func versionNotFound(name, version string) *apiError {
	return &apiError{status: http.StatusNotFound, code: CodeKeyNotFound,
		message: fmt.Sprintf("A key with (name/id) %s/%s was not found in this key vault.", name, version)}
}

func deletedConflict(name string) *apiError {
	return &apiError{status: http.StatusConflict, code: CodeConflict,
		message: fmt.Sprintf("Key %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can be recovered or purged.", name)}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code       string       `json:"code"`
	Message    string       `json:"message"`
	InnerError *innerDetail `json:"innererror,omitempty"`
}

type innerDetail struct {
	Code string `json:"code"`
}

func (e *apiError) body() errorBody {
	b := errorBody{Error: errorDetail{Code: e.code, Message: e.message}}
	if e.inner != "" {
		b.Error.InnerError = &innerDetail{Code: e.inner}
	}
	return b
}
