package kvemu

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// The admin endpoint is plain HTTP on its own loopback port, for tests and scripts in other
// processes. Every request needs the vault's bearer token. Routes:
//
//	GET    /info                  {"vault_url", "admin_url", "kind"}
//	GET    /stats                 Stats
//	POST   /stats/reset           zero the counters
//	GET    /keys                  {"keys": [names]}
//	GET    /keys/{name}           {"versions": [KeyVersionInfo]} or 404
//	GET    /faults                {"faults": [Fault]}
//	POST   /faults                queue a Fault (JSON, durations as "1.5s")
//	DELETE /faults                clear the queue
//	GET    /latency               {"latency": "100ms"}
//	PUT    /latency               set it from {"latency": "100ms"}
//	GET    /ca.pem                the TLS CA certificate
//	GET    /attestation-root.pem  the stand-in HSM vendor root certificate

// AdminInfo is the admin endpoint's /info answer.
type AdminInfo struct {
	VaultURL string `json:"vault_url"`
	AdminURL string `json:"admin_url"`
	Kind     Kind   `json:"kind"`
}

type latencyJSON struct {
	Latency string `json:"latency"`
}

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, AdminInfo{VaultURL: s.url, AdminURL: s.adminURL, Kind: s.cfg.Kind})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("POST /stats/reset", func(w http.ResponseWriter, r *http.Request) {
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, map[string][]string{"keys": s.KeyNames()})
	})
	mux.HandleFunc("GET /keys/{name}", func(w http.ResponseWriter, r *http.Request) {
		vs, err := s.KeyVersions(r.PathValue("name"))
		if errors.Is(err, ErrNotFound) {
			adminError(w, http.StatusNotFound, err)
			return
		}
		adminJSON(w, http.StatusOK, map[string][]KeyVersionInfo{"versions": vs})
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, map[string][]Fault{"faults": s.PendingFaults()})
	})
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := adminDecode(r, &f); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		if err := s.InjectFault(f); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /latency", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, latencyJSON{Latency: s.Latency().String()})
	})
	mux.HandleFunc("PUT /latency", func(w http.ResponseWriter, r *http.Request) {
		var l latencyJSON
		if err := adminDecode(r, &l); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		d, err := time.ParseDuration(l.Latency)
		if err != nil || d < 0 {
			adminError(w, http.StatusBadRequest, errors.New("latency must be a non-negative duration such as \"250ms\""))
			return
		}
		s.SetLatency(d)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /ca.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.CACertPEM())
	})
	mux.HandleFunc("GET /attestation-root.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.AttestationRootPEM())
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) != 1 {
			adminError(w, http.StatusUnauthorized, errors.New("admin requests need the vault's bearer token"))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func adminDecode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func adminError(w http.ResponseWriter, status int, err error) {
	adminJSON(w, status, map[string]string{"error": err.Error()})
}
