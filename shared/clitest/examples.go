package clitest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// NewApp builds a fresh app of one binary writing to stdout and stderr.
type NewApp func(stdout, stderr io.Writer) *cli.App

// Leaf is a command without subcommands, at Path below the app.
type Leaf struct {
	Path []string
	Cmd  *cli.Command
}

// Leaves returns app's leaf commands, urfave/cli's help commands excluded.
func Leaves(app *cli.App) []Leaf {
	var out []Leaf
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden || c.Name == "help" {
				continue
			}
			p := append(append([]string(nil), path...), c.Name)
			if len(c.Subcommands) == 0 {
				out = append(out, Leaf{Path: p, Cmd: c})
				continue
			}
			walk(p, c.Subcommands)
		}
	}
	walk(nil, app.Commands)
	return out
}

// CheckExamples runs "<bin> <command> --help" for every leaf command and checks that its usage
// line begins with the binary's name and the command's, and that its help ends with an EXAMPLES section whose command lines name that command and use only flags it
// (or the app, before the command) takes.
func CheckExamples(t *testing.T, newApp NewApp) {
	t.Helper()
	leaves := Leaves(newApp(io.Discard, io.Discard))
	if len(leaves) == 0 {
		t.Fatal("the app has no commands")
	}
	for _, l := range leaves {
		name := strings.Join(l.Path, " ")
		t.Run(strings.Join(l.Path, "_"), func(t *testing.T) {
			var out, errOut bytes.Buffer
			app := newApp(&out, &errOut)
			if err := app.Run(append(append([]string{app.Name}, l.Path...), "--help")); err != nil {
				t.Fatalf("%s --help: %v (%s)", name, err, errOut.String())
			}
			if _, usage, _ := strings.Cut(out.String(), "USAGE:\n"); !strings.HasPrefix(strings.TrimSpace(usage), app.Name+" "+name) {
				t.Errorf("%s --help: the usage line does not begin with %q:\n%s", name, app.Name+" "+name, usage)
			}
			_, ex, ok := strings.Cut(out.String(), "\nEXAMPLES:\n")
			if !ok {
				t.Fatalf("%s --help has no EXAMPLES section:\n%s", name, out.String())
			}
			n := 0
			for _, line := range strings.Split(ex, "\n") {
				line = strings.TrimSpace(line)
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				n++
				path, err := CheckLine(newApp(io.Discard, io.Discard), line)
				if err != nil {
					t.Errorf("%s --help: example %q: %v", name, line, err)
					continue
				}
				if strings.Join(path, " ") != name {
					t.Errorf("%s --help: example %q runs %q", name, line, strings.Join(path, " "))
				}
			}
			if n == 0 {
				t.Errorf("%s --help: EXAMPLES holds no command line", name)
			}
		})
	}
}

// codeSpan finds inline code (`...`) and the lines of fenced blocks in Markdown.
var codeSpan = regexp.MustCompile("`([^`\n]+)`")

// CheckDocument checks every command line of app's binary in a Markdown document: each inline
// code span and each line of a fenced block (joined with the next where it ends in a
// backslash) that begins with the binary's name must name a
// command of the app and use only flags that command takes. It returns how many it checked.
func CheckDocument(t *testing.T, newApp NewApp, doc string) int {
	t.Helper()
	bin := newApp(io.Discard, io.Discard).Name
	var lines []string
	fenced, cont := false, ""
	for _, l := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced, cont = !fenced, ""
			continue
		}
		if fenced {
			// A line ending in a backslash goes on on the next one.
			l = cont + strings.TrimSpace(l)
			if cont = ""; strings.HasSuffix(l, "\\") {
				cont = strings.TrimSuffix(l, "\\") + " "
				continue
			}
			lines = append(lines, l)
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(l, -1) {
			lines = append(lines, strings.TrimSpace(m[1]))
		}
	}
	n := 0
	for _, l := range lines {
		if !strings.HasPrefix(l, bin+" ") {
			continue
		}
		n++
		if _, err := CheckLine(newApp(io.Discard, io.Discard), l); err != nil {
			t.Errorf("%q: %v", l, err)
		}
	}
	return n
}

// Doc is a Markdown document whose command lines CheckDocuments checks, and the fewest
// command lines of the binary it must hold (so that a check that finds none fails).
type Doc struct {
	Path string
	Min  int
}

// CheckDocuments runs CheckDocument on each document.
func CheckDocuments(t *testing.T, newApp NewApp, docs ...Doc) {
	t.Helper()
	for _, d := range docs {
		b, err := os.ReadFile(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		if n := CheckDocument(t, newApp, string(b)); n < d.Min {
			t.Errorf("%s: %d command lines of %s, want %d or more", d.Path, n, newApp(io.Discard, io.Discard).Name, d.Min)
		}
	}
}

// CheckLine checks a command line of app's binary (the binary's name first): the words after
// the global flags must name a command, and every flag must exist on that command (the global
// ones also before it). Shell syntax ends the line (a comment, a pipe, a redirection); "…" and
// "..." stand for elided words. It returns the command's path.
func CheckLine(app *cli.App, line string) ([]string, error) {
	app.Setup()
	words := shellWords(line)
	if len(words) == 0 || words[0] != app.Name {
		return nil, fmt.Errorf("does not begin with %s", app.Name)
	}
	words = words[1:]
	flags := app.Flags
	cmds := app.Commands
	var path []string
	var cmd *cli.Command
	positional := false
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "…" || w == "..." {
			continue
		}
		if strings.HasPrefix(w, "-") && len(w) > 1 {
			if positional {
				return path, fmt.Errorf("flag %s after an argument is taken as an argument", w)
			}
			name, _, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
			f := findFlag(flags, name)
			if f == nil {
				where := "before the command"
				if cmd != nil {
					where = "on " + strings.Join(path, " ")
				}
				return path, fmt.Errorf("no flag %s %s", w, where)
			}
			if takesValue(f) && !hasValue {
				i++
				if i == len(words) {
					return path, fmt.Errorf("flag %s needs a value", w)
				}
			}
			continue
		}
		if !positional {
			var next *cli.Command
			for _, c := range cmds {
				if c.HasName(w) {
					next = c
					break
				}
			}
			if next != nil {
				cmd, cmds, flags = next, next.Subcommands, next.Flags
				path = append(path, next.Name)
				continue
			}
			if cmd == nil || len(cmds) > 0 {
				return path, fmt.Errorf("no command %q", w)
			}
		}
		positional = true
	}
	if cmd == nil {
		return nil, fmt.Errorf("names no command")
	}
	if len(cmd.Subcommands) > 0 {
		return path, fmt.Errorf("%s needs a subcommand", strings.Join(path, " "))
	}
	return path, nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	if name == "help" || name == "h" {
		return cli.HelpFlag
	}
	return nil
}

func takesValue(f cli.Flag) bool {
	if df, ok := f.(cli.DocGenerationFlag); ok {
		return df.TakesValue()
	}
	return false
}

// shellWords splits a command line into words the way a shell would for the simple lines
// of documentation: quotes group, and a comment, a pipe, a redirection or a command
// separator ends the line.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			flush()
		case r == '#' && !inWord, r == '|', r == '>', r == '<', r == ';', r == '&':
			flush()
			return words
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	flush()
	return words
}
