package kvemu_test

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/airgap-byok/airgap-byok/integration/kvemu"
	"github.com/airgap-byok/airgap-byok/integration/kvemu/kvemutest"
)

func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	tok, err := kvemu.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	cfg := kvemu.Config{Token: tok, StatePath: filepath.Join(dir, "state.db"), CAFile: filepath.Join(dir, "ca.pem")}
	ctx := context.Background()

	s1, err := kvemu.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v1 := &kvemutest.Vault{Server: s1, Token: tok}
	c1 := v1.Client(t, nil)
	k := createKEK(t, c1, "kek", 2048)
	tg := ecTarget(t, elliptic.P256(), "P-256")
	file := k.wrap(t, tg.der) // wrapped before the restart
	imported, err := importBYOK(c1, "target", tg.kty, tg.crv, file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.CreateKey(ctx, "gone", ecHSM, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.DeleteKey(ctx, "gone", nil); err != nil {
		t.Fatal(err)
	}
	url1, ca1 := s1.URL(), s1.CACertPEM()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := kvemu.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.URL() != url1 {
		t.Errorf("URL after restart = %s, want %s (the remembered port)", s2.URL(), url1)
	}
	if !bytes.Equal(s2.CACertPEM(), ca1) {
		t.Errorf("TLS CA changed across restart")
	}
	if onDisk, err := os.ReadFile(cfg.CAFile); err != nil || !bytes.Equal(onDisk, ca1) {
		t.Errorf("CA file = %q, %v; want the CA", onDisk, err)
	}
	v2 := &kvemutest.Vault{Server: s2, Token: tok}
	c2 := v2.Client(t, nil)
	got, err := c2.GetKey(ctx, "target", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Key.KID != *imported.Key.KID {
		t.Errorf("kid after restart = %s, want %s", *got.Key.KID, *imported.Key.KID)
	}
	tg.check(t, got.Key)
	// The KEK's private key survived: a .byok wrapped before the restart still imports.
	if _, err := importBYOK(c2, "target", tg.kty, tg.crv, file); err != nil {
		t.Fatalf("import after restart: %v", err)
	}
	if n := versionCount(t, s2, "target"); n != 2 {
		t.Errorf("versions = %d, want 2", n)
	}
	if _, err := c2.GetDeletedKey(ctx, "gone", nil); err != nil {
		t.Errorf("soft deletion lost across restart: %v", err)
	}

	t.Run("locked while running", func(t *testing.T) {
		s, err := kvemu.Start(cfg)
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, kvemu.ErrStateLocked) {
			t.Errorf("second Start = %v, want ErrStateLocked", err)
		}
	})
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("other kind refused", func(t *testing.T) {
		c := cfg
		c.Kind = kvemu.KindManagedHSM
		s, err := kvemu.Start(c)
		if err == nil {
			s.Close()
			t.Fatal("Start of a managed HSM on a premium state succeeded")
		}
	})
}
