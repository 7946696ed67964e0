package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// makeRelease writes a release folder with files and their SHA256SUMS.
func makeRelease(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var sums strings.Builder
	for _, name := range []string{"byok-offline_linux_amd64", "byok-offline_v1_linux_amd64.tar.gz", "byok-online_v1_amd64.deb"} {
		body, ok := files[name]
		if !ok {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sums, "%s  %s\n", hexSum([]byte(body)), name)
	}
	if err := os.WriteFile(filepath.Join(dir, SumsFile), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

var releaseFiles = map[string]string{
	"byok-offline_linux_amd64":           "\x7fELF offline",
	"byok-offline_v1_linux_amd64.tar.gz": "tarball",
	"byok-online_v1_amd64.deb":           "debian package",
}

func TestParseSumsRefusesMalformedLists(t *testing.T) {
	h := strings.Repeat("ab", 32)
	good := h + "  a.tar.gz\n" + strings.ToUpper(h) + " *b.deb\n"
	got, err := ParseSums([]byte(good))
	if err != nil || len(got) != 2 || got[1].SHA256 != h || got[1].Name != "b.deb" {
		t.Fatalf("ParseSums(good) = %+v, %v", got, err)
	}
	for name, in := range map[string]string{
		"empty":           "",
		"no newline":      h + "  a",
		"one space":       h + " a\n",
		"short hash":      h[:62] + "  a\n",
		"not hex":         strings.Repeat("zz", 32) + "  a\n",
		"folder":          h + "  sub/a\n",
		"parent":          h + "  ..\n",
		"escape":          h + "  a\\nb\n",
		"control":         h + "  a\tb\n",
		"twice":           h + "  a\n" + h + "  a\n",
		"blank line":      h + "  a\n\n",
		"lists itself":    h + "  SHA256SUMS\n",
		"no name":         h + "  \n",
		"bsd style":       "SHA256 (a) = " + h + "\n",
		"trailing spaces": h + "  \n",
	} {
		if _, err := ParseSums([]byte(in)); !errors.Is(err, ErrSums) {
			t.Errorf("%s: ParseSums = %v, want ErrSums", name, err)
		}
	}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	self := hexSum([]byte(releaseFiles["byok-offline_linux_amd64"]))

	dir := makeRelease(t, releaseFiles)
	r, err := Verify(ctx, Options{Dir: dir, Self: self})
	if err != nil || r.Err() != nil || !r.OK {
		t.Fatalf("a good release: %v, %v", err, r.Err())
	}
	if r.SelfListedAs != "byok-offline_linux_amd64" || len(r.Files) != 3 || r.Signature != "not checked" {
		t.Errorf("report = %+v", r)
	}

	t.Run("tampered", func(t *testing.T) {
		dir := makeRelease(t, releaseFiles)
		if err := os.WriteFile(filepath.Join(dir, "byok-online_v1_amd64.deb"), []byte("debian packagf"), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Verify(ctx, Options{Dir: dir})
		if err != nil || !errors.Is(r.Err(), ErrMismatch) || !strings.Contains(r.Err().Error(), "byok-online_v1_amd64.deb") || r.OK {
			t.Errorf("tampered package: %v, %v", err, r.Err())
		}
	})
	t.Run("unlisted binary", func(t *testing.T) {
		dir := makeRelease(t, releaseFiles)
		if err := os.WriteFile(filepath.Join(dir, "byok-offline"), []byte("\x7fELF other"), 0o755); err != nil {
			t.Fatal(err)
		}
		r, _ := Verify(ctx, Options{Dir: dir})
		if !errors.Is(r.Err(), ErrMismatch) || !strings.Contains(r.Err().Error(), "not listed: byok-offline") {
			t.Errorf("unlisted binary: %v", r.Err())
		}
	})
	t.Run("listed file is a symlink", func(t *testing.T) {
		dir := makeRelease(t, releaseFiles)
		p := filepath.Join(dir, "byok-offline_linux_amd64")
		other := filepath.Join(t.TempDir(), "x")
		if err := os.WriteFile(other, []byte(releaseFiles["byok-offline_linux_amd64"]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(other, p); err != nil {
			t.Fatal(err)
		}
		r, _ := Verify(ctx, Options{Dir: dir})
		if !errors.Is(r.Err(), ErrMismatch) || r.Files[0].Status != StatusNotFile {
			t.Errorf("symlink: %v, %+v", r.Err(), r.Files)
		}
	})
	t.Run("missing", func(t *testing.T) {
		dir := makeRelease(t, releaseFiles)
		if err := os.Remove(filepath.Join(dir, "byok-offline_v1_linux_amd64.tar.gz")); err != nil {
			t.Fatal(err)
		}
		r, _ := Verify(ctx, Options{Dir: dir})
		if !errors.Is(r.Err(), ErrMissing) || errors.Is(r.Err(), ErrMismatch) {
			t.Errorf("missing file: %v", r.Err())
		}
		r, _ = Verify(ctx, Options{Dir: dir, AllowMissing: true})
		if r.Err() != nil {
			t.Errorf("missing file with AllowMissing: %v", r.Err())
		}
		for _, n := range []string{"byok-offline_linux_amd64", "byok-online_v1_amd64.deb"} {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				t.Fatal(err)
			}
		}
		r, _ = Verify(ctx, Options{Dir: dir, AllowMissing: true})
		if !errors.Is(r.Err(), ErrMissing) {
			t.Errorf("no listed file at all with AllowMissing: %v", r.Err())
		}
	})
	t.Run("no SHA256SUMS", func(t *testing.T) {
		if _, err := Verify(ctx, Options{Dir: t.TempDir()}); !errors.Is(err, ErrSums) {
			t.Errorf("empty folder: %v", err)
		}
	})
}

// sshKey makes an ed25519 key pair and an allowed-signers file for principal.
func sshKey(t *testing.T, dir, principal string) (key, allowed string) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ssh-keygen is required in CI (Debian: openssh-client)")
		}
		t.Skip("ssh-keygen not installed")
	}
	key = filepath.Join(dir, principal+".key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	allowed = filepath.Join(dir, principal+".allowed")
	if err := os.WriteFile(allowed, []byte(principal+" "+string(pub)), 0o644); err != nil {
		t.Fatal(err)
	}
	return key, allowed
}

func sign(t *testing.T, key, file, namespace string) {
	t.Helper()
	if out, err := exec.Command("ssh-keygen", "-Y", "sign", "-f", key, "-n", namespace, file).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
	}
}

func TestVerifySignature(t *testing.T) {
	ctx := context.Background()
	keys := t.TempDir()
	key, allowed := sshKey(t, keys, "release@example.org")
	_, otherAllowed := sshKey(t, keys, "mallory@example.org")

	dir := makeRelease(t, releaseFiles)
	sums := filepath.Join(dir, SumsFile)
	sign(t, key, sums, "file")

	r, err := Verify(ctx, Options{Dir: dir, AllowedSigners: allowed})
	if err != nil || r.Err() != nil || r.Signer != "release@example.org" || r.Signature != "good" {
		t.Fatalf("good signature: %v, %v, %+v", err, r.Err(), r)
	}
	r, _ = Verify(ctx, Options{Dir: dir, AllowedSigners: allowed, Identity: "release@example.org"})
	if r.Err() != nil {
		t.Errorf("good signature with --identity: %v", r.Err())
	}
	for name, o := range map[string]Options{
		"other signer":    {Dir: dir, AllowedSigners: otherAllowed},
		"wrong identity":  {Dir: dir, AllowedSigners: allowed, Identity: "mallory@example.org"},
		"wrong namespace": {Dir: dir, AllowedSigners: allowed, Namespace: "byok-release"},
		"no signature":    {Dir: dir, AllowedSigners: allowed, Signature: filepath.Join(keys, "none.sig")},
	} {
		r, _ := Verify(ctx, o)
		if !errors.Is(r.Err(), ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, r.Err())
		}
	}

	// The files all still match a SHA256SUMS that was rewritten after signing: only the
	// signature catches it.
	evil := makeRelease(t, map[string]string{"byok-offline_linux_amd64": "\x7fELF evil"})
	if err := os.Rename(filepath.Join(dir, SigFile), filepath.Join(evil, SigFile)); err != nil {
		t.Fatal(err)
	}
	r, _ = Verify(ctx, Options{Dir: evil, AllowedSigners: allowed})
	if !errors.Is(r.Err(), ErrSignature) || errors.Is(r.Err(), ErrMismatch) {
		t.Errorf("SHA256SUMS changed after signing: %v", r.Err())
	}
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := clirun.NewEnv("byok-test", strings.NewReader(""), &out, &errb)
	app := clirun.NewApp(env, "test", "", []*cli.Command{VerifyCommand(env)})
	code := clirun.Run(context.Background(), app, env, append([]string{"byok-test", "verify-release"}, args...))
	return code, out.String(), errb.String()
}

func TestVerifyCommandExitCodes(t *testing.T) {
	good := makeRelease(t, releaseFiles)
	code, out, errs := runCmd(t, good)
	if code != exitcode.OK || !strings.HasPrefix(out, "OK: "+good+" (3 of 3 listed files match SHA256SUMS)\n") || !strings.Contains(out, "is not in this release") {
		t.Errorf("good release: exit %d\n%s%s", code, out, errs)
	}

	code, out, _ = runCmd(t, "--json", good)
	var r Report
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || !r.OK || len(r.Files) != 3 || r.SelfSHA256 == "" {
		t.Errorf("--json: exit %d, %v, %q", code, err, out)
	}

	bad := makeRelease(t, releaseFiles)
	if err := os.WriteFile(filepath.Join(bad, "byok-offline_linux_amd64"), []byte("\x7fELF evil"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(bad, "byok-online_v1_amd64.deb")); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCmd(t, bad)
	if code != exitcode.Verify || !strings.HasPrefix(out, "FAIL: ") || !strings.Contains(out, "mismatch           byok-offline_linux_amd64") ||
		!strings.Contains(errs, "error: verification failed") || !strings.Contains(errs, "hint: do not install") {
		t.Errorf("mismatch and missing: exit %d, want %d\n%s%s", code, exitcode.Verify, out, errs)
	}

	missing := makeRelease(t, releaseFiles)
	if err := os.Remove(filepath.Join(missing, "byok-online_v1_amd64.deb")); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd(t, missing); code != exitcode.Bundle || !strings.Contains(errs, "listed file missing: byok-online_v1_amd64.deb") {
		t.Errorf("missing: exit %d, want %d: %s", code, exitcode.Bundle, errs)
	}
	if code, _, errs := runCmd(t, "--allow-missing", missing); code != exitcode.OK {
		t.Errorf("--allow-missing: exit %d: %s", code, errs)
	}

	malformed := t.TempDir()
	if err := os.WriteFile(filepath.Join(malformed, SumsFile), []byte("not a checksum list\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd(t, malformed); code != exitcode.Bundle || out != "" || !strings.Contains(errs, "SHA256SUMS missing or malformed: line 1") {
		t.Errorf("malformed: exit %d, %q, %q", code, out, errs)
	}
	if code, _, _ := runCmd(t, t.TempDir()); code != exitcode.Bundle {
		t.Errorf("no SHA256SUMS: exit %d", code)
	}

	if code, _, _ := runCmd(t); code != exitcode.Usage {
		t.Errorf("no folder: exit %d", code)
	}
	if code, _, _ := runCmd(t, "--identity", "x", good); code != exitcode.Usage {
		t.Errorf("--identity without --allowed-signers: exit %d", code)
	}
	if code, _, errs := runCmd(t, "--allowed-signers", filepath.Join(good, "nope"), good); code != exitcode.Verify || !strings.Contains(errs, "no signature file") {
		t.Errorf("signature required but absent: exit %d: %s", code, errs)
	}
}
