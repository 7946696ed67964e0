package payload

import (
	"strings"
	"testing"
)

// isText and isKeyName stand in for textRE and keyNameRE in validation: they must agree on
// every input.
func TestTextCheckersMatchTheirExpressions(t *testing.T) {
	inputs := []string{"", "a", "key-1", "Key-1", "key_1", "key.1", "-", "é", "\x7f", "\x1f", " ", "~", "a b", "\xff", "\n",
		strings.Repeat("a", 127), strings.Repeat("a", 128), strings.Repeat("a", 256), strings.Repeat("a", 257), "ü" + strings.Repeat("a", 200)}
	for _, s := range inputs {
		if got, want := isText(s), textRE.MatchString(s); got != want {
			t.Errorf("isText(%q) = %v, textRE says %v", s, got, want)
		}
		if got, want := isKeyName(s), keyNameRE.MatchString(s); got != want {
			t.Errorf("isKeyName(%q) = %v, keyNameRE says %v", s, got, want)
		}
	}
}

func FuzzTextCheckers(f *testing.F) {
	f.Add("key-1")
	f.Add("a\x7fb")
	f.Fuzz(func(t *testing.T, s string) {
		if isText(s) != textRE.MatchString(s) || isKeyName(s) != keyNameRE.MatchString(s) {
			t.Fatalf("checkers disagree with their expressions on %q", s)
		}
	})
}
