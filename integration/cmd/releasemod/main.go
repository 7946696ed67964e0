// Command releasemod prepares the Go modules of a release: every module of the repository is
// released at one version, and its go.mod at the release tag has no replace directives and
// requires its sibling modules at that version (the working tree requires them at v0.0.0
// with replace => ../dir, which `go install …@version` refuses).
//
//	releasemod -version v1.2.3 -gomod       rewrite each module's go.mod and go.sum in place,
//	                                        for the release commit, and print the tags to make
//	releasemod -version v1.2.3 -proxy DIR   write the modules as a file-based module proxy
//	                                        (GOPROXY=file://DIR) without touching the tree
//
// Run it at the repository root (or give -root).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/airgap-byok/airgap-byok/integration/internal/modproxy"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "releasemod: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(args []string) error {
	fs := flag.NewFlagSet("releasemod", flag.ContinueOnError)
	version := fs.String("version", "", "the release `VERSION` (v1.2.3)")
	gomod := fs.Bool("gomod", false, "rewrite each module's go.mod and go.sum in place for the release commit")
	proxy := fs.String("proxy", "", "write a file-based module proxy to `DIR`")
	root := fs.String("root", ".", "the repository `DIR`")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *version == "" || *gomod == (*proxy != "") || fs.NArg() > 0 {
		return usageError{errors.New("want -version and exactly one of -gomod and -proxy DIR")}
	}
	if *proxy != "" {
		_, err := modproxy.Write(*proxy, *root, *version)
		return err
	}
	mods, err := modproxy.Build(*root, *version)
	if err != nil {
		return err
	}
	for _, m := range mods {
		for name, body := range map[string][]byte{"go.mod": m.GoMod, "go.sum": m.GoSum} {
			if len(body) == 0 {
				continue
			}
			if err := os.WriteFile(filepath.Join(*root, m.Dir, name), body, 0o644); err != nil {
				return err
			}
		}
	}
	fmt.Println("commit these go.mod and go.sum files, tag that commit with:")
	for _, m := range mods {
		fmt.Printf("  git tag %s/%s\n", m.Dir, *version)
	}
	fmt.Printf("  git tag %s\n", *version)
	fmt.Println("and go back to the working tree's go.mod files (git revert) on the main branch.")
	return nil
}
