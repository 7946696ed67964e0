// Package clirun is the command-line frame both binaries share: global flags, the logger,
// error output, exit codes and signals.
//
// Policy enforced here: a command returns an error and never exits; Run maps that error to one
// exit code (shared/exitcode) in one place; stdout carries only results (jsonout); failures are
// printed as "<bin>: error: <msg>" and "<bin>: hint: <hint>" on stderr, or with --json as one
// JSON object on stderr; SIGINT and SIGTERM cancel the context, and an interrupted command exits
// with 130.
package clirun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/buildinfo"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/jsonout"
	"github.com/airgap-byok/airgap-byok/shared/logsetup"
	"github.com/airgap-byok/airgap-byok/shared/medialock"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// Env is what a command may touch of the process: its streams, its logger and the global
// options. Tests build one with buffers.
type Env struct {
	Name   string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Log    *slog.Logger
	JSON   bool
	// Terminal is where PIN prompts are asked (no echo); nil means /dev/tty.
	Terminal *os.File

	// Rules map the binary's own domain errors to exit codes and hints, besides those of
	// the shared packages (see Classify).
	Rules []exitcode.Rule

	// The global options, given before the command (app) or after it (cmd); a value given
	// after the command wins.
	app, cmd    globals
	showVersion bool // --version

	ctx context.Context // Run's: cancelled by Ctrl-C
}

// Context is the context Run runs the command in, which Ctrl-C (SIGINT) or SIGTERM cancels;
// context.Background() outside Run.
func (e *Env) Context() context.Context {
	if e.ctx == nil {
		return context.Background()
	}
	return e.ctx
}

// WaitFlag is the --wait flag of every command that takes the medium's lock.
func WaitFlag(dst *time.Duration) cli.Flag {
	return &cli.DurationFlag{Name: "wait", Usage: "if another byok command holds the medium or the state folder, wait up to `DURATION` (e.g. 30s, 10m) for it to finish; 0 fails at once (exit 8)", Destination: dst}
}

// globals are the options every command accepts before or after its name.
type globals struct {
	json      bool
	verbose   bool
	logLevel  string
	logFormat string
}

func (e *Env) setJSON() { e.JSON = e.JSON || e.app.json || e.cmd.json }

// logger builds the process's logger from the global options: quiet by default (warnings and
// errors only: stdout already carries the result), INFO with -v, JSON lines when the output
// is JSON, so that stderr then carries nothing but JSON.
func (e *Env) logger() (*slog.Logger, error) {
	level := firstNonEmpty(e.cmd.logLevel, e.app.logLevel)
	if level == "" {
		level = "warn"
		if e.app.verbose || e.cmd.verbose {
			level = "info"
		}
	}
	format := firstNonEmpty(e.cmd.logFormat, e.app.logFormat)
	if format == "" {
		format = "text"
		if e.JSON {
			format = "json"
		}
	}
	return logsetup.New(e.Stderr, level, format)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// NewEnv returns an Env for the named binary and streams; its logger discards until the app's
// Before hook builds the real one.
func NewEnv(name string, stdin io.Reader, stdout, stderr io.Writer) *Env {
	return &Env{Name: name, Stdin: stdin, Stdout: stdout, Stderr: stderr, Log: logsetup.Discard()}
}

// Result writes a command's result: the JSON form with --json, else the text form.
func (e *Env) Result(v any, text func(w io.Writer) error) error {
	if e.JSON {
		return jsonout.Write(e.Stdout, v)
	}
	return text(e.Stdout)
}

// Usagef returns a usage error (exit code 2).
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", exitcode.ErrUsage, fmt.Sprintf(format, args...))
}

// globalFlags are added to the app and to every command, so that they work before or after
// the command name.
func (e *Env) globalFlags(global bool) []cli.Flag {
	g := &e.cmd
	var env func(string) []string = func(string) []string { return nil }
	if global {
		g = &e.app
		prefix := envPrefix(e.Name)
		env = func(s string) []string { return []string{prefix + s} }
	}
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "write the result as one JSON object on stdout (and errors and logs as JSON on stderr)", Destination: &g.json},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log each step on stderr (the INFO log)", Destination: &g.verbose},
		&cli.StringFlag{Name: "log-level", Usage: "log level on stderr: debug, info, warn or error (default: warn, info with -v)", EnvVars: env("LOG_LEVEL"), Destination: &g.logLevel},
		&cli.StringFlag{Name: "log-format", Usage: "log format on stderr: text or json (default: json with --json, else text)", EnvVars: env("LOG_FORMAT"), Destination: &g.logFormat},
	}
}

// setup applies the global options: JSON output and the logger.
func (e *Env) setup() error {
	e.setJSON()
	l, err := e.logger()
	if err != nil {
		return Usagef("%v", err)
	}
	e.Log = l
	return nil
}

// NewApp builds the urfave/cli app: global flags (--json, --log-level, --log-format), the
// logger, the version, usage errors as exit code 2, and no os.Exit anywhere.
func NewApp(e *Env, usage, description string, cmds []*cli.Command) *cli.App {
	cmds = append(cmds, completionCommand(e))
	for _, c := range cmds {
		addCommon(e, c)
	}
	app := &cli.App{
		Name:        e.Name,
		Usage:       usage,
		Description: description,
		Version:     Version(),
		Writer:      e.Stdout,
		ErrWriter:   e.Stderr,
		Reader:      e.Stdin,
		Commands:    cmds,
		Suggest:     true,
		// -v is --verbose here, as in restic and step; --version is the app's own flag.
		HideVersion: true,
		Flags:       append(e.globalFlags(true), &cli.BoolFlag{Name: "version", Usage: "print the version and exit", Destination: &e.showVersion}),
		Before:      func(*cli.Context) error { return e.setup() },
		Action: func(c *cli.Context) error {
			if e.showVersion {
				_, err := fmt.Fprintf(e.Stdout, "%s version %s\n", e.Name, Version())
				return err
			}
			return unknownCommand(c)
		},
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%w: %v", exitcode.ErrUsage, err)
		},
	}
	return app
}

// addCommon gives every command --json, usage errors and an unknown-subcommand error.
func addCommon(e *Env, c *cli.Command) {
	c.Flags = append(c.Flags, e.globalFlags(false)...)
	before := c.Before
	c.Before = func(cc *cli.Context) error {
		if err := e.setup(); err != nil {
			return err
		}
		if before != nil {
			return before(cc)
		}
		return nil
	}
	c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return fmt.Errorf("%w: %v", exitcode.ErrUsage, err)
	}
	if len(c.Subcommands) > 0 && c.Action == nil {
		c.Action = unknownCommand
	}
	for _, s := range c.Subcommands {
		addCommon(e, s)
	}
}

func unknownCommand(c *cli.Context) error {
	if c.Args().Present() {
		return Usagef("unknown command %q (see --help)", c.Args().First())
	}
	if c.Command != nil && c.Command.Name != "" {
		return cli.ShowSubcommandHelp(c)
	}
	return cli.ShowAppHelp(c)
}

func envPrefix(name string) string {
	b := []byte(name)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c == '-':
			b[i] = '_'
		}
	}
	return string(b) + "_"
}

// SetVersion records the version main received through -ldflags.
func SetVersion(v string) { buildinfo.SetVersion(v) }

// Version returns the binary's version: the one set at link time, else the module version
// from the build info, else "devel".
func Version() string { return buildinfo.Version() }

// Run runs the app with args and returns the exit code, having printed any failure.
func Run(ctx context.Context, app *cli.App, e *Env, args []string) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	e.ctx = ctx
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitcode.OK
	}
	if ctx.Err() != nil && !errors.Is(err, exitcode.ErrInterrupted) {
		err = fmt.Errorf("%w: %v", exitcode.ErrInterrupted, err)
	}
	return Fail(e, err)
}

// Fail prints err the way the Env asks and returns its exit code.
func Fail(e *Env, err error) int {
	e.setJSON()
	code, hint := Classify(err, e.Rules...)
	if e.JSON {
		_ = jsonout.Write(e.Stderr, jsonout.Error{Error: err.Error(), ExitCode: code, Code: exitcode.Name(code), Hint: hint})
		return code
	}
	fmt.Fprintf(e.Stderr, "%s: error: %v\n", e.Name, err)
	if hint != "" {
		fmt.Fprintf(e.Stderr, "%s: hint: %s\n", e.Name, hint)
	}
	return code
}

// Code returns err's exit code (see Classify).
func Code(err error, rules ...exitcode.Rule) int {
	code, _ := Classify(err, rules...)
	return code
}

// Hint returns the operator's next step for err, or "" (see Classify).
func Hint(err error, rules ...exitcode.Rule) string {
	_, hint := Classify(err, rules...)
	return hint
}

// Classify maps err to an exit code and the operator's next step, in one place for both
// binaries: the shared packages' errors by this package's rules (rules.go), a binary's own by
// the rules it passes (exitcode.Classify says how a chain's codes combine). A stale or
// foreign medium is 10 or 11 whatever else the chain holds. urfave/cli's own exit errors
// (unknown help topics and the like) are usage errors. A folder that is not a medium (a stick
// that is not mounted) and a medium that puts a link, a FIFO or a device where the layout has
// a file or a folder are 4, unless the error carries its own code.
func Classify(err error, rules ...exitcode.Rule) (code int, hint string) {
	code, hint = exitcode.Classify(err, append([]exitcode.Rule{sharedRule}, rules...)...)
	if hint == "" {
		hint = mediumHint(err, code)
	}
	var own *exitcode.Error
	var ce cli.ExitCoder
	switch {
	case errors.Is(err, station.ErrStaleMedium):
		return exitcode.Stale, hint
	case errors.Is(err, station.ErrForeignMedium):
		return exitcode.Foreign, hint
	case !errors.As(err, &own) && errors.As(err, &ce):
		return exitcode.Usage, hint
	}
	if code != exitcode.Internal {
		return code, hint
	}
	if errors.Is(err, media.ErrNotMedia) || errors.Is(err, media.ErrBadType) || errors.Is(err, medialock.ErrUnsafe) {
		return exitcode.Bundle, hint
	}
	return exitcode.Internal, hint
}

// mediumHint is the operator's next step for a medium that is not this ceremony's newest
// (station.Identity's verdicts), and, when that is what err's code says (code), for one that
// another process holds or that cannot be written.
func mediumHint(err error, code int) string {
	var le *medialock.LockedError
	switch {
	case code == exitcode.Locked && errors.As(err, &le) && le.Waited > 0:
		return "the other command is still running: let it finish, then run this one again (or with a longer --wait)"
	case code == exitcode.Locked && errors.As(err, &le):
		return "another byok command is using this medium: let it finish, or run this command again with --wait DURATION (e.g. --wait 10m) to wait for it"
	case code == exitcode.Media && errors.Is(err, medialock.ErrReadOnly):
		return "the stick is write-protected or mounted read-only: slide its write-protect switch off, or remount it read-write (mount -o remount,rw), and run the command again; commands that only read it, such as audit, work on it as it is"
	case errors.Is(err, station.ErrStaleMedium):
		return "bring the newest stick of this ceremony; nothing was written to this one"
	case errors.Is(err, station.ErrForeignMedium):
		return "this is not the stick of this station's ceremony: check the label, or the --media and --state-dir you passed"
	}
	return ""
}
