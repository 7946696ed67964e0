package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/secret"
)

// TestMain lets the test binary act as kvemu when re-executed with KVEMU_TEST_MAIN=1, so
// process tests need no separate build.
func TestMain(m *testing.M) {
	if os.Getenv("KVEMU_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if code := run(context.Background(), []string{"kvemu", "token", "--out", tokenFile}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("token: exit %d", code)
	}
	t.Setenv("KVEMU_TOKEN", "")
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"unknown flag", []string{"serve", "--bogus"}, exitcode.Usage},
		{"no token", []string{"serve"}, exitcode.Usage},
		{"unknown kind", []string{"serve", "--token-file", tokenFile, "--kind", "standard"}, exitcode.Usage},
		{"address off loopback", []string{"serve", "--token-file", tokenFile, "--addr", "0.0.0.0:0"}, exitcode.Usage},
		{"bad log level", []string{"serve", "--token-file", tokenFile, "--log-level", "loud"}, exitcode.Usage},
		{"stray argument", []string{"serve", "--token-file", tokenFile, "extra"}, exitcode.Usage},
		{"token file exists", []string{"token", "--out", tokenFile}, exitcode.Refused},
		{"token without --out", []string{"token"}, exitcode.Usage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"kvemu"}, tt.args...), &stdout, &stderr)
			if code != tt.want {
				t.Errorf("exit = %d, want %d; stderr: %s", code, tt.want, stderr.Bytes())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want empty", stdout.Bytes())
			}
			if !strings.HasPrefix(stderr.String(), "kvemu: error: ") {
				t.Errorf("stderr = %q, want a kvemu: error: line", stderr.Bytes())
			}
		})
	}
}

func TestToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"kvemu", "token", "--out", path}, &stdout, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).Match(b) {
		t.Errorf("token file holds %d bytes, want 64 hex digits and a newline", len(b))
	}
	if stdout.Len() != 0 {
		t.Errorf("token printed on stdout")
	}
}

// proc is a kvemu serve process.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
	ready  map[string]string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs kvemu serve with args and waits for its ready file.
func startServe(t *testing.T, readyFile string, args ...string) *proc {
	t.Helper()
	os.Remove(readyFile)
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--ready-file", readyFile}, args...)...)
	cmd.Env = append(os.Environ(), "KVEMU_TEST_MAIN=1", "KVEMU_TOKEN=")
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	// The bound is for a hung process, not a timing assertion.
	deadline := time.After(60 * time.Second)
	for {
		if b, err := os.ReadFile(readyFile); err == nil {
			p.ready = parseReady(t, b)
			return p
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("kvemu serve exited before ready: %v\n%s", err, p.stderr.String())
		case <-deadline:
			t.Fatalf("kvemu serve not ready\n%s", p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func parseReady(t *testing.T, b []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			t.Fatalf("ready file line %q is not KEY=value", sc.Text())
		}
		m[k] = v
	}
	return m
}

// stop sends sig and returns the exit code.
func (p *proc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestServe(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if code := run(context.Background(), []string{"kvemu", "token", "--out", tokenFile}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("token: exit %d", code)
	}
	tok, err := secret.Source{File: tokenFile}.Read()
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready")
	caFile := filepath.Join(dir, "ca.pem")
	args := []string{"--token-file", tokenFile, "--kind", "managedhsm", "--state", filepath.Join(dir, "state.db"),
		"--ca-out", caFile, "--admin-addr", "127.0.0.1:0", "--attestation-root-out", filepath.Join(dir, "root.pem")}

	p := startServe(t, ready, args...)
	url := p.ready["KVEMU_VAULT_URL"]
	if !strings.HasPrefix(url, "https://127.0.0.1:") || !strings.HasPrefix(p.ready["KVEMU_ADMIN_URL"], "http://127.0.0.1:") ||
		p.ready["KVEMU_CA_FILE"] != caFile || p.ready["KVEMU_KIND"] != "managedhsm" {
		t.Fatalf("ready file = %v", p.ready)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	client := func(url string) *azkeys.Client {
		return kvemutest.NewClient(t, url, ca, kvemutest.Credential{Token: tok}, nil)
	}
	ctx := context.Background()
	created, err := client(url).CreateKey(ctx, "kek", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)}}, nil)
	if err != nil {
		t.Fatalf("CreateKey against the process: %v", err)
	}
	if n := adminVersions(t, p.ready["KVEMU_ADMIN_URL"], tok, "kek"); n != 1 {
		t.Errorf("admin versions of kek = %d, want 1", n)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit after SIGTERM = %d, want 0\n%s", code, p.stderr.String())
	}
	if _, err := os.Stat(ready); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ready file left after a clean stop: %v", err)
	}
	logs := p.stderr.String()
	if !strings.Contains(logs, "vault listening") || !strings.Contains(logs, "key created") {
		t.Errorf("stderr lacks the expected logs:\n%s", logs)
	}
	if strings.Contains(logs, tok.Reveal()) {
		t.Errorf("stderr contains the token")
	}

	// Restart on the same state: same URL, same key; then crash it and restart again.
	for _, stopSig := range []os.Signal{syscall.SIGKILL, syscall.SIGINT} {
		p = startServe(t, ready, args...)
		if p.ready["KVEMU_VAULT_URL"] != url {
			t.Errorf("URL after restart = %s, want %s", p.ready["KVEMU_VAULT_URL"], url)
		}
		got, err := client(p.ready["KVEMU_VAULT_URL"]).GetKey(ctx, "kek", "", nil)
		if err != nil {
			t.Fatalf("GetKey after restart: %v", err)
		}
		if *got.Key.KID != *created.Key.KID || !bytes.Equal(got.Key.N, created.Key.N) {
			t.Errorf("key after restart = %s, want %s with the same modulus", *got.Key.KID, *created.Key.KID)
		}
		code := p.stop(t, stopSig)
		if stopSig == syscall.SIGINT && code != 0 {
			t.Errorf("exit after SIGINT = %d, want 0", code)
		}
	}
}

func adminVersions(t *testing.T, adminURL string, tok secret.Value, name string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, adminURL+"/keys/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Versions []kvemu.KeyVersionInfo `json:"versions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return len(body.Versions)
}
