// Package logsetup builds the one *slog.Logger of a byok process. Only main calls it; every
// package receives the logger it needs.
//
// Logs always go to stderr (stdout carries only results). The text form is for people at the
// ceremony: one line per step, no time stamps unless asked for, since the transcript's bundles
// carry the authoritative times. The JSON form is for collectors.
package logsetup

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Formats and levels accepted by New.
var (
	Formats = []string{"text", "json"}
	Levels  = []string{"debug", "info", "warn", "error"}
)

// New returns a logger writing to w at level ("debug", "info", "warn", "error") in format
// ("text" or "json").
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q: want one of %s", level, strings.Join(Levels, ", "))
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text", "":
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// Discard returns a logger that drops everything, for tests and library defaults.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
