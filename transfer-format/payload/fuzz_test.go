package payload_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// vectorPayloads returns the decoded payloads of kind k found in the test vectors, valid or
// not.
func vectorPayloads(f *testing.F, k bundle.Kind) [][]byte {
	f.Helper()
	var out [][]byte
	seen := map[string]bool{}
	err := filepath.WalkDir(filepath.Join("..", "testdata", "vectors"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(p, ".bundle") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b, err := bundle.Parse(data)
		if err != nil || b.Header.Kind != k {
			return nil
		}
		if pl, err := b.Open(); err == nil && !seen[string(pl)] {
			seen[string(pl)] = true
			out = append(out, pl)
		}
		return nil
	})
	if err != nil || len(out) == 0 {
		f.Fatalf("no %s payloads in the vectors: %v", k, err)
	}
	return out
}

// fuzzPayload checks that Decode accepts only canonical encodings of valid payloads: on
// success Marshal(Decode(x)) == x and the value validates; on failure a *ParseError.
func fuzzPayload(f *testing.F, k bundle.Kind) {
	for _, p := range vectorPayloads(f, k) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := payload.Decode(k, data)
		if err != nil {
			var pe *bundle.ParseError
			if v != nil || !errors.As(err, &pe) {
				t.Fatalf("Decode() = %v, %v; want nil and a *ParseError", v, err)
			}
			return
		}
		if got, err := payload.KindOf(v); err != nil || got != k {
			t.Fatalf("KindOf(Decode(%s)) = %s, %v", k, got, err)
		}
		again, err := payload.Marshal(v)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("Marshal(Decode(x)) = %.80q, %v; want x = %.80q", again, err, data)
		}
		if err := v.(interface{ Validate() error }).Validate(); err != nil {
			t.Fatalf("Decode() returned a value that does not validate: %v", err)
		}
		// Exactly one format version takes a payload: version 2 the one with a toolset,
		// version 1 the one without (and without allowed toolsets).
		var took []uint16
		for _, ver := range []uint16{bundle.Version1, bundle.Version2} {
			w, err := payload.DecodeVersion(ver, k, data)
			if err == nil {
				took = append(took, ver)
				if again, _ := payload.Marshal(w); !bytes.Equal(again, data) {
					t.Fatalf("Marshal(DecodeVersion(%d, x)) != x", ver)
				}
				continue
			}
			var pe *bundle.ParseError
			if w != nil || !errors.As(err, &pe) {
				t.Fatalf("DecodeVersion(%d) = %v, %v; want nil and a *ParseError", ver, w, err)
			}
		}
		hasToolset := payload.ToolsetOf(v) != nil
		// Members only version 2 defines: allowed toolsets, regions, residency.
		v2only := false
		switch p := v.(type) {
		case *payload.Policy:
			v2only = len(p.AllowedToolsets) > 0 || p.HasV2Members()
		case *payload.KeyPackage:
			v2only = p.HasV2Members()
		case *payload.Receipt:
			v2only = len(p.Versions) > 0
		}
		switch {
		case hasToolset && (len(took) != 1 || took[0] != bundle.Version2):
			t.Fatalf("a payload with a toolset is taken by versions %v, want 2 only", took)
		case !hasToolset && v2only && len(took) != 0:
			t.Fatalf("a payload with members of version 2 and no toolset is taken by versions %v, want none", took)
		case !hasToolset && !v2only && (len(took) != 1 || took[0] != bundle.Version1):
			t.Fatalf("a payload without a toolset is taken by versions %v, want 1 only", took)
		}
	})
}

func FuzzPayloadEnrollment(f *testing.F) { fuzzPayload(f, bundle.KindEnrollment) }
func FuzzPayloadPolicy(f *testing.F)     { fuzzPayload(f, bundle.KindPolicy) }
func FuzzPayloadKEKOffer(f *testing.F)   { fuzzPayload(f, bundle.KindKEKOffer) }
func FuzzPayloadKeyPackage(f *testing.F) { fuzzPayload(f, bundle.KindKeyPackage) }
func FuzzPayloadApproval(f *testing.F)   { fuzzPayload(f, bundle.KindApproval) }
func FuzzPayloadReceipt(f *testing.F)    { fuzzPayload(f, bundle.KindReceipt) }
