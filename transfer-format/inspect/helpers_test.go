package inspect_test

import (
	"bytes"
	"crypto"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// fixture is a whole ceremony on a medium in a temporary folder: both enrollments, policy
// version 1 and its approval, a KEK offer, three key packages (RSA, EC, AES) with their
// approvals, and a receipt for each. chaintest derives everything from the seed, so the
// bundles are the same on every run.
type fixture struct {
	c        *chaintest.Ceremony
	stations map[bundle.ID]crypto.PublicKey // both station keys
	all      map[bundle.ID]crypto.PublicKey // station and custodian keys
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	c, err := chaintest.New(chaintest.Config{Dir: tb.TempDir(), AllowWeakerKEK: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if _, err := c.Full(payload.RSA2048, payload.ECP256, payload.AES256); err != nil {
		tb.Fatal(err)
	}
	f := &fixture{c: c, stations: map[bundle.ID]crypto.PublicKey{}, all: map[bundle.ID]crypto.PublicKey{}}
	for _, k := range []crypto.PublicKey{c.OfflineKey.Public(), c.OnlineKey.Public()} {
		f.stations[keyID(tb, k)] = k
		f.all[keyID(tb, k)] = k
	}
	for _, ck := range c.Custodians {
		f.all[keyID(tb, ck.Public())] = ck.Public()
	}
	return f
}

// first returns the first bundle of kind k the ceremony wrote.
func (f *fixture) first(tb testing.TB, k bundle.Kind) *bundle.Bundle {
	tb.Helper()
	for _, b := range f.c.Written {
		if b.Header.Kind == k {
			return b
		}
	}
	tb.Fatalf("the ceremony wrote no %s", k)
	return nil
}

// decoded returns the payload of b, decoded by the payload package.
func decoded(tb testing.TB, b *bundle.Bundle) any {
	tb.Helper()
	p, err := b.Open()
	if err != nil {
		tb.Fatal(err)
	}
	v, err := payload.Decode(b.Header.Kind, p)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func keyID(tb testing.TB, pub crypto.PublicKey) bundle.ID {
	tb.Helper()
	id, err := bundle.KeyID(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// flip returns a copy of b with the lowest bit of byte i inverted.
func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 1
	return b
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkJSON checks what JSON promises: valid JSON, ASCII only, a trailing newline, and
// snake_case member names outside the maps that hold data from the medium.
func checkJSON(t *testing.T, out []byte) map[string]any {
	t.Helper()
	if len(out) == 0 || out[len(out)-1] != '\n' {
		t.Errorf("JSON() does not end in a newline")
	}
	for i, c := range out {
		if c >= 0x7f {
			t.Errorf("JSON() has byte %#x at offset %d, want ASCII only", c, i)
			break
		}
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("JSON() is not valid JSON: %v\n%s", err, out)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if !snakeCase.MatchString(k) {
					t.Errorf("member %s.%s is not snake_case", path, k)
				}
				if k == "tags" || k == "attributes" {
					continue // names chosen by people, not by the format
				}
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range v {
				walk(path+"[]", e)
			}
		}
	}
	walk("", m)
	return m
}
