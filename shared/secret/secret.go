// Package secret holds values that must never be printed: PINs, tokens and key bytes.
//
// A Value formats as "[redacted]" through fmt, slog and encoding/json, so it cannot leak by
// accident into a log line, an error message or --json output. Reveal is the only way to the
// bytes, and its callers are the few places that hand the secret to an HSM or a network peer.
package secret

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"
)

const redacted = "[redacted]"

// Value is a secret. The zero Value is empty.
type Value struct {
	b []byte
}

// New returns a Value holding a copy of s.
func New(s string) Value { return Value{b: []byte(s)} }

// FromBytes returns a Value holding a copy of b.
func FromBytes(b []byte) Value { return Value{b: bytes.Clone(b)} }

// Reveal returns the secret as a string. Call it only at the point of use.
func (v Value) Reveal() string { return string(v.b) }

// Bytes returns a copy of the secret bytes.
func (v Value) Bytes() []byte { return bytes.Clone(v.b) }

// Empty reports whether the secret is empty.
func (v Value) Empty() bool { return len(v.b) == 0 }

// String implements fmt.Stringer and redacts.
func (v Value) String() string { return redacted }

// GoString implements fmt.GoStringer and redacts.
func (v Value) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb redacts.
func (v Value) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue implements slog.LogValuer and redacts.
func (v Value) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON redacts.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText redacts.
func (v Value) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Wipe overwrites the secret in place. The Value is empty afterwards.
func (v *Value) Wipe() {
	for i := range v.b {
		v.b[i] = 0
	}
	v.b = nil
}

// ErrNoSecret is returned when no source provided the secret and no terminal is available
// to ask for it.
var ErrNoSecret = errors.New("no secret given")

// Source says where to read a secret from. The first non-empty of File, Env (the name of an
// environment variable) and the terminal prompt wins.
type Source struct {
	What   string // what is asked for, used in prompts and errors, e.g. "token PIN"
	File   string // path of a file whose first line is the secret
	Env    string // name of an environment variable holding the secret
	Prompt bool   // ask on the terminal (no echo) when neither File nor Env gives it
	// Terminal, when set, is the file the prompt reads from and writes to; the default is
	// /dev/tty.
	Terminal *os.File
}

// Interactive reports whether Read asks on the terminal: neither File nor Env gives the
// secret, and Prompt is set. A wrong secret typed there may be asked for again; one from a
// file or the environment would only be wrong again.
func (s Source) Interactive() bool {
	return s.Prompt && s.File == "" && (s.Env == "" || os.Getenv(s.Env) == "")
}

// Read returns the secret from the source. Errors never contain the secret.
func (s Source) Read() (Value, error) {
	what := s.What
	if what == "" {
		what = "secret"
	}
	if s.File != "" {
		f, err := os.Open(s.File)
		if err != nil {
			return Value{}, fmt.Errorf("read %s file: %w", what, err)
		}
		defer f.Close()
		line, err := bufio.NewReader(io.LimitReader(f, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return Value{}, fmt.Errorf("read %s file %s: %w", what, s.File, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return Value{}, fmt.Errorf("%s file %s is empty", what, s.File)
		}
		return New(line), nil
	}
	if s.Env != "" {
		if v, ok := os.LookupEnv(s.Env); ok && v != "" {
			return New(v), nil
		}
	}
	if s.Prompt {
		return s.prompt(what)
	}
	return Value{}, fmt.Errorf("%s: %w", what, ErrNoSecret)
}

func (s Source) prompt(what string) (Value, error) {
	tty := s.Terminal
	if tty == nil {
		f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return Value{}, fmt.Errorf("%s: %w (no terminal to prompt on)", what, ErrNoSecret)
		}
		defer f.Close()
		tty = f
	}
	fd := int(tty.Fd())
	if !term.IsTerminal(fd) {
		return Value{}, fmt.Errorf("%s: %w (no terminal to prompt on)", what, ErrNoSecret)
	}
	fmt.Fprintf(tty, "Enter %s: ", what)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(tty)
	if err != nil {
		return Value{}, fmt.Errorf("read %s from terminal: %w", what, err)
	}
	if len(b) == 0 {
		return Value{}, fmt.Errorf("%s: %w (empty input)", what, ErrNoSecret)
	}
	v := Value{b: b}
	return v, nil
}
