package buildinfo

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
)

func TestSelfHashesTheRunningBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	got, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("Self().SHA256 = %s, want %x", got.SHA256, sum)
	}
	if got.Version != Version() {
		t.Errorf("Self().Version = %q, want %q", got.Version, Version())
	}
}

func TestVersionPrefersTheLinkTimeVersion(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = ""
	if v := Version(); v != "devel" {
		t.Errorf("a test binary without a link-time version says %q, want devel", v)
	}
	SetVersion("v1.2.3")
	if v := Version(); v != "v1.2.3" {
		t.Errorf("Version() = %q after SetVersion", v)
	}
	SetVersion("")
	if v := Version(); v != "v1.2.3" {
		t.Errorf("SetVersion(\"\") replaced the version: %q", v)
	}
	if s, err := Self(); err != nil || s.Version != "v1.2.3" {
		t.Errorf("Self() = %+v, %v", s, err)
	}
}

func TestReadRevisionFromLinkTime(t *testing.T) {
	old := revision
	t.Cleanup(func() { revision = old })
	revision = "0123456789abcdef0123456789abcdef01234567"
	in, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if in.Revision != revision || in.SHA256 == "" || in.Executable == "" {
		t.Errorf("Read() = %+v", in)
	}
}
