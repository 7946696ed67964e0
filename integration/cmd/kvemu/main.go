// Command kvemu runs the local Azure Key Vault emulator (package kvemu) as a process, for
// end-to-end tests in other processes, benchmarks and the demo.
//
//	kvemu token --out FILE
//	kvemu serve --token-file FILE [--addr 127.0.0.1:0] [--kind premium|managedhsm]
//	            [--state FILE] [--ca-out FILE] [--admin-addr 127.0.0.1:0] [--ready-file FILE] ...
//
// serve writes, once both listeners accept connections, the ready file (and stdout) as
// shell-sourceable lines:
//
//	KVEMU_VAULT_URL=https://127.0.0.1:41234
//	KVEMU_ADMIN_URL=http://127.0.0.1:41235
//	KVEMU_CA_FILE=/tmp/x/ca.pem
//	KVEMU_KIND=premium
//	KVEMU_PID=4242
//
// It stops cleanly on SIGINT or SIGTERM (exit 0) and removes the ready file. The token is
// read from --token-file or KVEMU_TOKEN, never from a flag, and is never logged. Logs go to
// stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/secret"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := newApp(stdout, stderr).RunContext(ctx, args)
	if err == nil {
		return exitcode.OK
	}
	code := exitcode.From(err)
	fmt.Fprintf(stderr, "kvemu: error: %v\n", err)
	if hint := exitcode.Hint(err); hint != "" {
		fmt.Fprintf(stderr, "kvemu: hint: %s\n", hint)
	}
	return code
}

// usageError marks a flag parsing error as a usage error (exit 2) and keeps help off stdout.
func usageError(_ *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%w: %v", exitcode.ErrUsage, err)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:           "kvemu",
		Usage:          "local Azure Key Vault emulator for tests and demos (never for real keys)",
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
		Commands:       []*cli.Command{serveCommand(stdout, stderr), tokenCommand()},
	}
}

// serveOptions are the options of kvemu serve.
type serveOptions struct {
	addr, adminAddr, kind, tenant string
	tokenFile, state, caOut       string
	attestationRootOut, readyFile string
	pageSize                      int
	limits                        kvemu.Limits
	logLevel, logFormat           string
}

func serveCommand(stdout, stderr io.Writer) *cli.Command {
	var o serveOptions
	limit := func(name, usage string, dst *int) cli.Flag {
		return &cli.IntFlag{Name: name, Usage: usage + " per window (0: Azure's value, -1: unlimited)", Destination: dst}
	}
	return &cli.Command{
		Name:         "serve",
		Usage:        "serve an emulated vault until SIGINT or SIGTERM",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:0", Usage: "loopback `ADDRESS` of the vault (TLS); with port 0 a state file's previous port is tried first", Destination: &o.addr},
			&cli.StringFlag{Name: "kind", Value: string(kvemu.KindPremium), Usage: "vault kind: premium or managedhsm", Destination: &o.kind},
			&cli.StringFlag{Name: "token-file", Usage: "`FILE` whose first line is the bearer token clients must send (or env KVEMU_TOKEN)", Destination: &o.tokenFile},
			&cli.StringFlag{Name: "state", Usage: "bbolt state `FILE`; keys and certificates survive restarts (default: in memory)", Destination: &o.state},
			&cli.StringFlag{Name: "ca-out", Usage: "write the TLS CA certificate (PEM) to `FILE`", Destination: &o.caOut},
			&cli.StringFlag{Name: "attestation-root-out", Usage: "write the stand-in HSM vendor root certificate (PEM) to `FILE`", Destination: &o.attestationRootOut},
			&cli.StringFlag{Name: "admin-addr", Usage: "loopback `ADDRESS` of the plain-HTTP admin endpoint (default: none)", Destination: &o.adminAddr},
			&cli.StringFlag{Name: "ready-file", Usage: "write KVEMU_VAULT_URL=..., KVEMU_ADMIN_URL=... lines to `FILE` once serving", Destination: &o.readyFile},
			&cli.StringFlag{Name: "tenant", Usage: "tenant `ID` named in the authentication challenge", Destination: &o.tenant},
			&cli.IntFlag{Name: "page-size", Value: kvemu.DefaultPageSize, Usage: "list page size without maxresults (1 to 25)", Destination: &o.pageSize},
			&cli.DurationFlag{Name: "throttle-window", Value: kvemu.DefaultWindow, Usage: "sliding throttling window", Destination: &o.limits.Window},
			limit("limit-create", "key creations", &o.limits.Create),
			limit("limit-rsa-2048", "other operations on RSA-2048 keys", &o.limits.RSA2048),
			limit("limit-rsa-3072", "other operations on RSA-3072 keys", &o.limits.RSA3072),
			limit("limit-rsa-4096", "other operations on RSA-4096 keys", &o.limits.RSA4096),
			limit("limit-ec", "other operations on EC keys", &o.limits.EC),
			limit("limit-oct", "operations on AES keys", &o.limits.Oct),
			limit("limit-vault", "lists and requests for unknown keys", &o.limits.Vault),
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", Destination: &o.logLevel},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json", Destination: &o.logFormat},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("%w: serve takes no arguments", exitcode.ErrUsage)
			}
			return runServe(c.Context, o, stdout, stderr)
		},
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: log-level %q: want debug, info, warn or error", exitcode.ErrUsage, level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%w: log-format %q: want text or json", exitcode.ErrUsage, format)
}

func runServe(ctx context.Context, o serveOptions, stdout, stderr io.Writer) error {
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	kind, err := kvemu.ParseKind(o.kind)
	if err != nil {
		return fmt.Errorf("%w: kind: %v", exitcode.ErrUsage, err)
	}
	token, err := secret.Source{What: "vault token", File: o.tokenFile, Env: "KVEMU_TOKEN"}.Read()
	if err != nil {
		return exitcode.Wrap(exitcode.Usage, err, "create one with: kvemu token --out FILE, then pass --token-file FILE")
	}
	srv, err := kvemu.Start(kvemu.Config{
		Kind: kind, Addr: o.addr, AdminAddr: o.adminAddr, Token: token, TenantID: o.tenant,
		StatePath: o.state, CAFile: o.caOut, Limits: o.limits, PageSize: o.pageSize, Logger: log,
	})
	if errors.Is(err, kvemu.ErrStateLocked) {
		return fmt.Errorf("%w: %v", exitcode.ErrLocked, err)
	}
	if err != nil {
		return fmt.Errorf("%w: start emulator: %v", exitcode.ErrUsage, err)
	}
	defer srv.Close()
	if o.attestationRootOut != "" {
		if err := kvemu.WriteFileAtomic(o.attestationRootOut, srv.AttestationRootPEM(), 0o644); err != nil {
			return fmt.Errorf("%w: write attestation root: %v", exitcode.ErrMedia, err)
		}
	}
	ready := readyLines(srv, o.caOut)
	if o.readyFile != "" {
		if err := kvemu.WriteFileAtomic(o.readyFile, []byte(ready), 0o644); err != nil {
			return fmt.Errorf("%w: write ready file: %v", exitcode.ErrMedia, err)
		}
		defer os.Remove(o.readyFile)
	}
	if _, err := io.WriteString(stdout, ready); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}

	<-ctx.Done()
	log.Info("shutting down", "cause", context.Cause(ctx))
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// readyLines returns the shell-sourceable description of a running emulator.
func readyLines(srv *kvemu.Server, caFile string) string {
	if caFile != "" {
		if abs, err := filepath.Abs(caFile); err == nil {
			caFile = abs
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "KVEMU_VAULT_URL=%s\n", srv.URL())
	fmt.Fprintf(&b, "KVEMU_ADMIN_URL=%s\n", srv.AdminURL())
	fmt.Fprintf(&b, "KVEMU_CA_FILE=%s\n", caFile)
	fmt.Fprintf(&b, "KVEMU_KIND=%s\n", srv.Kind())
	fmt.Fprintf(&b, "KVEMU_PID=%d\n", os.Getpid())
	return b.String()
}

func tokenCommand() *cli.Command {
	var out string
	return &cli.Command{
		Name:         "token",
		Usage:        "write a fresh random bearer token to a new file (mode 0600)",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "`FILE` to create (required); an existing file is never overwritten", Destination: &out},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("%w: token takes no arguments", exitcode.ErrUsage)
			}
			if out == "" {
				return fmt.Errorf("%w: --out is required", exitcode.ErrUsage)
			}
			return runToken(out)
		},
	}
}

func runToken(path string) error {
	tok, err := kvemu.NewToken()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: %s exists already", exitcode.ErrRefused, path)
	}
	if err != nil {
		return fmt.Errorf("%w: create token file: %v", exitcode.ErrMedia, err)
	}
	if _, err := io.WriteString(f, tok.Reveal()+"\n"); err != nil {
		f.Close()
		return fmt.Errorf("%w: write token file: %v", exitcode.ErrMedia, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%w: sync token file: %v", exitcode.ErrMedia, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%w: close token file: %v", exitcode.ErrMedia, err)
	}
	return nil
}
