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

// Every byok-online command line in the README names a command and only flags it takes.
func TestReadmeCommandLines(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := clitest.CheckDocument(t, newTestApp, string(doc)); n < 5 {
		t.Errorf("README.md: %d byok-online command lines, want the ceremony's (5 or more)", n)
	}
}
