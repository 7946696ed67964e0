// Package vaultfake is an in-memory vault.Vault for unit tests: keys with versions and tags,
// BYOK imports that really unwrap the .byok with the KEK it holds, and injected failures,
// including a failure after the operation took effect (a lost response).
package vaultfake

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
)

// Op names a Vault method, for faults and call counts.
type Op string

// The operations.
const (
	OpCreate      Op = "create"
	OpGet         Op = "get"
	OpImport      Op = "import"
	OpVersions    Op = "versions"
	OpAttestation Op = "attestation"
)

// Fault makes the next Count calls of an operation fail with Err. With Commit, the
// operation takes effect first (a write is stored), as when a response is lost.
type Fault struct {
	Err    error
	Commit bool
	Count  int
	// Hidden, with Commit, keeps the stored version out of the next Hidden version lists
	// (and out of GetKey meanwhile): a write that Key Vault commits after the client's
	// first looks.
	Hidden int
}

type version struct {
	vault.Key
	version string
	priv    *rsa.PrivateKey // KEKs created here
	hidden  int             // version lists still to come that do not show it
}

// Vault is the fake. Its methods are safe for concurrent use.
type Vault struct {
	// NewRSA returns a private key of the given size for CreateKey; nil generates one.
	NewRSA func(bits int) *rsa.PrivateKey
	// Tamper, when set, replaces the public key an import returns (to provoke a mismatch).
	Tamper func(crypto.PublicKey) crypto.PublicKey
	// Attest makes KeyAttestation answer, as a Managed HSM does.
	Attest bool
	// Lie, when set, changes the copy of a key that ImportKey and GetKey return (the vault
	// keeps the truth), and LieVersion an entry of a version list.
	Lie        func(op Op, k *vault.Key)
	LieVersion func(v *vault.Version)
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	url    string
	mu     sync.Mutex
	keys   map[string][]*version
	faults map[Op][]*Fault
	calls  map[Op]int
	seq    int
}

// New returns an empty fake vault at url.
func New(url string) *Vault {
	return &Vault{url: url, keys: map[string][]*version{}, faults: map[Op][]*Fault{}, calls: map[Op]int{}}
}

// URL implements vault.Vault.
func (v *Vault) URL() string { return v.url }

// Fail queues a fault for op.
func (v *Vault) Fail(op Op, f Fault) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f.Count == 0 {
		f.Count = 1
	}
	v.faults[op] = append(v.faults[op], &f)
}

// Calls returns how many times op was called.
func (v *Vault) Calls(op Op) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls[op]
}

// Versions returns the stored versions of a key, oldest first.
func (v *Vault) Versions(name string) []vault.Key {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []vault.Key
	for _, kv := range v.keys[strings.ToLower(name)] {
		out = append(out, kv.Key)
	}
	return out
}

// Imports returns the number of key versions created by ImportKey.
func (v *Vault) Imports() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, vs := range v.keys {
		for _, kv := range vs {
			if kv.priv == nil {
				n++
			}
		}
	}
	return n
}

// begin counts a call and returns the fault to apply, if any. Callers hold v.mu.
func (v *Vault) begin(op Op) *Fault {
	v.calls[op]++
	q := v.faults[op]
	if len(q) == 0 {
		return nil
	}
	f := q[0]
	f.Count--
	if f.Count == 0 {
		v.faults[op] = q[1:]
	}
	return f
}

func (v *Vault) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func notFound(op, name string) error {
	return &vault.Error{Op: op, Status: 404, Code: "KeyNotFound", Message: "key " + name + " not found", Kind: vault.ErrNotFound}
}

func badParameter(op, format string, args ...any) error {
	return &vault.Error{Op: op, Status: 400, Code: "BadParameter", Message: fmt.Sprintf(format, args...), Kind: vault.ErrRefused}
}

func (v *Vault) store(name string, k *version) *vault.Key {
	v.seq++
	k.version = fmt.Sprintf("%032x", v.seq)
	k.KID = v.url + "/keys/" + name + "/" + k.version
	k.Created = v.now().Truncate(time.Second)
	ln := strings.ToLower(name)
	v.keys[ln] = append(v.keys[ln], k)
	out := k.Key
	return &out
}

// CreateKey implements vault.Vault for RSA-HSM keys.
func (v *Vault) CreateKey(_ context.Context, name string, p vault.CreateParams) (*vault.Key, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f := v.begin(OpCreate)
	if f != nil && !f.Commit {
		return nil, f.Err
	}
	if p.Kty != "RSA-HSM" {
		return nil, badParameter("create key", "the fake creates RSA-HSM keys only")
	}
	var priv *rsa.PrivateKey
	if v.NewRSA != nil {
		priv = v.NewRSA(p.Size)
	} else {
		var err error
		if priv, err = rsa.GenerateKey(rand.Reader, p.Size); err != nil {
			return nil, err
		}
	}
	k := &version{priv: priv, Key: vault.Key{Kty: p.Kty, Size: priv.N.BitLen(), KeyOps: slices.Clone(p.KeyOps),
		N: priv.N.Bytes(), E: big.NewInt(int64(priv.E)).Bytes(), Public: &priv.PublicKey, Enabled: true,
		Expires: p.Expires.Truncate(time.Second), Tags: maps.Clone(p.Tags)}}
	out := v.store(name, k)
	if f != nil {
		return nil, f.Err
	}
	return out, nil
}

// GetKey implements vault.Vault.
func (v *Vault) GetKey(_ context.Context, name, ver string) (*vault.Key, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f := v.begin(OpGet); f != nil {
		return nil, f.Err
	}
	vs := v.keys[strings.ToLower(name)]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].hidden == 0 && (ver == "" || vs[i].version == ver) {
			out := vs[i].Key
			out.Tags = maps.Clone(out.Tags)
			if v.Lie != nil {
				v.Lie(OpGet, &out)
			}
			return &out, nil
		}
	}
	return nil, notFound("get key", name)
}

// ImportKey implements vault.Vault: it unwraps the .byok with the KEK it names, which must
// be a key this fake created.
func (v *Vault) ImportKey(_ context.Context, name string, p vault.ImportParams) (*vault.Key, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f := v.begin(OpImport)
	if f != nil && !f.Commit {
		return nil, f.Err
	}
	k, err := v.unwrap(p)
	if err != nil {
		return nil, err
	}
	out := v.store(name, k)
	if f != nil {
		k.hidden = f.Hidden
		return nil, f.Err
	}
	out.Tags = maps.Clone(out.Tags)
	if v.Lie != nil {
		v.Lie(OpImport, out)
	}
	return out, nil
}

func (v *Vault) unwrap(p vault.ImportParams) (*version, error) {
	const op = "import key"
	file, err := byok.ParseLenient(p.BYOK)
	if err != nil {
		return nil, badParameter(op, "the .byok is invalid: %v", err)
	}
	kid, err := byok.ParseKeyID(file.Header.KID)
	if err != nil || kid.Vault != v.url {
		return nil, badParameter(op, "the KEK %s is not in this vault", file.Header.KID)
	}
	var kek *version
	for _, kv := range v.keys[strings.ToLower(kid.Name)] {
		if kv.version == kid.Version {
			kek = kv
		}
	}
	if kek == nil || kek.priv == nil {
		return nil, badParameter(op, "no KEK %s", file.Header.KID)
	}
	plain, err := keywrap.UnwrapRSAAES(kek.priv, file.Ciphertext)
	if err != nil {
		return nil, badParameter(op, "the .byok does not unwrap with %s", file.Header.KID)
	}
	k := &version{Key: vault.Key{Kty: p.Kty, Curve: p.Curve, KeyOps: slices.Clone(p.KeyOps), Enabled: p.Enabled,
		NotBefore: p.NotBefore, Expires: p.Expires, Tags: maps.Clone(p.Tags)}}
	if p.Kty == "oct-HSM" {
		if n := len(plain); n != 16 && n != 24 && n != 32 {
			return nil, badParameter(op, "AES key of %d bytes", n)
		}
		k.Size = len(plain) * 8
		return k, nil
	}
	der, _, err := keywrap.TrimDER(plain)
	if err != nil {
		return nil, badParameter(op, "the target is not DER")
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, badParameter(op, "the target is not PKCS#8")
	}
	pub := priv.(crypto.Signer).Public()
	if v.Tamper != nil {
		pub = v.Tamper(pub)
	}
	switch pk := pub.(type) {
	case *rsa.PublicKey:
		if p.Kty != "RSA-HSM" {
			return nil, badParameter(op, "an RSA key imported as %s", p.Kty)
		}
		k.Size, k.N, k.E = pk.N.BitLen(), pk.N.Bytes(), big.NewInt(int64(pk.E)).Bytes()
	case *ecdsa.PublicKey:
		if p.Kty != "EC-HSM" || pk.Curve.Params().Name != p.Curve {
			return nil, badParameter(op, "an EC %s key imported as %s %s", pk.Curve.Params().Name, p.Kty, p.Curve)
		}
	default:
		return nil, badParameter(op, "unsupported key %T", pub)
	}
	k.Public = pub
	return k, nil
}

// KeyVersions implements vault.Vault.
func (v *Vault) KeyVersions(_ context.Context, name string) ([]vault.Version, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f := v.begin(OpVersions); f != nil {
		return nil, f.Err
	}
	vs, ok := v.keys[strings.ToLower(name)]
	if !ok {
		return nil, notFound("list versions", name)
	}
	out := make([]vault.Version, 0, len(vs))
	for _, kv := range vs {
		if kv.hidden > 0 {
			kv.hidden--
			continue
		}
		ver := vault.Version{KID: kv.KID, Version: kv.version, Enabled: kv.Enabled, Created: kv.Created, Tags: maps.Clone(kv.Tags)}
		if v.LieVersion != nil {
			v.LieVersion(&ver)
		}
		out = append(out, ver)
	}
	return out, nil
}

// KeyAttestation implements vault.Vault: a fixed stand-in when Attest is set.
func (v *Vault) KeyAttestation(_ context.Context, name, ver string) (*vault.Attestation, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f := v.begin(OpAttestation); f != nil {
		return nil, f.Err
	}
	if !v.Attest {
		return nil, badParameter("get attestation", "attestation is available on Managed HSM only")
	}
	if len(v.keys[strings.ToLower(name)]) == 0 {
		return nil, notFound("get attestation", name)
	}
	return &vault.Attestation{PrivateKey: []byte("fake attestation of " + name + "/" + ver), Version: "1.0"}, nil
}

// ErrLost is a transport failure for faults: the response never arrived.
var ErrLost = &vault.Error{Op: "fake", Kind: vault.ErrTransport, Err: errors.New("connection reset by peer")}
