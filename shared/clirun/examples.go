package clirun

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// SetExamples gives commands an EXAMPLES section at the end of their --help. ex maps a
// command's path below the app ("kek create") to its examples: command lines, each of them
// optionally after comment lines that begin with "#". A path that names no command is a
// programming error and panics (every binary's tests build its app).
//
// The examples are checked by clitest.CheckExamples: every leaf command has one, and every
// flag an example uses exists on its command, so that they cannot drift.
func SetExamples(app *cli.App, ex map[string]string) {
	for path, text := range ex {
		c := FindCommand(app, strings.Fields(path))
		if c == nil {
			panic(fmt.Sprintf("clirun: examples for unknown command %q", path))
		}
		tmpl := cli.CommandHelpTemplate
		if len(c.Subcommands) > 0 {
			tmpl = cli.SubcommandHelpTemplate
		}
		var b strings.Builder
		b.WriteString(tmpl)
		b.WriteString("\nEXAMPLES:\n")
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			// Examples are literal text in the template.
			b.WriteString("   " + strings.ReplaceAll(strings.TrimSpace(line), "{{", `{{"{{"}}`) + "\n")
		}
		c.CustomHelpTemplate = b.String()
	}
}

// FindCommand returns the command at path below app (its names or aliases), or nil.
func FindCommand(app *cli.App, path []string) *cli.Command {
	cmds := app.Commands
	var found *cli.Command
	for _, name := range path {
		found = nil
		for _, c := range cmds {
			if c.HasName(name) {
				found = c
				break
			}
		}
		if found == nil {
			return nil
		}
		cmds = found.Subcommands
	}
	return found
}
