package keyfile_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/airgap-byok/airgap-byok/online/internal/keyfile"
)

func TestGenerateThenLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", keyfile.Name)
	key, err := keyfile.Generate(path, nil)
	if err != nil {
		t.Fatalf("Generate() = %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %04o, want 0600", fi.Mode().Perm())
	}
	got, err := keyfile.Load(path)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if !got.Equal(key) {
		t.Error("Load() returned another key than Generate() wrote")
	}
}

func TestGenerateRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), keyfile.Name)
	if _, err := keyfile.Generate(path, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	_, err := keyfile.Generate(path, nil)
	if !errors.Is(err, keyfile.ErrExists) {
		t.Fatalf("second Generate() = %v, want ErrExists", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("the existing key file changed")
	}
}

func TestLoadRefusesWiderPermissions(t *testing.T) {
	tests := []struct {
		mode    fs.FileMode
		wantErr error
	}{
		{0o600, nil},
		{0o400, nil},
		{0o640, keyfile.ErrPermissions},
		{0o644, keyfile.ErrPermissions},
		{0o604, keyfile.ErrPermissions},
		{0o660, keyfile.ErrPermissions},
		{0o700, keyfile.ErrPermissions}, // executable is not a key's mode either
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), keyfile.Name)
			if _, err := keyfile.Generate(path, nil); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := keyfile.Load(path)
			if !errors.Is(err, tt.wantErr) && !(tt.wantErr == nil && err == nil) {
				t.Fatalf("Load(mode %04o) = %v, want %v", tt.mode, err, tt.wantErr)
			}
		})
	}
}

func TestLoadRejectsOtherContent(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"empty", ""},
		{"not PEM", "hello"},
		{"wrong PEM type", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
		{"trailing data", "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\nextra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), keyfile.Name)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := keyfile.Load(path); err == nil {
				t.Fatal("Load() = nil, want an error")
			}
		})
	}
	if _, err := keyfile.Load(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}
