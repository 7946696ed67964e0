package modproxy

import (
	"strings"
	"testing"
)

func TestReleaseGoModDropsSiblingReplaces(t *testing.T) {
	siblings := map[string]bool{"example.com/r/a": true, "example.com/r/b": true}
	in := `module example.com/r/c

go 1.26.0

require (
	example.com/r/a v0.0.0
	example.com/r/b v0.0.0-00010101000000-000000000000
	golang.org/x/sys v0.50.0
)

replace example.com/r/a => ../a

replace example.com/r/b => ../b
`
	out, err := ReleaseGoMod([]byte(in), siblings, "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{"example.com/r/a v1.4.0", "example.com/r/b v1.4.0", "golang.org/x/sys v0.50.0"} {
		if !strings.Contains(got, want) {
			t.Errorf("release go.mod lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "replace") || strings.Contains(got, "v0.0.0\n") || strings.Contains(got, "v0.0.0-") {
		t.Errorf("release go.mod still points at the working tree:\n%s", got)
	}

	foreign := in + "\nreplace golang.org/x/sys => ../sys\n"
	if _, err := ReleaseGoMod([]byte(foreign), siblings, "v1.4.0"); err == nil || !strings.Contains(err.Error(), "golang.org/x/sys") {
		t.Errorf("a replace of a module outside the repository: %v, want an error", err)
	}
}
