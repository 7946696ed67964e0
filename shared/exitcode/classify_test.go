package exitcode_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

var (
	errExplicit = errors.New("explicit")
	errSentinel = errors.New("sentinel")
	errFallback = errors.New("fallback")
)

// rule classifies the three test errors: explicit 7 with a hint, sentinel 9, fallback 4.
func rule(err error) (exitcode.Class, bool) {
	switch err {
	case errExplicit:
		return exitcode.Class{Code: exitcode.Refused, Hint: "explicit hint"}, true
	case errSentinel:
		return exitcode.Class{Code: exitcode.Media, Sentinel: true}, true
	case errFallback:
		return exitcode.Class{Code: exitcode.Bundle, Fallback: true}, true
	}
	return exitcode.Class{}, false
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantHint string
	}{
		{"nil", nil, exitcode.OK, ""},
		{"unknown", errors.New("x"), exitcode.Internal, ""},
		{"explicit", fmt.Errorf("a: %w", errExplicit), exitcode.Refused, "explicit hint"},
		{"sentinel", fmt.Errorf("a: %w", errSentinel), exitcode.Media, ""},
		{"explicit beats a sentinel outside it", fmt.Errorf("%w: %w", exitcode.ErrUsage, errExplicit), exitcode.Refused, "explicit hint"},
		{"outer explicit wins", exitcode.Wrap(exitcode.Verify, fmt.Errorf("a: %w", errExplicit), ""), exitcode.Verify, "explicit hint"},
		{"outer hint wins", exitcode.Wrap(exitcode.Verify, errExplicit, "outer"), exitcode.Verify, "outer"},
		{"sentinels by urgency", fmt.Errorf("%w: %w", errSentinel, exitcode.ErrLocked), exitcode.Locked, ""},
		{"urgency, the other way", fmt.Errorf("%w: %w", exitcode.ErrRefused, errSentinel), exitcode.Refused, ""},
		{"interrupted beats sentinels", fmt.Errorf("%w: %w", errSentinel, context.Canceled), exitcode.Interrupted, ""},
		{"explicit beats interrupted", exitcode.Wrap(exitcode.Media, context.Canceled, ""), exitcode.Media, ""},
		{"fallback beats sentinels", fmt.Errorf("%w: %w: %w", errFallback, errSentinel, exitcode.ErrUsage), exitcode.Bundle, ""},
		{"explicit inside beats fallback", fmt.Errorf("%w: %w", errFallback, errExplicit), exitcode.Refused, "explicit hint"},
		{"explicit outside beats fallback", exitcode.Wrap(exitcode.HSM, errFallback, ""), exitcode.HSM, ""},
		{"joined", errors.Join(errors.New("x"), errExplicit), exitcode.Refused, "explicit hint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hint := exitcode.Classify(tt.err, rule)
			if code != tt.wantCode || hint != tt.wantHint {
				t.Errorf("Classify(%v) = %d, %q, want %d, %q", tt.err, code, hint, tt.wantCode, tt.wantHint)
			}
		})
	}
	// Without the rule, the domain errors are unknown.
	if code := exitcode.From(fmt.Errorf("a: %w", errExplicit)); code != exitcode.Internal {
		t.Errorf("From(explicit without its rule) = %d, want %d", code, exitcode.Internal)
	}
}
