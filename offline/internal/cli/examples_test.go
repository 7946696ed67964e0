package cli

import (
	"io"
	"os"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/clitest"
)

func newTestApp(stdout, stderr io.Writer) *cli.App {
	return NewApp(clirun.NewEnv(Name, nil, stdout, stderr))
}

// Every command's --help ends with examples that use only the flags it takes.
func TestHelpExamples(t *testing.T) {
	t.Parallel()
	clitest.CheckExamples(t, newTestApp)
}

// Every byok-offline command line in the README and the operator's guide names a command and
// only flags it takes.
func TestDocumentCommandLines(t *testing.T) {
	t.Parallel()
	for _, doc := range []struct {
		path string
		min  int
	}{{"../../../README.md", 10}, {"../../../docs/ceremony.md", 10}} {
		b, err := os.ReadFile(doc.path)
		if err != nil {
			t.Fatal(err)
		}
		if n := clitest.CheckDocument(t, newTestApp, string(b)); n < doc.min {
			t.Errorf("%s: %d byok-offline command lines, want the ceremony's (%d or more)", doc.path, n, doc.min)
		}
	}
}
