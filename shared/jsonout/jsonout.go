// Package jsonout writes command results.
//
// Output rules for both binaries: stdout carries only the result, either text for people or,
// with --json, exactly one JSON object (fields snake_case, only ever added to, never renamed or
// removed). A bundle (a key package, a KEK offer, a receipt, a policy) is always named by a
// [Ref], whichever command names it. Logs, progress and prompts go to stderr. With --json a failure writes one JSON
// object to stderr: {"error": "...", "exit_code": N, "code": "...", "hint": "..."}.
package jsonout

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// Write writes v as one indented JSON object and a newline.
func Write(w io.Writer, v any) error {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if err := e.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// Error is the JSON form of a failure.
type Error struct {
	Error    string `json:"error"`
	ExitCode int    `json:"exit_code"`
	Code     string `json:"code"`
	Hint     string `json:"hint,omitempty"`
}

// Ref names a bundle or a key in JSON output, in both its spellings:
// {"id": "<64 hex digits>", "fingerprint": "XXXX-XXXX-XXXX-XXXX"}.
type Ref struct {
	ID          bundle.ID `json:"id"`
	Fingerprint string    `json:"fingerprint"`
}

// RefOf returns the Ref of id.
func RefOf(id bundle.ID) Ref { return Ref{ID: id, Fingerprint: id.Short()} }
