package inspect_test

import (
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/inspect"
)

// FuzzInspect renders arbitrary bytes, seeded with every bundle of a ceremony. Bundle must
// never panic; it returns either a rendering or a *bundle.ParseError, never both; a
// rendering's JSON is valid; and no payload is shown for a signature that did not verify
// unless Unverified was asked for.
func FuzzInspect(f *testing.F) {
	fx := newFixture(f)
	for _, b := range fx.c.Written {
		data := chaintest.Bytes(b)
		f.Add(data, false)
		f.Add(flip(data, bundle.HeaderSize+bundle.SignatureSize), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, unverified bool) {
		r, err := inspect.Bundle(data, inspect.Options{Keys: fx.stations, Unverified: unverified})
		if err != nil {
			var pe *bundle.ParseError
			if r != nil || !errors.As(err, &pe) {
				t.Fatalf("Bundle() = %v, %v; want nil and a *bundle.ParseError", r, err)
			}
			return
		}
		checkRendering(t, r, unverified)
	})
}

// FuzzInspectPayload seals arbitrary payload bytes of every kind in a properly signed bundle
// and renders it, so that the payload decoder and every payload view meet fuzzed input
// behind a verified signature (FuzzInspect cannot get past the signed digests). Seeded with
// the payloads of a ceremony.
func FuzzInspectPayload(f *testing.F) {
	fx := newFixture(f)
	for _, b := range fx.c.Written {
		f.Add(uint8(b.Header.Kind), mustOpen(f, b))
	}
	signer := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	keys := map[bundle.ID]crypto.PublicKey{keyID(f, signer.Public()): signer.Public()}
	for id, k := range fx.all {
		keys[id] = k // custodian keys, for approvals
	}
	f.Fuzz(func(t *testing.T, kind uint8, p []byte) {
		if len(p) == 0 || len(p) > bundle.MaxPayload {
			return
		}
		k := bundle.Kind(kind%6 + 1)
		d := bundle.Draft{Kind: k, Chain: bundle.ChainOffline, Seq: 2, Prev: bundle.ID{1}, Policy: bundle.ID{2},
			Created: 1_767_603_600, Expires: 1_767_603_600 + 86400, Payload: p}
		if !d.Chain.Allows(k) {
			d.Chain = bundle.ChainOnline
		}
		if k == bundle.KindEnrollment {
			d.Seq, d.Prev, d.Policy = 1, bundle.ID{}, bundle.ID{}
		}
		b, err := bundle.Seal(d, signer, nil)
		if err != nil {
			t.Fatalf("Seal() = %v", err)
		}
		r, err := inspect.Bundle(chaintest.Bytes(b), inspect.Options{Keys: keys})
		if err != nil {
			t.Fatalf("Bundle() = %v for a sealed bundle", err)
		}
		if !r.Signature.Verified {
			t.Fatalf("signature of a sealed bundle did not verify: %s", r.Signature.Error)
		}
		checkRendering(t, r, false)
	})
}

func mustOpen(tb testing.TB, b *bundle.Bundle) []byte {
	tb.Helper()
	p, err := b.Open()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// checkRendering checks the invariants of every rendering.
func checkRendering(t *testing.T, r *inspect.Rendering, unverified bool) {
	t.Helper()
	decodedState := r.PayloadState == inspect.PayloadDecoded || r.PayloadState == inspect.PayloadDecodedUnverified
	switch {
	case r.PayloadState == inspect.PayloadDecoded && !r.Signature.Verified:
		t.Fatalf("payload decoded as verified, signature not verified")
	case !r.Signature.Verified && !unverified && r.PayloadState != inspect.PayloadWithheld:
		t.Fatalf("payload state %q with an unverified signature, want withheld", r.PayloadState)
	case decodedState != (r.Payload != nil):
		t.Fatalf("payload state %q with payload %v", r.PayloadState, r.Payload)
	case (r.Err() == nil) != (r.PayloadState == inspect.PayloadDecoded):
		t.Fatalf("Err() = %v with payload state %q", r.Err(), r.PayloadState)
	}
	out := r.JSON()
	if !json.Valid(out) || out[len(out)-1] != '\n' {
		t.Fatalf("JSON() is not valid JSON ending in a newline:\n%s", out)
	}
	for _, c := range out {
		if c >= 0x7f {
			t.Fatalf("JSON() is not ASCII:\n%s", out)
		}
	}
}
