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
	if e.Package.IsZero() {
		return e.Path + " " + e.Reason
	}
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

// UnnamedByokCopies returns a *ByokCopyError for each plain copy in byok/ whose name is not in
// named, the ByokCopyName of every key package on the medium: a copy that names no package
// here cannot be checked, and nobody should upload it. A byok/ that cannot be listed is one
// *ByokCopyError too. Call it only after a replay that saw every key package of the medium.
func UnnamedByokCopies(m *media.Media, named map[string]bool) []error {
	names, err := m.ByokCopies()
	if err != nil {
		return []error{&ByokCopyError{Path: media.ByokDir + "/", Reason: fmt.Sprintf("cannot be listed (%v): its copies cannot be checked; do not upload them", err)}}
	}
	var errs []error
	for _, n := range names {
		if !named[n] {
			errs = append(errs, &ByokCopyError{Path: path.Join(media.ByokDir, n), Reason: "names no key package on this medium: nothing checked it; do not upload it"})
		}
	}
	return errs
}
