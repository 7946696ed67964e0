package clirun

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionCommand prints a shell completion script. The scripts are static: they are made
// from the command tree when asked for and never run the binary while completing, so that
// pressing Tab on the offline station does nothing but complete.
func completionCommand(e *Env) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: "completion prints a script that completes commands, subcommands and flags in the\n" +
			"given shell. Load it in the current shell, or install it where the shell looks for completions.",
		UsageText: e.Name + " completion bash > /etc/bash_completion.d/" + e.Name + "\n" +
			"source <(" + e.Name + " completion bash)          # bash, this shell only\n" +
			e.Name + " completion zsh > \"${fpath[1]}/_" + e.Name + "\"\n" +
			e.Name + " completion fish > ~/.config/fish/completions/" + e.Name + ".fish",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return Usagef("completion takes one argument: bash, zsh or fish")
			}
			var script string
			switch shell := c.Args().First(); shell {
			case "bash":
				script = bashCompletion(c.App)
			case "zsh":
				script = "#compdef " + c.App.Name + "\n" +
					"# zsh completion for " + c.App.Name + ", through zsh's bash completion support.\n" +
					"autoload -U +X bashcompinit && bashcompinit\n" + bashCompletion(c.App)
			case "fish":
				script = fishCompletion(c.App)
			default:
				return Usagef("completion: unknown shell %q: want bash, zsh or fish", shell)
			}
			_, err := io.WriteString(e.Stdout, script)
			return err
		},
	}
}

// completionNode is one command path of the tree: the words that may follow it (its
// subcommands) and the flags it takes.
type completionNode struct {
	path  string
	words []string
	flags []flagInfo
}

type flagInfo struct {
	names  []string // as typed: --json, -v
	valued bool
	usage  string
}

// completionTree walks app's commands. urfave/cli adds a help command at every level; it is
// offered at the top only, and never walked into (its tree refers back to itself once help
// has run).
func completionTree(app *cli.App) []completionNode {
	var nodes []completionNode
	flagsOf := func(fs []cli.Flag) []flagInfo {
		var out []flagInfo
		for _, f := range fs {
			df, ok := f.(cli.DocGenerationFlag)
			if !ok {
				continue
			}
			fi := flagInfo{valued: df.TakesValue(), usage: df.GetUsage()}
			for _, n := range f.Names() {
				if len(n) == 1 {
					fi.names = append(fi.names, "-"+n)
				} else {
					fi.names = append(fi.names, "--"+n)
				}
			}
			out = append(out, fi)
		}
		return out
	}
	var walk func(path string, cmds []*cli.Command, flags []cli.Flag)
	walk = func(path string, cmds []*cli.Command, flags []cli.Flag) {
		skip := func(c *cli.Command) bool { return c.Hidden || (c.Name == "help" && path != "") }
		n := completionNode{path: path, flags: flagsOf(flags)}
		for _, c := range cmds {
			if !skip(c) {
				n.words = append(n.words, c.Names()...)
			}
		}
		nodes = append(nodes, n)
		for _, c := range cmds {
			if skip(c) || c.Name == "help" {
				continue
			}
			for _, name := range c.Names() {
				walk(strings.TrimSpace(path+" "+name), c.Subcommands, c.Flags)
			}
		}
	}
	walk("", app.Commands, app.Flags)
	return nodes
}

// bashCompletion returns a bash completion script for app: for each command path, the
// subcommands and the flags it takes, and which flags take a value.
func bashCompletion(app *cli.App) string {
	nodes := completionTree(app)
	valued := map[string]bool{}
	for _, n := range nodes {
		for _, f := range n.flags {
			for _, name := range f.names {
				if f.valued {
					valued[name] = true
				}
			}
		}
	}
	flagWords := func(n completionNode) string {
		var out []string
		for _, f := range n.flags {
			out = append(out, f.names...)
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}

	fn := "_" + strings.NewReplacer("-", "_", ".", "_").Replace(app.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s (made by \"%s completion bash\")\n", app.Name, app.Name)
	fmt.Fprintf(&b, "%s() {\n", fn)
	b.WriteString("\tlocal cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\" path=\"\" w i skip=0\n")
	b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n")
	b.WriteString("\t\tw=\"${COMP_WORDS[i]}\"\n")
	b.WriteString("\t\tif [ \"$skip\" = 1 ]; then skip=0; continue; fi\n")
	b.WriteString("\t\tcase \"$w\" in\n")
	var vs []string
	for f := range valued {
		vs = append(vs, f)
	}
	sort.Strings(vs)
	if len(vs) > 0 {
		fmt.Fprintf(&b, "\t\t%s) skip=1; continue ;;\n", strings.Join(vs, "|"))
	}
	b.WriteString("\t\t-*) continue ;;\n\t\tesac\n")
	b.WriteString("\t\tcase \"${path:+$path }$w\" in\n")
	var paths []string
	for _, n := range nodes {
		if n.path != "" {
			paths = append(paths, fmt.Sprintf("%q", n.path))
		}
	}
	if len(paths) > 0 {
		fmt.Fprintf(&b, "\t\t%s) path=\"${path:+$path }$w\" ;;\n", strings.Join(paths, "|"))
	}
	b.WriteString("\t\tesac\n\tdone\n")
	b.WriteString("\tcase \"$prev\" in\n")
	if len(vs) > 0 {
		fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -f -- \"$cur\")); return 0 ;;\n", strings.Join(vs, "|"))
	}
	b.WriteString("\tesac\n")
	b.WriteString("\tlocal words flags\n\tcase \"$path\" in\n")
	for _, n := range nodes {
		fmt.Fprintf(&b, "\t%q) words=%q; flags=%q ;;\n", n.path, strings.Join(n.words, " "), flagWords(n))
	}
	b.WriteString("\tesac\n")
	b.WriteString("\tif [[ \"$cur\" == -* ]]; then\n\t\tCOMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n")
	b.WriteString("\telse\n\t\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n")
	b.WriteString("\t\t[ ${#COMPREPLY[@]} -gt 0 ] || COMPREPLY=($(compgen -f -- \"$cur\"))\n\tfi\n")
	b.WriteString("\treturn 0\n}\n")
	fmt.Fprintf(&b, "complete -o filenames -F %s %s\n", fn, app.Name)
	return b.String()
}

// fishCompletion returns a fish completion script for app: the subcommands that follow each
// command and the flags each takes, with their descriptions.
func fishCompletion(app *cli.App) string {
	quote := func(s string) string {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# fish completion for %s (made by \"%s completion fish\")\n", app.Name, app.Name)
	for _, n := range completionTree(app) {
		cond := "__fish_use_subcommand"
		if n.path != "" {
			words := strings.Fields(n.path)
			cond = "__fish_seen_subcommand_from " + words[len(words)-1]
		}
		if len(n.words) > 0 {
			fmt.Fprintf(&b, "complete -c %s -f -n %s -a %s\n", app.Name, quote(cond), quote(strings.Join(n.words, " ")))
		}
		for _, f := range n.flags {
			fmt.Fprintf(&b, "complete -c %s -n %s", app.Name, quote(cond))
			for _, name := range f.names {
				if strings.HasPrefix(name, "--") {
					fmt.Fprintf(&b, " -l %s", name[2:])
				} else {
					fmt.Fprintf(&b, " -s %s", name[1:])
				}
			}
			if f.valued {
				b.WriteString(" -r")
			}
			if f.usage != "" {
				fmt.Fprintf(&b, " -d %s", quote(f.usage))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
