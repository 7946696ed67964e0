// Package modproxy writes this repository's modules at a release version as a Go module proxy
// folder (the .info, .mod and .zip files `go mod download` reads from a GOPROXY=file://…), the
// way a release is published: each module's go.mod as it is committed for the release tag.
//
// How releases carry go.mod files: in the working tree every module requires its sibling
// modules at v0.0.0 with a `replace => ../dir`, so that each module builds alone with
// GOWORK=off. A replace directive keeps `go install …@version` from working at all, so the
// release commit's go.mod files differ in exactly one way, which ReleaseGoMod makes: the
// sibling replace directives are dropped and the sibling requirements name the release
// version, and go.sum gains the siblings' hashes. Every module of the repository is released
// at the one version together (tags transfer-format/vX.Y.Z, shared/vX.Y.Z, offline/vX.Y.Z,
// online/vX.Y.Z, integration/vX.Y.Z on the release commit).
package modproxy

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// Modules are the repository's module folders in dependency order: each requires only
// modules before it.
var Modules = []string{"transfer-format", "shared", "offline", "online", "integration"}

// ReleaseGoMod returns gomod with every requirement of a module in siblings set to version and
// every replace directive of a sibling dropped. A replace of anything else is an error: a
// released module must not carry one.
func ReleaseGoMod(gomod []byte, siblings map[string]bool, version string) ([]byte, error) {
	f, err := modfile.Parse("go.mod", gomod, nil)
	if err != nil {
		return nil, err
	}
	for _, r := range f.Replace {
		if !siblings[r.Old.Path] {
			return nil, fmt.Errorf("%s: replace of %s is not a sibling module", f.Module.Mod.Path, r.Old.Path)
		}
		if err := f.DropReplace(r.Old.Path, r.Old.Version); err != nil {
			return nil, err
		}
	}
	for _, r := range f.Require {
		if siblings[r.Mod.Path] {
			if err := f.AddRequire(r.Mod.Path, version); err != nil {
				return nil, err
			}
		}
	}
	f.Cleanup()
	return f.Format()
}

// Module is one module of the repository as released.
type Module struct {
	Dir   string // folder in the repository
	Path  string // module path
	GoMod []byte // the release go.mod
	GoSum []byte // the release go.sum: the committed one and the siblings' hashes
	Zip   []byte // the module zip a proxy serves
}

// Build returns every module of the repository at root as released at version, in Modules
// order.
func Build(root, version string) ([]Module, error) {
	if !strings.HasPrefix(version, "v") || !semver.IsValid(version) {
		return nil, fmt.Errorf("version %q is not a semantic version like v1.2.3", version)
	}
	mods := make([]Module, len(Modules))
	siblings := map[string]bool{}
	for i, m := range Modules {
		data, err := os.ReadFile(filepath.Join(root, m, "go.mod"))
		if err != nil {
			return nil, err
		}
		mods[i] = Module{Dir: m, Path: modfile.ModulePath(data), GoMod: data}
		if mods[i].Path == "" {
			return nil, fmt.Errorf("%s/go.mod names no module", m)
		}
		siblings[mods[i].Path] = true
	}
	sums := map[string]string{} // module path -> its go.sum lines
	for i := range mods {
		m := &mods[i]
		mv := module.Version{Path: m.Path, Version: version}
		gomod, err := ReleaseGoMod(m.GoMod, siblings, version)
		if err != nil {
			return nil, err
		}
		gosum, err := os.ReadFile(filepath.Join(root, m.Dir, "go.sum"))
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		f, err := modfile.Parse("go.mod", gomod, nil)
		if err != nil {
			return nil, err
		}
		for _, r := range f.Require {
			if siblings[r.Mod.Path] && !bytes.Contains(gosum, []byte(sums[r.Mod.Path])) {
				gosum = append(gosum, sums[r.Mod.Path]...)
			}
		}
		replaced := map[string][]byte{"go.mod": gomod}
		if len(gosum) > 0 {
			replaced["go.sum"] = gosum
		}
		z, err := moduleZip(mv, filepath.Join(root, m.Dir), replaced)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Dir, err)
		}
		m.GoMod, m.GoSum, m.Zip = gomod, gosum, z
		h, err := hashZip(z)
		if err != nil {
			return nil, err
		}
		hmod, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gomod)), nil })
		if err != nil {
			return nil, err
		}
		sums[mv.Path] = fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", mv.Path, version, h, mv.Path, version, hmod)
	}
	return mods, nil
}

// Write writes every module of the repository at root into the proxy folder dir at version
// (the .info, .mod, .zip and list files of each) and returns the modules' paths in Modules
// order.
func Write(dir, root, version string) ([]string, error) {
	mods, err := Build(root, version)
	if err != nil {
		return nil, err
	}
	info, _ := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	paths := make([]string, len(mods))
	for i, m := range mods {
		paths[i] = m.Path
		esc, err := module.EscapePath(m.Path)
		if err != nil {
			return nil, err
		}
		vdir := filepath.Join(dir, filepath.FromSlash(esc), "@v")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return nil, err
		}
		for name, body := range map[string][]byte{version + ".zip": m.Zip, version + ".mod": m.GoMod, version + ".info": info, "list": []byte(version + "\n")} {
			if err := os.WriteFile(filepath.Join(vdir, name), body, 0o644); err != nil {
				return nil, err
			}
		}
	}
	return paths, nil
}

// hashZip is dirhash.HashZip of a zip in memory.
func hashZip(z []byte) (string, error) {
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		return "", err
	}
	var names []string
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		names = append(names, f.Name)
		files[f.Name] = f
	}
	return dirhash.Hash1(names, func(name string) (io.ReadCloser, error) { return files[name].Open() })
}

// moduleZip returns the module zip of the folder dir as `go mod download` would serve it: the
// files modzip.CreateFromDir selects, with the files in replaced put in their place.
func moduleZip(mv module.Version, dir string, replaced map[string][]byte) ([]byte, error) {
	var raw bytes.Buffer
	if err := modzip.CreateFromDir(&raw, mv, dir); err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(bytes.NewReader(raw.Bytes()), int64(raw.Len()))
	if err != nil {
		return nil, err
	}
	prefix := mv.Path + "@" + mv.Version + "/"
	var files []modzip.File
	seen := map[string]bool{}
	for _, zf := range zr.File {
		name := strings.TrimPrefix(zf.Name, prefix)
		body, ok := replaced[name]
		if !ok {
			rc, err := zf.Open()
			if err != nil {
				return nil, err
			}
			body, err = io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return nil, err
			}
		}
		seen[name] = true
		files = append(files, memFile{name, body})
	}
	for name, body := range replaced { // a go.sum the folder did not have
		if !seen[name] {
			files = append(files, memFile{name, body})
		}
	}
	var out bytes.Buffer
	if err := modzip.Create(&out, mv, files); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

type memFile struct {
	name string
	data []byte
}

func (f memFile) Path() string                 { return f.name }
func (f memFile) Lstat() (os.FileInfo, error)  { return memInfo{f}, nil }
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f.data)), nil }

type memInfo struct{ f memFile }

func (i memInfo) Name() string       { return filepath.Base(i.f.name) }
func (i memInfo) Size() int64        { return int64(len(i.f.data)) }
func (i memInfo) Mode() os.FileMode  { return 0o644 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
