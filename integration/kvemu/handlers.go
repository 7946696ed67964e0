package kvemu

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	recoveryLevel   = "Recoverable+Purgeable"
	recoverableDays = 90
	maxBodyBytes    = 1 << 20
)

var errNotSupported = &apiError{status: http.StatusNotImplemented, code: CodeNotSupported,
	message: "This operation is not emulated by kvemu."}

func methodNotAllowed(r *http.Request) *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, code: CodeBadParameter,
		message: fmt.Sprintf("The HTTP method '%s' is not supported for this request.", r.Method)}
}

var errNoRoute = &apiError{status: http.StatusNotFound, code: "NotFound", message: "The requested resource does not exist."}

// route runs the API operation named by r and writes its response.
func (s *Server) route(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	if e := s.dispatch(w, r, log); e != nil {
		if e.status >= 500 {
			log.Error("request failed", "status", e.status, "code", e.code, "message", e.message)
		} else {
			log.Info("request refused", "status", e.status, "code", e.code, "message", e.message)
		}
		s.writeError(w, e)
	}
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, log *slog.Logger) *apiError {
	if r.URL.Query().Get("api-version") == "" {
		return badParameter("The api-version query parameter is missing.")
	}
	seg := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch seg[0] {
	case "keys":
		return s.routeKeys(w, r, seg[1:], log)
	case "deletedkeys":
		return s.routeDeleted(w, r, seg[1:])
	case "rng":
		return errNotSupported
	}
	return errNoRoute
}

func (s *Server) routeKeys(w http.ResponseWriter, r *http.Request, seg []string, log *slog.Logger) *apiError {
	if len(seg) == 0 || (len(seg) == 1 && seg[0] == "") {
		if r.Method != http.MethodGet {
			return methodNotAllowed(r)
		}
		return s.listKeys(w, r)
	}
	name := seg[0]
	if name == "restore" && len(seg) == 1 && r.Method == http.MethodPost {
		return errNotSupported
	}
	if e := checkName(name); e != nil {
		return e
	}
	switch len(seg) {
	case 1:
		switch r.Method {
		case http.MethodPut:
			return s.importKey(w, r, name, log)
		case http.MethodDelete:
			return s.deleteKey(w, name)
		case http.MethodGet:
			return s.getKey(w, name, "")
		case http.MethodPatch:
			return s.updateKey(w, r, name, "")
		}
		return methodNotAllowed(r)
	case 2:
		switch op := seg[1]; op {
		case "create":
			if r.Method != http.MethodPost {
				return methodNotAllowed(r)
			}
			return s.createKey(w, r, name, log)
		case "versions":
			if r.Method != http.MethodGet {
				return methodNotAllowed(r)
			}
			return s.listVersions(w, r, name)
		case "attestation": // azkeys joins an empty version away: /keys/{name}/attestation
			if r.Method != http.MethodGet {
				return methodNotAllowed(r)
			}
			return s.getAttestation(w, name, "")
		case "rotate", "backup", "rotationpolicy":
			return errNotSupported
		default: // a version, or "" (trailing slash) for the latest
			switch r.Method {
			case http.MethodGet:
				return s.getKey(w, name, op)
			case http.MethodPatch:
				return s.updateKey(w, r, name, op)
			}
			return methodNotAllowed(r)
		}
	case 3:
		switch seg[2] {
		case "attestation":
			if r.Method != http.MethodGet {
				return methodNotAllowed(r)
			}
			return s.getAttestation(w, name, seg[1])
		case "encrypt", "decrypt", "sign", "verify", "wrapkey", "unwrapkey", "release":
			return errNotSupported
		}
	}
	return errNoRoute
}

func (s *Server) routeDeleted(w http.ResponseWriter, r *http.Request, seg []string) *apiError {
	if len(seg) == 0 || (len(seg) == 1 && seg[0] == "") {
		if r.Method != http.MethodGet {
			return methodNotAllowed(r)
		}
		return s.listDeleted(w, r)
	}
	name := seg[0]
	if e := checkName(name); e != nil {
		return e
	}
	switch {
	case len(seg) == 1 && r.Method == http.MethodGet:
		return s.getDeleted(w, name)
	case len(seg) == 1 && r.Method == http.MethodDelete:
		return s.purgeDeleted(w, name)
	case len(seg) == 2 && seg[1] == "recover" && r.Method == http.MethodPost:
		return s.recoverDeleted(w, name)
	case len(seg) <= 2:
		return methodNotAllowed(r)
	}
	return errNoRoute
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, code: CodeBadParameter, message: "The request body is too large."}
		}
		return badParameter("The request body could not be read.")
	}
	if len(b) == 0 {
		return badParameter("The request body is empty.")
	}
	if err := json.Unmarshal(b, v); err != nil {
		// The decoder's message names JSON types and offsets, never the content.
		return badParameter("The request body is not valid: %v", err)
	}
	return nil
}

// admit applies throttling to one request in bucket.
func (s *Server) admit(bucket string) *apiError {
	ok, retryAfter := s.throttle.admit(bucket, s.cfg.Now())
	if ok {
		return nil
	}
	s.counters.throttled.Add(1)
	return &apiError{status: http.StatusTooManyRequests, code: CodeThrottled,
		message:    fmt.Sprintf("Request was not processed because too many requests were received. Reason: %s limit of the vault exceeded.", bucket),
		retryAfter: max(retryAfter, time.Second)}
}

// lookup finds a live key and a version of it ("" for the latest). Callers hold s.mu.
func (s *Server) lookup(name, version string) (*keyEntry, *keyVersion, *apiError) {
	e := s.keys[strings.ToLower(name)]
	if e == nil || e.deleted != nil {
		return nil, nil, keyNotFound(name)
	}
	if version == "" {
		return e, e.latest(), nil
	}
	v := e.version(version)
	if v == nil {
		return nil, nil, versionNotFound(name, version)
	}
	return e, v, nil
}

// lookupAdmit is lookup followed by throttling in the key's bucket (or the vault bucket when
// the key does not exist). Callers hold s.mu.
func (s *Server) lookupAdmit(name, version string) (*keyEntry, *keyVersion, *apiError) {
	e, v, lerr := s.lookup(name, version)
	bucket := BucketVault
	if v != nil {
		bucket = bucketFor(v.Kty, v.Size)
	}
	if aerr := s.admit(bucket); aerr != nil {
		return nil, nil, aerr
	}
	return e, v, lerr
}

func (s *Server) attributes(v *keyVersion) keyAttributes {
	f := false
	days := int32(recoverableDays)
	return keyAttributes{
		Enabled: ptr(v.Enabled), NotBefore: copyPtr(v.NotBefore), Expires: copyPtr(v.Expires),
		Created: ptr(v.Created), Updated: ptr(v.Updated),
		RecoveryLevel: recoveryLevel, RecoverableDays: &days, Exportable: &f,
	}
}

// bundle returns the key bundle of v: the public JWK (no material for AES keys, as Azure),
// attributes and tags. Callers hold s.mu.
func (s *Server) bundle(v *keyVersion) keyBundle {
	k := v.pub
	k.KID = s.kid(v)
	k.KeyOps = slices.Clone(v.KeyOps)
	return keyBundle{Key: k, Attributes: s.attributes(v), Tags: maps.Clone(v.Tags)}
}

func ptr[T any](v T) *T { return &v }

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	return ptr(*p)
}

func (s *Server) deletedBundle(name string, e *keyEntry) keyBundle {
	b := s.bundle(e.latest())
	b.RecoveryID = s.url + "/deletedkeys/" + name
	b.DeletedDate = ptr(e.deleted.DeletedDate)
	b.ScheduledPurgeDate = ptr(e.deleted.ScheduledPurgeDate)
	return b
}

func (s *Server) getKey(w http.ResponseWriter, name, version string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, v, e := s.lookupAdmit(name, version)
	if e != nil {
		return e
	}
	if !v.Enabled {
		return &apiError{status: http.StatusForbidden, code: CodeForbidden, inner: "KeyDisabled",
			message: "Operation get is not allowed on a disabled key."}
	}
	s.writeJSON(w, http.StatusOK, s.bundle(v))
	return nil
}

// createParams are CreateKeyParameters on the wire.
type createParams struct {
	Kty            string            `json:"kty"`
	KeySize        *int              `json:"key_size"`
	PublicExponent *int              `json:"public_exponent"`
	KeyOps         []string          `json:"key_ops"`
	Attributes     *keyAttributes    `json:"attributes"`
	Tags           map[string]string `json:"tags"`
	Curve          string            `json:"crv"`
	ReleasePolicy  json.RawMessage   `json:"release_policy"`
}

// checkKty validates a key type for this vault kind: Managed HSM holds HSM keys only,
// premium vaults hold RSA and EC keys (software or HSM) but no AES keys.
func (s *Server) checkKty(kty string) *apiError {
	switch kty {
	case ktyRSAHSM, ktyECHSM:
		return nil
	case ktyOctHSM:
		if s.cfg.Kind == KindManagedHSM {
			return nil
		}
		return badParameter("Key type oct-HSM is not supported by this vault; AES keys require a Managed HSM.")
	case ktyRSA, ktyEC:
		if s.cfg.Kind == KindPremium {
			return nil
		}
		return badParameter("Key type %s is not supported by a Managed HSM; use %s-HSM.", kty, kty)
	case ktyOct:
		return badParameter("Key type oct is not supported; use oct-HSM on a Managed HSM.")
	case "":
		return badParameter("The key type (kty) is required.")
	}
	return badParameter("Invalid key type: %s.", kty)
}

// MaxTags is Key Vault's limit of tags on a key version.
const MaxTags = 15

// checkTags applies Key Vault's limits on tags: at most 15, names 1 to 512 characters, values
// at most 256. Azure answers a breach with 400 BadParameter "Property has invalid value".
func checkTags(tags map[string]string) *apiError {
	if len(tags) > MaxTags {
		return badParameter("Property has invalid value")
	}
	for k, v := range tags {
		if k == "" || utf8.RuneCountInString(k) > 512 || utf8.RuneCountInString(v) > 256 {
			return badParameter("Property has invalid value")
		}
	}
	return nil
}

// checkAttributes validates request attributes and returns enabled, nbf and exp.
func checkAttributes(a *keyAttributes, release json.RawMessage) (bool, *int64, *int64, *apiError) {
	if len(release) != 0 && string(release) != "null" {
		return false, nil, nil, badParameter("Key release policies are not emulated by kvemu.")
	}
	if a == nil {
		return true, nil, nil, nil
	}
	if a.Exportable != nil && *a.Exportable {
		return false, nil, nil, badParameter("Exportable keys must have release policy.")
	}
	enabled := a.Enabled == nil || *a.Enabled
	if a.NotBefore != nil && a.Expires != nil && *a.Expires <= *a.NotBefore {
		return false, nil, nil, badParameter("The key expiry time must be after its activation time (nbf).")
	}
	return enabled, a.NotBefore, a.Expires, nil
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, name string, log *slog.Logger) *apiError {
	var p createParams
	if e := decodeBody(w, r, &p); e != nil {
		return e
	}
	if e := s.checkKty(p.Kty); e != nil {
		return e
	}
	v := &keyVersion{Name: name, Kty: p.Kty}
	switch baseKty(p.Kty) {
	case ktyRSA:
		v.Size = 2048
		if p.KeySize != nil {
			v.Size = *p.KeySize
		}
		if !slices.Contains(rsaSizes, v.Size) {
			return badParameter("The RSA key size %d is not supported; use 2048, 3072 or 4096.", v.Size)
		}
	case ktyEC:
		v.Crv = p.Curve
		if v.Crv == "" {
			v.Crv = crvP256
		}
		if !slices.Contains(curves, v.Crv) {
			return badParameter("Invalid curve name: %s.", v.Crv)
		}
	case ktyOct:
		v.Size = 256
		if p.KeySize != nil {
			v.Size = *p.KeySize
		}
		if !slices.Contains(octSizes, v.Size) {
			return badParameter("The AES key size %d is not supported; use 128, 192 or 256.", v.Size)
		}
	}
	v.KeyOps = p.KeyOps
	if len(v.KeyOps) == 0 {
		v.KeyOps = defaultOps(p.Kty)
	}
	if e := checkOps(p.Kty, v.KeyOps); e != nil {
		return e
	}
	var e *apiError
	if v.Enabled, v.NotBefore, v.Expires, e = checkAttributes(p.Attributes, p.ReleasePolicy); e != nil {
		return e
	}
	if e := checkTags(p.Tags); e != nil {
		return e
	}
	v.Tags = p.Tags
	if e := s.checkNameFree(name); e != nil {
		return e
	}
	if e := s.admit(BucketCreate); e != nil {
		return e
	}
	pe := 0
	if p.PublicExponent != nil {
		pe = *p.PublicExponent
	}
	if err := v.generate(pe); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return ae
		}
		return &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: "Key generation failed."}
	}
	b, e := s.store(v)
	if e != nil {
		return e
	}
	s.counters.creates.Add(1)
	log.Info("key created", "kid", b.Key.KID, "kty", v.Kty, "size", v.Size, "crv", v.Crv, "key_ops", v.KeyOps)
	s.writeJSON(w, http.StatusOK, b)
	return nil
}

// checkNameFree refuses a name that belongs to a soft-deleted key.
func (s *Server) checkNameFree(name string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.keys[strings.ToLower(name)]; e != nil && e.deleted != nil {
		return deletedConflict(name)
	}
	return nil
}

// store adds v as the newest version of its key, persists it, and returns its bundle.
func (s *Server) store(v *keyVersion) (keyBundle, *apiError) {
	ver, err := newVersion()
	if err != nil {
		return keyBundle{}, &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: "Version generation failed."}
	}
	now := s.cfg.Now().Unix()
	v.Version, v.Created, v.Updated = ver, now, now
	s.mu.Lock()
	defer s.mu.Unlock()
	ln := strings.ToLower(v.Name)
	e := s.keys[ln]
	if e != nil && e.deleted != nil {
		return keyBundle{}, deletedConflict(v.Name)
	}
	if e != nil {
		v.Name = e.versions[0].Name // Key Vault names are case-insensitive; keep the first spelling
	}
	v.Seq = s.seq + 1
	if err := s.db.putVersion(ln, v, v.Seq); err != nil {
		s.log.Error("persist key version failed", "name", v.Name, "err", err)
		return keyBundle{}, &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: "The key could not be stored."}
	}
	s.seq = v.Seq
	if e == nil {
		e = &keyEntry{}
		s.keys[ln] = e
	}
	e.versions = append(e.versions, v)
	return s.bundle(v), nil
}

// updateParams are UpdateKeyParameters on the wire.
type updateParams struct {
	KeyOps        []string          `json:"key_ops"`
	Attributes    *keyAttributes    `json:"attributes"`
	Tags          map[string]string `json:"tags"`
	ReleasePolicy json.RawMessage   `json:"release_policy"`
}

func (s *Server) updateKey(w http.ResponseWriter, r *http.Request, name, version string) *apiError {
	var p updateParams
	if e := decodeBody(w, r, &p); e != nil {
		return e
	}
	if len(p.ReleasePolicy) != 0 && string(p.ReleasePolicy) != "null" {
		return badParameter("Key release policies are not emulated by kvemu.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, v, ae := s.lookupAdmit(name, version)
	if ae != nil {
		return ae
	}
	nv := *v // change a copy, swap it in once stored
	if p.KeyOps != nil {
		if ae := checkOps(v.Kty, p.KeyOps); ae != nil {
			return ae
		}
		nv.KeyOps = slices.Clone(p.KeyOps)
	}
	if a := p.Attributes; a != nil {
		if a.Exportable != nil && *a.Exportable {
			return badParameter("Exportable keys must have release policy.")
		}
		if a.Enabled != nil {
			nv.Enabled = *a.Enabled
		}
		if a.NotBefore != nil {
			nv.NotBefore = a.NotBefore
		}
		if a.Expires != nil {
			nv.Expires = a.Expires
		}
	}
	if p.Tags != nil {
		if ae := checkTags(p.Tags); ae != nil {
			return ae
		}
		nv.Tags = maps.Clone(p.Tags)
	}
	nv.Updated = s.cfg.Now().Unix()
	if err := s.db.putVersion(strings.ToLower(v.Name), &nv, s.seq); err != nil {
		s.log.Error("persist key update failed", "name", v.Name, "err", err)
		return &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: "The key could not be stored."}
	}
	for i, old := range e.versions {
		if old == v {
			e.versions[i] = &nv
		}
	}
	s.writeJSON(w, http.StatusOK, s.bundle(&nv))
	return nil
}

func (s *Server) deleteKey(w http.ResponseWriter, name string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, _, ae := s.lookupAdmit(name, "")
	if ae != nil {
		return ae
	}
	now := s.cfg.Now()
	di := &deletedInfo{DeletedDate: now.Unix(), ScheduledPurgeDate: now.AddDate(0, 0, recoverableDays).Unix()}
	if err := s.db.setDeleted(strings.ToLower(name), di); err != nil {
		s.log.Error("persist key deletion failed", "name", name, "err", err)
		return &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: "The key could not be deleted."}
	}
	e.deleted = di
	s.writeJSON(w, http.StatusOK, s.deletedBundle(e.latest().Name, e))
	return nil
}

// deletedEntry returns a soft-deleted key. Callers hold s.mu.
func (s *Server) deletedEntry(name string) (*keyEntry, *apiError) {
	if ae := s.admit(BucketVault); ae != nil {
		return nil, ae
	}
	e := s.keys[strings.ToLower(name)]
	if e == nil || e.deleted == nil {
		return nil, &apiError{status: http.StatusNotFound, code: CodeKeyNotFound,
			message: fmt.Sprintf("Deleted Key not found: %s", name)}
	}
	return e, nil
}

func (s *Server) getDeleted(w http.ResponseWriter, name string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ae := s.deletedEntry(name)
	if ae != nil {
		return ae
	}
	s.writeJSON(w, http.StatusOK, s.deletedBundle(e.latest().Name, e))
	return nil
}

func (s *Server) purgeDeleted(w http.ResponseWriter, name string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ae := s.deletedEntry(name); ae != nil {
		return ae
	}
	ln := strings.ToLower(name)
	if err := s.db.purge(ln); err != nil {
		s.log.Error("persist key purge failed", "name", name, "err", err)
		return &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: "The key could not be purged."}
	}
	delete(s.keys, ln)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) recoverDeleted(w http.ResponseWriter, name string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ae := s.deletedEntry(name)
	if ae != nil {
		return ae
	}
	if err := s.db.setDeleted(strings.ToLower(name), nil); err != nil {
		s.log.Error("persist key recovery failed", "name", name, "err", err)
		return &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: "The key could not be recovered."}
	}
	e.deleted = nil
	s.writeJSON(w, http.StatusOK, s.bundle(e.latest()))
	return nil
}

func (s *Server) getAttestation(w http.ResponseWriter, name, version string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, v, ae := s.lookupAdmit(name, version)
	if ae != nil {
		return ae
	}
	if s.cfg.Kind != KindManagedHSM {
		return badParameter("Key attestation is not supported by this vault; it is available on Managed HSM only.")
	}
	att, err := attest(s.attDevice, s.attRoot, v, s.kid(v))
	if err != nil {
		s.log.Error("attestation failed", "name", name, "err", err)
		return &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: "Attestation failed."}
	}
	b := s.bundle(v)
	b.Attributes.Attestation = att
	s.writeJSON(w, http.StatusOK, b)
	return nil
}

// page is one sortable list entry.
type page struct {
	sortKey string
	item    keyItem
}

// writePage answers a list request with the entries after $skiptoken, at most maxresults
// (or the configured page size) of them, and a nextLink when more remain.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, entries []page) *apiError {
	q := r.URL.Query()
	size := s.cfg.PageSize
	if m := q.Get("maxresults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 || n > DefaultPageSize {
			return badParameter("Invalid maxresults %q: it must be between 1 and %d.", m, DefaultPageSize)
		}
		size = n
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].sortKey < entries[j].sortKey })
	if tok := q.Get("$skiptoken"); tok != "" {
		after, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return badParameter("Invalid $skiptoken.")
		}
		i := sort.Search(len(entries), func(i int) bool { return entries[i].sortKey > string(after) })
		entries = entries[i:]
	}
	out := keyList{Value: []keyItem{}}
	for i, e := range entries {
		if i == size {
			link := fmt.Sprintf("%s%s?api-version=%s&$skiptoken=%s", s.url, r.URL.Path,
				q.Get("api-version"), base64.RawURLEncoding.EncodeToString([]byte(entries[i-1].sortKey)))
			if m := q.Get("maxresults"); m != "" {
				link += "&maxresults=" + m
			}
			out.NextLink = &link
			break
		}
		out.Value = append(out.Value, e.item)
	}
	s.writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ae := s.admit(BucketVault); ae != nil {
		return ae
	}
	var entries []page
	for ln, e := range s.keys {
		if e.deleted != nil {
			continue
		}
		v := e.latest()
		entries = append(entries, page{sortKey: ln, item: keyItem{
			KID: s.url + "/keys/" + v.Name, Attributes: s.attributes(v), Tags: maps.Clone(v.Tags)}})
	}
	return s.writePage(w, r, entries)
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request, name string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, _, ae := s.lookupAdmit(name, "")
	if ae != nil {
		return ae
	}
	entries := make([]page, 0, len(e.versions))
	for _, v := range e.versions {
		entries = append(entries, page{sortKey: fmt.Sprintf("%020d", v.Seq), item: keyItem{
			KID: s.kid(v), Attributes: s.attributes(v), Tags: maps.Clone(v.Tags)}})
	}
	return s.writePage(w, r, entries)
}

func (s *Server) listDeleted(w http.ResponseWriter, r *http.Request) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ae := s.admit(BucketVault); ae != nil {
		return ae
	}
	var entries []page
	for ln, e := range s.keys {
		if e.deleted == nil {
			continue
		}
		v := e.latest()
		entries = append(entries, page{sortKey: ln, item: keyItem{
			KID: s.url + "/keys/" + v.Name, Attributes: s.attributes(v), Tags: maps.Clone(v.Tags),
			RecoveryID:  s.url + "/deletedkeys/" + v.Name,
			DeletedDate: ptr(e.deleted.DeletedDate), ScheduledPurgeDate: ptr(e.deleted.ScheduledPurgeDate)}})
	}
	return s.writePage(w, r, entries)
}

func sortBySeq(vs []*keyVersion) {
	slices.SortFunc(vs, func(a, b *keyVersion) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
}
