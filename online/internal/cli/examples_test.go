package cli

import (
	"io"
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

// Every byok-online command line in the README and the operator's guide names a command and
// only flags it takes.
func TestDocumentCommandLines(t *testing.T) {
	t.Parallel()
	clitest.CheckDocuments(t, newTestApp, clitest.Doc{Path: "../../../README.md", Min: 5}, clitest.Doc{Path: "../../../docs/ceremony.md", Min: 5})
}
