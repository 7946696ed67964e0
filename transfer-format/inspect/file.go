package inspect

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// ReadFile reads the bundle file a person named (on a command line) for Bundle: without
// waiting on a FIFO (it is opened non-blocking, and refused), refusing anything but a regular
// file after the open (a device node is never read), and reading at most
// bundle.MaxFileSize bytes; a larger file fails with an error wrapping bundle.ErrTooLarge.
// So an inspect of a hostile path ends at once, in bounded memory.
func ReadFile(name string) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("not a regular file (%s)", fi.Mode().Type())}
	}
	if fi.Size() > bundle.MaxFileSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d", name, bundle.ErrTooLarge, fi.Size(), bundle.MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, bundle.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > bundle.MaxFileSize {
		return nil, fmt.Errorf("%s: %w: it grew beyond %d bytes", name, bundle.ErrTooLarge, bundle.MaxFileSize)
	}
	return data, nil
}
