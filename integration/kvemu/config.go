package kvemu

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/secret"
)

// Kind is the kind of vault the emulator plays.
type Kind string

// Vault kinds. BYOK works only on Premium vaults and Managed HSM, so there is no standard kind.
const (
	KindPremium    Kind = "premium"    // an Azure Key Vault of the Premium tier
	KindManagedHSM Kind = "managedhsm" // an Azure Key Vault Managed HSM
)

// ParseKind parses "premium" or "managedhsm".
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindPremium, KindManagedHSM:
		return k, nil
	}
	return "", fmt.Errorf("unknown vault kind %q (want premium or managedhsm)", s)
}

// resource is the audience the vault names in its authentication challenge.
func (k Kind) resource() string {
	if k == KindManagedHSM {
		return "https://managedhsm.azure.net"
	}
	return "https://vault.azure.net"
}

// DefaultTenantID is the tenant named in the authentication challenge when Config.TenantID is
// empty.
const DefaultTenantID = "6b2d3e8f-0c4a-4b7e-9d1f-6b7f0e2a9c51"

// DefaultWindow is the throttling window of Azure Key Vault.
const DefaultWindow = 10 * time.Second

// Limits are the throttling limits, per vault and per Window. A zero field takes Azure's
// published value (see the package documentation); a negative field disables that bucket.
type Limits struct {
	// Window is the length of the sliding throttling window; zero means DefaultWindow.
	Window time.Duration
	// Create limits key creation (CreateKey), of every key type.
	Create int
	// RSA2048, RSA3072 and RSA4096 limit the other operations on RSA keys of that size,
	// imports included.
	RSA2048, RSA3072, RSA4096 int
	// EC limits the other operations on EC keys, imports included.
	EC int
	// Oct limits operations on AES keys (Managed HSM only; Azure publishes no per-vault limit,
	// the default is 2000).
	Oct int
	// Vault limits operations that address no existing key: listing keys, deleted keys, and
	// requests for keys that do not exist.
	Vault int
}

// Azure's published limits per vault per 10 seconds for HSM-protected keys.
const (
	defaultCreate  = 10
	defaultRSA2048 = 2000
	defaultRSA3072 = 500
	defaultRSA4096 = 250
	defaultEC      = 2000
	defaultOct     = 2000
	defaultVault   = 4000
)

// DefaultPageSize is the page size of list operations when the request has no maxresults,
// and the largest maxresults Key Vault accepts.
const DefaultPageSize = 25

// Config configures a Server. Token is required; every other field has a default.
type Config struct {
	// Kind is the kind of vault; empty means KindPremium.
	Kind Kind
	// Addr is the loopback address the vault listens on (TLS); empty means "127.0.0.1:0".
	// With port 0 and a state file that remembers an earlier port, that port is tried first
	// so that key identifiers stay valid across restarts.
	Addr string
	// AdminAddr, when not empty, is the loopback address of the plain-HTTP admin endpoint.
	AdminAddr string
	// Token is the static bearer token clients must present. It is compared in constant
	// time and never logged.
	Token secret.Value
	// TenantID is the tenant named in the authentication challenge; empty means
	// DefaultTenantID.
	TenantID string
	// StatePath, when not empty, is a bbolt file that keeps keys, certificates and the
	// attestation CA across restarts. Empty means in memory only.
	StatePath string
	// CAFile, when not empty, receives the PEM certificate of the emulator's TLS CA.
	CAFile string
	// Limits are the throttling limits.
	Limits Limits
	// PageSize is the page size of list operations without maxresults; zero means
	// DefaultPageSize. Tests set it low to exercise paging, since azkeys cannot send
	// maxresults.
	PageSize int
	// Now is the clock; nil means time.Now. Tests inject one to drive throttling windows.
	Now func() time.Time
	// Logger receives request and warning logs; nil discards them.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Kind == "" {
		c.Kind = KindPremium
	}
	if _, err := ParseKind(string(c.Kind)); err != nil {
		return fmt.Errorf("kind: %w", err)
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if err := checkLoopback(c.Addr); err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	if c.AdminAddr != "" {
		if err := checkLoopback(c.AdminAddr); err != nil {
			return fmt.Errorf("admin addr: %w", err)
		}
	}
	if c.Token.Empty() {
		return fmt.Errorf("token is required")
	}
	if c.TenantID == "" {
		c.TenantID = DefaultTenantID
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.PageSize < 1 || c.PageSize > DefaultPageSize {
		return fmt.Errorf("page size %d out of range 1..%d", c.PageSize, DefaultPageSize)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l := &c.Limits
	if l.Window == 0 {
		l.Window = DefaultWindow
	}
	if l.Window < 0 {
		return fmt.Errorf("limits window %s is negative", l.Window)
	}
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&l.Create, defaultCreate}, {&l.RSA2048, defaultRSA2048}, {&l.RSA3072, defaultRSA3072},
		{&l.RSA4096, defaultRSA4096}, {&l.EC, defaultEC}, {&l.Oct, defaultOct}, {&l.Vault, defaultVault},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return nil
}

// checkLoopback refuses listen addresses that are not on the loopback interface: the
// emulator holds private keys and a static token and must never be reachable from outside.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parse %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}

// NewToken returns a fresh random bearer token (32 random bytes, hex).
func NewToken() (secret.Value, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return secret.Value{}, fmt.Errorf("generate token: %w", err)
	}
	return secret.New(hex.EncodeToString(b[:])), nil
}
