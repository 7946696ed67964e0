package hsm

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"runtime"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/secret"
)

// tokenAPI is the method set the CLI builds on. Asserting it here, in a file of both builds,
// keeps the cgo implementation and the no-cgo stub in step.
type tokenAPI interface {
	Close() error
	Label() string
	Serial() string
	Info(context.Context) (Info, error)
	Mechanisms(context.Context) ([]Mechanism, error)
	WrapMethod(context.Context) (WrapMethod, error)
	Check(context.Context) (CheckReport, error)
	GenerateTarget(context.Context, KeySpec, string, TargetOptions) (*Key, error)
	FindTarget(context.Context, KeyRef) (*Key, error)
	Wrap(context.Context, *Key, *rsa.PublicKey) (*Wrapped, error)
	WrapTrusted(context.Context, *Key, *rsa.PublicKey, secret.Value) (*Wrapped, error)
	GenerateSigner(context.Context, string, []byte) (*SigningKey, error)
	FindSigner(context.Context, string) (*SigningKey, error)
}

var (
	_ tokenAPI      = (*Token)(nil)
	_ crypto.Signer = (*SigningKey)(nil)
)

func TestOpenValidatesConfig(t *testing.T) {
	_, err := Open(context.Background(), Config{Module: "/nonexistent/module.so", TokenLabel: "x"})
	var he *Error
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &he) {
		t.Errorf("Open without a PIN = %v, want an *Error of kind ErrInvalid", err)
	}
}

func TestOpenWithoutCGO(t *testing.T) {
	if cgoEnabled {
		t.Skip("built with cgo")
	}
	_, err := Open(context.Background(), Config{Module: "/nonexistent/module.so", TokenLabel: "x", PIN: secret.New("1234")})
	if !errors.Is(err, ErrNoCGO) || !errors.As(err, new(*Error)) {
		t.Errorf("Open without cgo on %s = %v, want ErrNoCGO", runtime.GOOS, err)
	}
}
