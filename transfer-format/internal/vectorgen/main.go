// Command vectorgen writes the test vectors of the transfer format to testdata/vectors: one
// folder per vector, holding vector.json (the expected verdict and what the replay needs) and
// medium/ (a medium folder exactly as it would be on a stick).
//
// Every vector is built with chaintest from fixed seeds, so the output is a function of this
// program alone: running it twice gives byte-identical trees, and CI checks that the
// committed vectors are what it writes. Valid vectors are whole ceremonies; negative vectors
// mutate one of them (bit flips, truncation, forged and re-signed headers, moved files) and
// say in their comment what was done and why the verdict follows.
//
// Usage:
//
//	go run ./internal/vectorgen -out testdata/vectors
//
// or `go generate ./...` from the module root. The output folder is replaced as a whole, so
// vectors that are no longer generated disappear.
package main

//go:generate go run . -out ../../testdata/vectors

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("out", "", "folder to write the vectors to (replaced as a whole)")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintf(os.Stderr, "vectorgen: error: %v\n", err)
		os.Exit(1)
	}
}

func run(out string) error {
	if out == "" {
		return errors.New("-out is required")
	}
	out = filepath.Clean(out)
	// Build next to the destination and swap at the end, so a failed run leaves the old
	// vectors in place and a successful one leaves no stale vector behind.
	tmp := out + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := Generate(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
