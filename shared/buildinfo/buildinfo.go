// Package buildinfo says which binary is running: its version, the source revision and Go
// toolchain it was built from, and the SHA-256 of its own executable file, the hash an
// operator compares with a release's SHA256SUMS and a bundle can record as the toolset that
// wrote it.
//
// The version is the one main received at link time (-ldflags "-X main.Version=v1.2.3",
// handed over with SetVersion), else the module version that "go install …@v1.2.3" records
// in the build info, else "devel". The revision is the one set at link time
// (-X github.com/airgap-byok/airgap-byok/shared/buildinfo.revision=COMMIT, as release builds
// do, since they build with -buildvcs=false), else the build info's vcs.revision.
package buildinfo

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
)

// Set at link time by release builds; empty otherwise.
var (
	version  string
	revision string
)

// ErrUnreadable means the running binary's own file could not be read to hash it.
var ErrUnreadable = errors.New("cannot read the running executable")

// SetVersion records the version main received through -ldflags.
func SetVersion(v string) {
	if v != "" {
		version = v
	}
}

// Version returns the binary's version: the one set at link time, else the module version
// from the build info, else "devel".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Info describes the running binary. It is what "version --json" prints.
type Info struct {
	Version       string `json:"version"`
	Module        string `json:"module"`
	ModuleVersion string `json:"module_version"`
	Revision      string `json:"vcs_revision,omitempty"`
	RevisionTime  string `json:"vcs_time,omitempty"`
	Modified      bool   `json:"vcs_modified,omitempty"`
	GoVersion     string `json:"go_version"`
	Platform      string `json:"platform"`
	CGO           bool   `json:"cgo"`
	Executable    string `json:"executable"`
	SHA256        string `json:"sha256"`
}

// Read returns the running binary's Info, its SHA-256 included.
func Read() (Info, error) {
	in := Info{Version: Version(), GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Revision: revision}
	if bi, ok := debug.ReadBuildInfo(); ok {
		in.Module, in.ModuleVersion = bi.Main.Path, bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Revision == "" {
					in.Revision = s.Value
				}
			case "vcs.time":
				in.RevisionTime = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			case "CGO_ENABLED":
				in.CGO = s.Value == "1"
			}
		}
	}
	self, err := Self()
	if err != nil {
		return in, err
	}
	in.Executable, in.SHA256 = self.Path, self.SHA256
	return in, nil
}

// Toolset identifies the running binary: its version and the SHA-256 of its file.
type Toolset struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"` // lowercase hex
	Path    string `json:"-"`      // where it was read; informational
}

var self struct {
	once sync.Once
	t    Toolset
	err  error
}

// Self returns the running binary's version and SHA-256. It hashes the file the process was
// started from (/proc/self/exe, which stays the started file even if the path is replaced
// meanwhile; os.Executable where /proc is missing), once per process.
func Self() (Toolset, error) {
	self.once.Do(func() {
		path, _ := os.Executable()
		sum, err := hashFile("/proc/self/exe")
		if err != nil && path != "" {
			sum, err = hashFile(path)
		}
		if err != nil {
			self.err = fmt.Errorf("%w: %w", ErrUnreadable, err)
			return
		}
		self.t = Toolset{Version: Version(), SHA256: sum, Path: path}
	})
	if self.err != nil {
		return Toolset{}, self.err
	}
	t := self.t
	t.Version = Version() // SetVersion may run after the first call in tests
	return t, nil
}

// HashFile returns the lowercase hex SHA-256 of the file at path.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
