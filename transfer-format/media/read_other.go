//go:build !linux

package media

import (
	"io/fs"
	"os"
)

// dirFD returns no descriptor: ReadFile reads through the root.
func dirFD(*os.Root) (*os.File, int) { return nil, -1 }

func readFileAt(*os.Root, int, string, string, int64) ([]byte, error) {
	panic("media: readFileAt without a folder descriptor")
}

func readOpenAt(int, string, string, int64) ([]byte, error) {
	panic("media: readOpenAt without a folder descriptor")
}

func listDir(f *os.File) ([]fs.DirEntry, error) { return f.ReadDir(-1) }
