//go:build !linux

package media

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Elsewhere than Linux, reads go through os.Root, checking the type before the open (a FIFO
// swapped in between would block the open).

func openTop(dir string) (*os.File, error) {
	fi, err := os.Stat(dir)
	if os.IsNotExist(err) {
		return nil, NotMedia(dir, "the folder does not exist")
	}
	if err != nil {
		return nil, fmt.Errorf("open medium: %w", err)
	}
	if !fi.IsDir() {
		return nil, NotMedia(dir, "it is not a folder")
	}
	return os.Open(dir)
}

func openFolder(top *os.File, p string) (*os.File, error) {
	r, err := os.OpenRoot(top.Name())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	fi, err := r.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, &TypeError{Path: p, Dir: true, Got: fi.Mode().Type().String()}
	}
	return r.Open(p)
}

func listFolder(top *os.File, p string) ([]fs.DirEntry, error) {
	f, err := openFolder(top, p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

func readFile(dir *os.File, name, p string, limit int64) ([]byte, error) {
	r, err := os.OpenRoot(dir.Name())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	fi, err := r.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &TypeError{Path: p, Got: fi.Mode().Type().String()}
	}
	if fi.Size() > limit {
		return nil, tooLarge(p, fi.Size(), limit)
	}
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if int64(len(b)) > limit {
		return nil, grewTooLarge(p, limit)
	}
	return b, nil
}

func checkFile(dir *os.File, name, p string) error {
	r, err := os.OpenRoot(dir.Name())
	if err != nil {
		return err
	}
	defer r.Close()
	fi, err := r.Lstat(name)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &TypeError{Path: p, Got: fi.Mode().Type().String()}
	}
	return nil
}
