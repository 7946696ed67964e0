package kvemu

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
)

// importParams are ImportKeyParameters on the wire.
type importParams struct {
	Key           *jsonWebKey       `json:"key"`
	HSM           *bool             `json:"Hsm"`
	Attributes    *keyAttributes    `json:"attributes"`
	Tags          map[string]string `json:"tags"`
	ReleasePolicy json.RawMessage   `json:"release_policy"`
}

// importKey is ImportKey for BYOK: key.key_hsm is a .byok file, unwrapped here with the
// private key of the Key Exchange Key it names, as the vault's HSM would.
func (s *Server) importKey(w http.ResponseWriter, r *http.Request, name string, log *slog.Logger) *apiError {
	var p importParams
	if e := decodeBody(w, r, &p); e != nil {
		s.counters.importsRefused.Add(1)
		return e
	}
	v, e := s.importVersion(name, &p, log)
	if e != nil {
		s.counters.importsRefused.Add(1)
		return e
	}
	b, e := s.store(v)
	if e != nil {
		s.counters.importsRefused.Add(1)
		return e
	}
	s.counters.imports.Add(1)
	log.Info("key imported", "kid", b.Key.KID, "kty", v.Kty, "size", v.Size, "crv", v.Crv, "key_ops", v.KeyOps)
	s.writeJSON(w, http.StatusOK, b)
	return nil
}

// importVersion validates an import and returns the key version to store. Throttling is
// charged to the imported key's bucket once its type and size are known, or to the bucket
// of the requested type when the import fails before that.
func (s *Server) importVersion(name string, p *importParams, log *slog.Logger) (*keyVersion, *apiError) {
	k := p.Key
	if k == nil {
		return nil, badParameter("The key (key) is required.")
	}
	if e := s.checkKty(k.Kty); e != nil {
		return nil, e
	}
	charged := false
	fail := func(e *apiError) (*keyVersion, *apiError) {
		if !charged {
			if ae := s.admit(bucketFor(k.Kty, 0)); ae != nil {
				return nil, ae
			}
		}
		return nil, e
	}
	if len(k.T) == 0 {
		if len(k.D) != 0 || len(k.K) != 0 || len(k.P) != 0 {
			return fail(&apiError{status: http.StatusNotImplemented, code: CodeNotSupported,
				message: "Importing plaintext key material is not emulated by kvemu; use BYOK (key_hsm)."})
		}
		return fail(badParameter("The BYOK transfer blob (key_hsm) is required."))
	}
	if !strings.HasSuffix(k.Kty, "-HSM") {
		return fail(badParameter("A BYOK import (key_hsm) requires kty RSA-HSM, EC-HSM or oct-HSM, not %s.", k.Kty))
	}
	if p.HSM != nil && !*p.HSM {
		return fail(badParameter("A BYOK import (key_hsm) cannot be imported as a software key (Hsm=false)."))
	}
	v := &keyVersion{Name: name, Kty: k.Kty, Imported: true, KeyOps: k.KeyOps}
	if len(v.KeyOps) == 0 {
		v.KeyOps = defaultOps(k.Kty)
	}
	if slices.Contains(v.KeyOps, opImport) {
		return fail(badParameter("An imported key cannot have the import operation; key exchange keys must be generated in the vault."))
	}
	if e := checkOps(k.Kty, v.KeyOps); e != nil {
		return fail(e)
	}
	var e *apiError
	if v.Enabled, v.NotBefore, v.Expires, e = checkAttributes(p.Attributes, p.ReleasePolicy); e != nil {
		return fail(e)
	}
	if e := checkTags(p.Tags); e != nil {
		return fail(e)
	}
	v.Tags = p.Tags
	if e := s.checkNameFree(name); e != nil {
		return fail(e)
	}
	f, err := byok.ParseLenient(k.T)
	if err != nil {
		// byok's errors name the member and the reason, never the ciphertext.
		return fail(badParameter("The BYOK transfer blob (key_hsm) is invalid: %v.", err))
	}
	kek, kekID, e := s.kekFor(f.Header.KID)
	if e != nil {
		return fail(e)
	}
	plain, err := keywrap.UnwrapRSAAES(kek, f.Ciphertext)
	if err != nil {
		log.Info("byok unwrap failed", "kek", kekID, "err", err)
		return fail(badParameter("The BYOK transfer blob (key_hsm) could not be unwrapped with the key exchange key %s.", kekID))
	}
	defer clear(plain)
	if e := s.target(v, k.Crv, plain, log); e != nil {
		return fail(e)
	}
	charged = true
	if e := s.admit(bucketFor(v.Kty, v.Size)); e != nil {
		return nil, e
	}
	log.Info("byok unwrapped", "kek", kekID)
	return v, nil
}

// kekFor returns the private key of the Key Exchange Key named by kid: a key of this vault
// (scheme, host and port match), existing, with the import operation, enabled, active and
// not expired.
func (s *Server) kekFor(kid string) (*rsa.PrivateKey, string, *apiError) {
	id, err := byok.ParseKeyID(kid)
	if err != nil {
		return nil, "", badParameter("The key exchange key identifier (kid) is invalid: %v.", err)
	}
	if !s.sameVault(id.Vault) {
		return nil, "", badParameter("The key exchange key %s does not belong to this vault (%s).", kid, s.url)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, v, e := s.lookup(id.Name, id.Version)
	if e != nil {
		return nil, "", badParameter("The key exchange key %s was not found in this vault.", kid)
	}
	kekID := s.kid(v)
	if v.Kty != ktyRSAHSM || v.rsa == nil || !slices.Equal(v.KeyOps, []string{opImport}) {
		return nil, "", badParameter("The key %s is not a key exchange key: it must be RSA-HSM with the import operation only.", kekID)
	}
	if !v.Enabled {
		return nil, "", badParameter("The key exchange key %s is disabled.", kekID)
	}
	now := s.cfg.Now().Unix()
	if v.NotBefore != nil && now < *v.NotBefore {
		return nil, "", badParameter("The key exchange key %s is not yet active.", kekID)
	}
	if v.Expires != nil && now >= *v.Expires {
		return nil, "", badParameter("The key exchange key %s has expired.", kekID)
	}
	return v.rsa, kekID, nil
}

// sameVault reports whether vault, the vault part of a key identifier, is this vault.
func (s *Server) sameVault(vault string) bool {
	if !strings.Contains(vault, "://") {
		vault = "https://" + vault
	}
	u, err := url.Parse(vault)
	if err != nil || u.Scheme != "https" || strings.Trim(u.Path, "/") != "" {
		return false
	}
	mine, _ := url.Parse(s.url)
	return strings.EqualFold(u.Host, mine.Host)
}

// target checks the unwrapped target key against the requested type and fills v's key
// material. RSA and EC keys are PKCS#8; up to 7 trailing zero bytes (SoftHSM 2.6.1 pads the
// key to a multiple of 8 before RFC 5649) are accepted with a warning. AES keys are raw.
func (s *Server) target(v *keyVersion, crv string, plain []byte, log *slog.Logger) *apiError {
	if v.Kty == ktyOctHSM {
		if n := len(plain); n != 16 && n != 24 && n != 32 {
			return badParameter("The wrapped key is %d bytes; an oct-HSM key must be 128, 192 or 256 bits.", n)
		}
		v.Size = len(plain) * 8
		v.Private = append([]byte(nil), plain...)
		return s.loadOrFail(v)
	}
	der, trailing, err := keywrap.TrimDER(plain)
	if err != nil {
		return badParameter("The wrapped key is not a PKCS#8 private key (kty %s).", v.Kty)
	}
	if len(trailing) > 0 {
		if len(trailing) > 7 || slices.ContainsFunc(trailing, func(b byte) bool { return b != 0 }) {
			return badParameter("The wrapped key has %d bytes of data after the PKCS#8 private key.", len(trailing))
		}
		log.Warn("wrapped PKCS#8 key followed by zero padding; accepted (SoftHSM 2.6.1 pads before RFC 5649, Azure's behaviour is unknown)",
			"trailing_bytes", len(trailing))
	}
	key, err := parsePKCS8(der)
	if err != nil {
		return badParameter("The wrapped key is not a valid PKCS#8 RSA or EC private key.")
	}
	switch key := key.(type) {
	case *rsa.PrivateKey:
		if v.Kty != ktyRSAHSM {
			return badParameter("The wrapped key is an RSA key, but kty is %s.", v.Kty)
		}
		if err := key.Validate(); err != nil {
			return badParameter("The wrapped RSA key is invalid.")
		}
		v.Size = key.N.BitLen()
		if !slices.Contains(rsaSizes, v.Size) {
			return badParameter("The RSA key size %d is not supported; use 2048, 3072 or 4096.", v.Size)
		}
		if v.Private, err = x509.MarshalPKCS8PrivateKey(key); err != nil {
			return badParameter("The wrapped RSA key cannot be encoded.")
		}
		if crv != "" {
			return badParameter("A curve (crv) was given for an RSA key.")
		}
	case *ecdsa.PrivateKey:
		v.Crv = curveName(key.Curve)
		if e := checkCurve(v, crv); e != nil {
			return e
		}
		if v.Private, err = key.Bytes(); err != nil {
			return badParameter("The wrapped EC key cannot be encoded.")
		}
	case *secp256k1Key:
		v.Crv = crvP256K
		if e := checkCurve(v, crv); e != nil {
			return e
		}
		v.Private = append([]byte(nil), key.d...)
	}
	return s.loadOrFail(v)
}

func checkCurve(v *keyVersion, crv string) *apiError {
	if v.Kty != ktyECHSM {
		return badParameter("The wrapped key is an EC key (%s), but kty is %s.", v.Crv, v.Kty)
	}
	if crv == "" {
		return badParameter("The curve (crv) is required to import an EC-HSM key.")
	}
	if crv != v.Crv {
		return badParameter("The wrapped key is on curve %s, but crv is %s.", v.Crv, crv)
	}
	return nil
}

func (s *Server) loadOrFail(v *keyVersion) *apiError {
	if err := v.load(); err != nil {
		return badParameter("The wrapped key cannot be used.")
	}
	return nil
}
