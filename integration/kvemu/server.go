package kvemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a running emulated vault. Its methods are safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	url      string // vault URL, https://127.0.0.1:port, no trailing slash
	adminURL string

	ca, tlsCert        *certKey
	attRoot, attDevice *certKey
	db                 *stateDB
	vaultSrv, adminSrv *http.Server
	vaultLn, adminLn   net.Listener
	tokenHash          [32]byte
	challenge          string
	serveWG            sync.WaitGroup
	closeOnce          sync.Once
	closing            chan struct{} // closed when Shutdown starts: late commits are dropped
	closeErr           error
	throttle           *throttler
	faults             faultSet
	latency            atomic.Int64 // nanoseconds
	counters           counters

	mu   sync.Mutex
	keys map[string]*keyEntry // by lowercased name
	seq  uint64
}

// keyEntry is a key: its versions in creation order, and whether it is soft-deleted.
type keyEntry struct {
	versions []*keyVersion
	deleted  *deletedInfo
}

func (e *keyEntry) latest() *keyVersion { return e.versions[len(e.versions)-1] }

func (e *keyEntry) version(v string) *keyVersion {
	for _, kv := range e.versions {
		if strings.EqualFold(kv.Version, v) {
			return kv
		}
	}
	return nil
}

type counters struct {
	requests, challenges, unauthorized, faults, throttled atomic.Uint64
	creates, imports, importsRefused                      atomic.Uint64
	mu                                                    sync.Mutex
	responses                                             map[int]uint64
}

// Start creates the vault and starts serving. Close stops it.
func Start(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		tokenHash: sha256.Sum256([]byte(cfg.Token.Reveal())),
		throttle:  newThrottler(cfg.Limits),
		keys:      map[string]*keyEntry{},
		closing:   make(chan struct{}),
	}
	s.counters.responses = map[int]uint64{}
	if cfg.StatePath != "" {
		db, err := openState(cfg.StatePath, cfg.Kind)
		if err != nil {
			return nil, err
		}
		s.db = db
	}
	if err := s.start(); err != nil {
		s.db.close()
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	var err error
	if s.ca, err = s.loadOrCreateCert("tls_ca", func() (*certKey, error) { return newCA("kvemu TLS CA") }); err != nil {
		return err
	}
	if s.tlsCert, err = s.loadOrCreateCert("tls_server", func() (*certKey, error) { return newServerCert(s.ca) }); err != nil {
		return err
	}
	if s.attRoot, err = s.loadOrCreateCert("attestation_root", func() (*certKey, error) {
		return newCA("kvemu stand-in HSM vendor root")
	}); err != nil {
		return err
	}
	if s.attDevice, err = s.loadOrCreateCert("attestation_device", func() (*certKey, error) { return newDeviceCert(s.attRoot) }); err != nil {
		return err
	}
	if err := s.loadKeys(); err != nil {
		return err
	}
	if err := s.listen(); err != nil {
		return err
	}
	if s.cfg.CAFile != "" {
		if err := WriteFileAtomic(s.cfg.CAFile, s.ca.certPEM(), 0o644); err != nil {
			s.closeListeners()
			return fmt.Errorf("write CA file: %w", err)
		}
	}
	s.challenge = fmt.Sprintf(`Bearer authorization="https://login.kvemu.invalid/%s", resource="%s"`,
		s.cfg.TenantID, s.cfg.Kind.resource())

	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	p := new(http.Protocols)
	p.SetHTTP1(true) // HTTP/1.1 only, so that connection faults are real TCP resets
	s.vaultSrv = &http.Server{
		Handler:           http.HandlerFunc(s.serveVault),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{s.tlsCert.cert.Raw, s.ca.cert.Raw}, PrivateKey: s.tlsCert.key}}, MinVersion: tls.VersionTLS12},
		Protocols:         p,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          errLog,
	}
	s.serveWG.Add(1)
	go func() {
		defer s.serveWG.Done()
		if err := s.vaultSrv.ServeTLS(s.vaultLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("vault server stopped", "err", err)
		}
	}()
	if s.adminLn != nil {
		s.adminSrv = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: errLog}
		s.serveWG.Add(1)
		go func() {
			defer s.serveWG.Done()
			if err := s.adminSrv.Serve(s.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("admin server stopped", "err", err)
			}
		}()
	}
	s.log.Info("vault listening", "url", s.url, "kind", s.cfg.Kind, "admin_url", s.adminURL,
		"state", s.cfg.StatePath, "keys", len(s.keys))
	return nil
}

func (s *Server) loadOrCreateCert(name string, create func() (*certKey, error)) (*certKey, error) {
	if raw := s.db.get(bucketCerts, []byte(name)); raw != nil {
		ck, err := parseCertKey(raw)
		if err != nil {
			return nil, fmt.Errorf("load %s from state: %w", name, err)
		}
		return ck, nil
	}
	ck, err := create()
	if err != nil {
		return nil, err
	}
	raw, err := ck.marshal()
	if err != nil {
		return nil, err
	}
	if err := s.db.put(bucketCerts, []byte(name), raw); err != nil {
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	return ck, nil
}

func (s *Server) loadKeys() error {
	versions, deleted, seq, err := s.db.loadAll()
	if err != nil {
		return err
	}
	for _, v := range versions {
		if err := v.load(); err != nil {
			return fmt.Errorf("load state: %w", err)
		}
		ln := strings.ToLower(v.Name)
		e := s.keys[ln]
		if e == nil {
			e = &keyEntry{}
			s.keys[ln] = e
		}
		e.versions = append(e.versions, v)
	}
	for _, e := range s.keys {
		sortBySeq(e.versions)
	}
	for ln, di := range deleted {
		if e := s.keys[ln]; e != nil {
			e.deleted = &di
		}
	}
	s.seq = seq
	return nil
}

// listen binds the vault and admin listeners. With port 0 and a remembered address, the
// remembered port is tried first so key identifiers (which contain host and port) stay
// valid across restarts.
func (s *Server) listen() error {
	addr := s.cfg.Addr
	var ln net.Listener
	if host, port, _ := net.SplitHostPort(addr); port == "0" {
		if prev := string(s.db.get(bucketMeta, keyAddr)); prev != "" {
			if ph, _, _ := net.SplitHostPort(prev); ph == host {
				if l, err := net.Listen("tcp", prev); err == nil {
					ln = l
				} else {
					s.log.Warn("previous vault address unavailable; key identifiers of stored keys change",
						"addr", prev, "err", err)
				}
			}
		}
	}
	if ln == nil {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		ln = l
	}
	s.vaultLn = ln
	s.url = "https://" + ln.Addr().String()
	if err := s.db.put(bucketMeta, keyAddr, []byte(ln.Addr().String())); err != nil {
		ln.Close()
		return fmt.Errorf("store address: %w", err)
	}
	if s.cfg.AdminAddr != "" {
		al, err := net.Listen("tcp", s.cfg.AdminAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen admin %s: %w", s.cfg.AdminAddr, err)
		}
		s.adminLn = al
		s.adminURL = "http://" + al.Addr().String()
	}
	return nil
}

func (s *Server) closeListeners() {
	if s.vaultLn != nil {
		s.vaultLn.Close()
	}
	if s.adminLn != nil {
		s.adminLn.Close()
	}
}

// URL returns the vault URL, https://127.0.0.1:<port> (no trailing slash).
func (s *Server) URL() string { return s.url }

// AdminURL returns the admin endpoint URL, or "" when Config.AdminAddr was empty.
func (s *Server) AdminURL() string { return s.adminURL }

// Kind returns the kind of vault.
func (s *Server) Kind() Kind { return s.cfg.Kind }

// CACertPEM returns the PEM certificate of the TLS CA that issued the server certificate.
func (s *Server) CACertPEM() []byte { return s.ca.certPEM() }

// CertPool returns a pool holding the TLS CA.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.ca.cert)
	return p
}

// HTTPClient returns a new HTTP client that trusts the emulator's TLS CA.
func (s *Server) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}
}

// AttestationRootPEM returns the PEM certificate of the stand-in HSM vendor root that key
// attestations chain to (Managed HSM only; see VerifyAttestation).
func (s *Server) AttestationRootPEM() []byte { return s.attRoot.certPEM() }

// AttestationRoots returns a pool holding the stand-in HSM vendor root.
func (s *Server) AttestationRoots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.attRoot.cert)
	return p
}

// Close stops the listeners, waits up to five seconds for requests in flight, and closes
// the state file. It is idempotent.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown stops the listeners, waits for requests in flight until ctx ends (then closes
// their connections), and closes the state file. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.closing)
		var errs []error
		for _, srv := range []*http.Server{s.vaultSrv, s.adminSrv} {
			if srv == nil {
				continue
			}
			if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, err)
				srv.Close()
			}
		}
		s.serveWG.Wait()
		s.mu.Lock()
		if err := s.db.close(); err != nil {
			errs = append(errs, fmt.Errorf("close state: %w", err))
		}
		s.db = nil
		s.mu.Unlock()
		s.closeErr = errors.Join(errs...)
		s.log.Info("vault stopped", "url", s.url)
	})
	return s.closeErr
}

// SetLatency adds a fixed delay before every request on the vault listener; zero removes it.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(max(d, 0))) }

// Latency returns the fixed delay set by SetLatency.
func (s *Server) Latency() time.Duration { return time.Duration(s.latency.Load()) }

// InjectFault queues a fault for the next f.Count matching authenticated requests. Faults
// apply in the order they were queued; a request consumes at most one.
func (s *Server) InjectFault(f Fault) error { return s.faults.add(f) }

// PendingFaults returns the queued faults with their remaining counts.
func (s *Server) PendingFaults() []Fault { return s.faults.list() }

// ClearFaults removes every queued fault.
func (s *Server) ClearFaults() { s.faults.clear() }

// Stats are the emulator's counters since start (or the last ResetStats).
type Stats struct {
	// Requests counts every request on the vault listener.
	Requests uint64 `json:"requests"`
	// Challenges counts 401 answers to requests without a token (the SDK's first request).
	Challenges uint64 `json:"challenges"`
	// Unauthorized counts 401 answers to requests with a wrong token.
	Unauthorized uint64 `json:"unauthorized"`
	// Faults counts injected faults applied.
	Faults uint64 `json:"faults"`
	// Throttled counts 429 answers from throttling (injected 429s are in Faults).
	Throttled uint64 `json:"throttled"`
	// Creates and Imports count key versions created and imported; ImportsRefused counts
	// imports refused after authentication (bad parameters, bad .byok, unwrap failures).
	Creates        uint64 `json:"creates"`
	Imports        uint64 `json:"imports"`
	ImportsRefused uint64 `json:"imports_refused"`
	// Responses counts responses by status code (connections reset by a fault have none).
	Responses map[int]uint64 `json:"responses"`
	// Buckets are the throttling buckets by name (Bucket* constants).
	Buckets map[string]BucketStats `json:"buckets"`
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.counters
	c.mu.Lock()
	resp := maps.Clone(c.responses)
	c.mu.Unlock()
	return Stats{
		Requests: c.requests.Load(), Challenges: c.challenges.Load(), Unauthorized: c.unauthorized.Load(),
		Faults: c.faults.Load(), Throttled: c.throttled.Load(), Creates: c.creates.Load(),
		Imports: c.imports.Load(), ImportsRefused: c.importsRefused.Load(),
		Responses: resp, Buckets: s.throttle.stats(),
	}
}

// ResetStats zeroes the counters (not the throttling windows).
func (s *Server) ResetStats() {
	c := &s.counters
	for _, a := range []*atomic.Uint64{&c.requests, &c.challenges, &c.unauthorized, &c.faults,
		&c.throttled, &c.creates, &c.imports, &c.importsRefused} {
		a.Store(0)
	}
	c.mu.Lock()
	c.responses = map[int]uint64{}
	c.mu.Unlock()
	s.throttle.resetStats()
}

// KeyVersionInfo describes one stored key version, without key material.
type KeyVersionInfo struct {
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	KID       string            `json:"kid"`
	Kty       string            `json:"kty"`
	Crv       string            `json:"crv,omitempty"`
	Size      int               `json:"size,omitempty"`
	KeyOps    []string          `json:"key_ops"`
	Enabled   bool              `json:"enabled"`
	NotBefore *time.Time        `json:"nbf,omitempty"`
	Expires   *time.Time        `json:"exp,omitempty"`
	Created   time.Time         `json:"created"`
	Updated   time.Time         `json:"updated"`
	Tags      map[string]string `json:"tags,omitempty"`
	Imported  bool              `json:"imported"`
	Deleted   bool              `json:"deleted"`
}

// KeyNames returns the names of the stored keys, deleted ones included, sorted.
func (s *Server) KeyNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.keys))
	for _, e := range s.keys {
		names = append(names, e.versions[0].Name)
	}
	slices.Sort(names)
	return names
}

// KeyVersions returns the versions of a key in creation order, or an error wrapping
// ErrNotFound.
func (s *Server) KeyVersions(name string) ([]KeyVersionInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.keys[strings.ToLower(name)]
	if e == nil {
		return nil, fmt.Errorf("key %s: %w", name, ErrNotFound)
	}
	out := make([]KeyVersionInfo, 0, len(e.versions))
	for _, v := range e.versions {
		out = append(out, KeyVersionInfo{
			Name: v.Name, Version: v.Version, KID: s.kid(v), Kty: v.Kty, Crv: v.Crv, Size: v.Size,
			KeyOps: append([]string(nil), v.KeyOps...), Enabled: v.Enabled,
			NotBefore: unixPtr(v.NotBefore), Expires: unixPtr(v.Expires),
			Created: time.Unix(v.Created, 0).UTC(), Updated: time.Unix(v.Updated, 0).UTC(),
			Tags: maps.Clone(v.Tags), Imported: v.Imported, Deleted: e.deleted != nil,
		})
	}
	return out, nil
}

func unixPtr(p *int64) *time.Time {
	if p == nil {
		return nil
	}
	t := time.Unix(*p, 0).UTC()
	return &t
}

// kid returns the versioned key identifier of v.
func (s *Server) kid(v *keyVersion) string { return s.url + "/keys/" + v.Name + "/" + v.Version }

// serveVault is the vault listener's handler: latency, authentication, faults, then the
// API. Responses are buffered so faults can act after the operation ran.
func (s *Server) serveVault(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.counters.requests.Add(1)
	reqID := newRequestID()
	log := s.log.With("request_id", reqID, "method", r.Method, "path", r.URL.Path)
	if d := s.Latency(); d > 0 && !sleepCtx(r.Context(), d) {
		return
	}
	rec := newRecorder()
	rec.Header().Set("x-ms-request-id", reqID)
	rec.Header().Set("x-ms-keyvault-service-version", "kvemu")
	rec.Header().Set("Cache-Control", "no-cache")

	if !s.authorize(rec, r, log) {
		s.flush(w, rec)
		return
	}
	if f, ok := s.faults.take(r); ok {
		s.counters.faults.Add(1)
		log.Info("fault injected", "fault", f.Kind, "status", f.Status)
		switch f.Kind {
		case FaultStatus:
			e := &apiError{status: f.Status, code: faultCode(f.Status), message: "Injected fault.", retryAfter: f.RetryAfter}
			s.writeError(rec, e)
			s.flush(w, rec)
			return
		case FaultReset:
			resetConn(w)
			return
		case FaultSlow:
			s.route(rec, r, log)
			if !sleepCtx(r.Context(), f.Delay) {
				return
			}
			s.flush(w, rec)
			return
		case FaultCommitThenReset:
			s.route(rec, r, log)
			log.Info("response dropped after commit", "status", rec.status)
			resetConn(w)
			return
		case FaultLateCommit:
			s.lateCommit(w, rec, r, f.Delay, log)
			return
		case FaultLie:
			s.route(rec, r, log)
			if rec.status >= 200 && rec.status < 300 {
				body := f.Lie.apply(rec.body.Bytes())
				rec.body.Reset()
				rec.body.Write(body)
				log.Info("answer changed by a lie", "status", rec.status)
			}
			s.flush(w, rec)
			return
		case FaultPass:
		}
	}
	s.route(rec, r, log)
	s.flush(w, rec)
	log.Debug("request", "status", rec.status, "duration", time.Since(start))
}

// lateCommit reads the request, holds it for delay whatever the client does, executes it
// and answers if the client still listens. It is dropped if the server closes meanwhile.
func (s *Server) lateCommit(w http.ResponseWriter, rec *recorder, r *http.Request, delay time.Duration, log *slog.Logger) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		resetConn(w)
		return
	}
	held := r.Clone(context.WithoutCancel(r.Context()))
	held.Body = io.NopCloser(bytes.NewReader(body))
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.closing:
		log.Info("late commit dropped: the vault is closing")
		resetConn(w)
		return
	}
	s.route(rec, held, log)
	log.Info("request executed late", "status", rec.status, "delay", delay)
	if r.Context().Err() == nil {
		s.flush(w, rec)
	}
}

func faultCode(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return CodeThrottled
	case http.StatusServiceUnavailable:
		return CodeUnavailable
	}
	return CodeInternal
}

// authorize checks the bearer token. Without one it answers the challenge the SDK expects;
// with a wrong one it answers 401 with the challenge and an error body.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, log *slog.Logger) bool {
	h := r.Header.Get("Authorization")
	scheme, token, found := strings.Cut(h, " ")
	if h == "" || !found || !strings.EqualFold(scheme, "Bearer") {
		s.counters.challenges.Add(1)
		w.Header().Set("WWW-Authenticate", s.challenge)
		s.writeError(w, &apiError{status: http.StatusUnauthorized, code: CodeUnauthorized,
			message: "AKV10000: Request is missing a Bearer or PoP token."})
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) != 1 {
		s.counters.unauthorized.Add(1)
		log.Warn("request with a wrong token refused")
		w.Header().Set("WWW-Authenticate", s.challenge)
		s.writeError(w, &apiError{status: http.StatusUnauthorized, code: CodeUnauthorized,
			message: "AKV10022: Invalid token: the token does not match this vault."})
		return false
	}
	return true
}

// resetConn closes the client connection without a response: on HTTP/1.1 a TCP reset,
// otherwise an aborted stream.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // close with RST, skipping TLS close_notify and FIN
	}
	_ = raw.Close()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// recorder buffers a response.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (s *Server) flush(w http.ResponseWriter, rec *recorder) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	s.counters.mu.Lock()
	s.counters.responses[rec.status]++
	s.counters.mu.Unlock()
	maps.Copy(w.Header(), rec.header)
	w.Header().Set("Content-Length", strconv.Itoa(rec.body.Len()))
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.writeError(w, &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: "encode response"})
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		secs := int64((e.retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	b, _ := json.Marshal(e.body())
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}

// WriteFileAtomic writes b to path through a temporary file, fsync and rename, so a reader
// polling for the file (a script waiting for the CA or the ready file) never reads it
// half-written.
func WriteFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
