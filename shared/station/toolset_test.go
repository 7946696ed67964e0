package station

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/buildinfo"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// selfHash hashes the running test binary independently of buildinfo.
func selfHash(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestAppendWritesVersion2WithTheRunningBinarysToolset(t *testing.T) {
	s, key := newStation(t)
	pos, err := s.Position(bundle.ID{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Append(context.Background(), pos, enrollment(t, key), key, time.Unix(1_800_000_000, 0), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Header.Version != bundle.Version2 {
		t.Errorf("Append wrote format version %d, want %d", b.Header.Version, bundle.Version2)
	}
	p, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	v, err := payload.DecodeVersion(b.Header.Version, b.Header.Kind, p)
	if err != nil {
		t.Fatal(err)
	}
	got := payload.ToolsetOf(v)
	self, err := buildinfo.Self()
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.SHA256 != selfHash(t) || got.SHA256 != self.SHA256 || got.Version != buildinfo.Version() {
		t.Errorf("recorded toolset %+v, want version %q and the SHA-256 of the running binary %s", got, buildinfo.Version(), selfHash(t))
	}
}

func TestAppendRefusesAToolsetThePolicyDoesNotList(t *testing.T) {
	s, key := newStation(t)
	pos, err := s.Position(bundle.ID{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), pos, enrollment(t, key), key, time.Unix(1_800_000_000, 0), time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	self := selfHash(t)
	other := "00000000000000000000000000000000000000000000000000000000000000aa"
	pinned, open := bundle.ID{0x70}, bundle.ID{0x71}
	s.learnPolicy(pinned, &payload.Policy{AllowedToolsets: []string{other}})
	s.learnPolicy(open, &payload.Policy{AllowedToolsets: payload.SortToolsets([]string{other, self})})
	receipt := &payload.Receipt{Package: bundle.ID{2}, Vault: "https://v.vault.azure.net", Outcome: payload.OutcomeRejected, Error: "x"}

	pos, err = s.Position(pinned)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := s.Load()
	_, err = s.Append(context.Background(), pos, receipt, key, time.Unix(1_800_000_060, 0), time.Hour, nil)
	var te *ToolsetError
	if !errors.Is(err, ErrToolsetNotAllowed) || !errors.As(err, &te) || te.Toolset.SHA256 != self || te.Policy != pinned || te.Allowed != 1 {
		t.Fatalf("Append under a policy that lists another toolset = %v, want ErrToolsetNotAllowed naming this binary", err)
	}
	after, _ := s.Load()
	if after != before {
		t.Errorf("a refused Append changed the ledger: %+v, was %+v", after, before)
	}
	if _, err := s.Media.Find(bundle.ChainOnline, 2); err == nil {
		t.Error("a refused Append wrote a bundle")
	}

	// A policy that lists this binary (among others) lets it write.
	pos, err = s.Position(open)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), pos, receipt, key, time.Unix(1_800_000_060, 0), time.Hour, nil); err != nil {
		t.Fatalf("Append under a policy that lists this binary = %v", err)
	}
}
