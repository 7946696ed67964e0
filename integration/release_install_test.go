package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"

	"github.com/airgap-byok/airgap-byok/integration/internal/modproxy"
	"github.com/airgap-byok/airgap-byok/shared/buildinfo"
)

const releaseVersion = "v0.99.0"

// TestInstallFromModuleProxy publishes the working tree's modules at a release version in a
// file-based module proxy, with the release go.mod files (no replace directives, siblings
// required at the release version), and then installs each command with
// `go install …@version` and builds a program that imports transfer-format with `go get`,
// with no go.work and no replace directive in effect. Everything else comes from the module
// cache read as a second proxy, so the test runs offline and writes only in temp folders.
func TestInstallFromModuleProxy(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(goBin, "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	realCache := strings.TrimSpace(string(out))

	proxy := t.TempDir()
	paths, err := modproxy.Write(proxy, root, releaseVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		mod, err := os.ReadFile(filepath.Join(proxy, p, "@v", releaseVersion+".mod"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := modfile.Parse("go.mod", mod, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Replace) > 0 {
			t.Fatalf("the released go.mod of %s has replace directives:\n%s", p, mod)
		}
		for _, r := range f.Require {
			if strings.HasPrefix(r.Mod.Path, "github.com/airgap-byok/") && r.Mod.Version != releaseVersion {
				t.Fatalf("the released go.mod of %s requires %s:\n%s", p, r.Mod, mod)
			}
		}
	}

	tmp := t.TempDir()
	gobin := filepath.Join(tmp, "bin")
	env := goEnv(map[string]string{
		"GOPROXY":     "file://" + filepath.ToSlash(proxy) + ",file://" + filepath.ToSlash(filepath.Join(realCache, "cache", "download")),
		"GOMODCACHE":  filepath.Join(tmp, "modcache"),
		"GOFLAGS":     "-mod=mod -modcacherw -trimpath",
		"GONOSUMDB":   "*",
		"GOSUMDB":     "off",
		"GOWORK":      "off",
		"GOBIN":       gobin,
		"GOTOOLCHAIN": "local",
	})
	goCmd := func(dir string, cgo bool, args ...string) {
		t.Helper()
		cmd := exec.Command(goBin, args...)
		cmd.Dir, cmd.Env = dir, env
		if !cgo {
			cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	for _, c := range []struct {
		pkg string
		cgo bool
	}{
		{"github.com/airgap-byok/airgap-byok/offline/cmd/byok-offline", true},
		{"github.com/airgap-byok/airgap-byok/online/cmd/byok-online", false},
		{"github.com/airgap-byok/airgap-byok/integration/cmd/kvemu", false},
	} {
		goCmd(tmp, c.cgo, "install", c.pkg+"@"+releaseVersion)
	}
	for _, name := range []string{"byok-offline", "byok-online"} {
		out, err := exec.Command(filepath.Join(gobin, name), "version", "--json").Output()
		if err != nil {
			t.Fatalf("%s version: %v", name, err)
		}
		var in buildinfo.Info
		if err := json.Unmarshal(out, &in); err != nil {
			t.Fatalf("%s version --json: %v: %s", name, err, out)
		}
		if in.Version != releaseVersion || in.ModuleVersion != releaseVersion || !strings.HasSuffix(in.Module, "/"+strings.TrimPrefix(name, "byok-")) {
			t.Errorf("%s installed from the proxy says %+v", name, in)
		}
	}
	if out, err := exec.Command(filepath.Join(gobin, "kvemu"), "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "Key Vault emulator") {
		t.Errorf("kvemu --help: %v\n%s", err, out)
	}

	// A program of someone else's imports the format library at the release version.
	app := filepath.Join(tmp, "consumer")
	if err := os.Mkdir(app, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod": "module example.com/consumer\n\ngo 1.26.0\n",
		"main.go": `package main

import (
	"fmt"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

func main() {
	_, err := bundle.Parse([]byte("not a bundle"))
	fmt.Println("parse:", err != nil)
}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(app, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goCmd(app, false, "get", "github.com/airgap-byok/airgap-byok/transfer-format@"+releaseVersion)
	goCmd(app, false, "build", "-o", filepath.Join(tmp, "consumer-bin"), ".")
	gomod, err := os.ReadFile(filepath.Join(app, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(gomod), "github.com/airgap-byok/airgap-byok/transfer-format "+releaseVersion) {
		t.Errorf("go get did not record the release version:\n%s", gomod)
	}
	if out, err := exec.Command(filepath.Join(tmp, "consumer-bin")).Output(); err != nil || string(out) != "parse: true\n" {
		t.Errorf("the consumer program: %v, %q", err, out)
	}
}

// goEnv is the environment with the go command's settings in set replacing any inherited.
func goEnv(set map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok || k == "GOPRIVATE" || k == "GONOPROXY" || k == "GOINSECURE" || k == "CGO_ENABLED" || k == "GOOS" || k == "GOARCH" {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}
