package station

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// ErrByokCopy means a plain copy in byok/ is not its package's .byok.
var ErrByokCopy = errors.New("the plain .byok copy is not its package's .byok")

// ByokCopyError reports a plain copy that is not the .byok of the package its name names.
type ByokCopyError struct {
	Path    string
	Package bundle.ID
	Reason  string
}

func (e *ByokCopyError) Error() string {
	return fmt.Sprintf("%s %s: it is not the .byok of key package %s; do not upload it", e.Path, e.Reason, e.Package.Short())
}

func (e *ByokCopyError) Is(t error) bool { return t == ErrByokCopy }

// ByokCopyName is the name of the plain copy of a key package's .byok in byok/ (SPEC.md §8.1).
func ByokCopyName(keyName string, pkg bundle.ID) string { return keyName + "-" + pkg.Short() + ".byok" }

// CheckByokCopy compares the plain copy of key package pkg (named for keyName and pkg) with
// the package's .byok, want. The format ignores these copies (SPEC.md §8.1); the tools check
// them because people upload them with az by hand. It returns nil if the copy is absent or
// equal, and a *ByokCopyError if it differs or cannot be read as a regular file.
func CheckByokCopy(m *media.Media, keyName string, pkg bundle.ID, want []byte) error {
	p := path.Join(media.ByokDir, ByokCopyName(keyName, pkg))
	got, err := m.ReadFile(p, byok.MaxFileSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return &ByokCopyError{Path: p, Package: pkg, Reason: fmt.Sprintf("cannot be checked (%v)", err)}
	case !bytes.Equal(got, want):
		return &ByokCopyError{Path: p, Package: pkg, Reason: "differs from the .byok inside its signed key package"}
	}
	return nil
}
