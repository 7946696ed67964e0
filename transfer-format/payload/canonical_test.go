package payload_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// fastKinds are the kinds the canonical reader takes: the bulk of every medium.
var fastKinds = []bundle.Kind{bundle.KindKeyPackage, bundle.KindApproval, bundle.KindReceipt}

func newOf(k bundle.Kind) any {
	switch k {
	case bundle.KindKeyPackage:
		return new(payload.KeyPackage)
	case bundle.KindApproval:
		return new(payload.Approval)
	case bundle.KindReceipt:
		return new(payload.Receipt)
	}
	panic(k)
}

// stationPayloads returns payloads as the stations write them, in format version 1 and 2:
// every key type's package (with tags, validity times and no mechanisms on one), approvals,
// and imported and rejected receipts, and a receipt of a duplicate import.
func stationPayloads(t *testing.T) map[bundle.Kind][][]byte {
	t.Helper()
	c, err := chaintest.New(chaintest.Config{Dir: t.TempDir(), FastWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Setup(); err != nil {
		t.Fatal(err)
	}
	off, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	out := map[bundle.Kind][][]byte{}
	// add adds v as version 1 and, with a toolset, as version 2 writes it.
	add := func(k bundle.Kind, v any) {
		for _, ts := range []*payload.Toolset{nil, &chaintest.TestToolset} {
			if err := payload.SetToolset(v, ts); err != nil {
				t.Fatal(err)
			}
			b, err := payload.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			out[k] = append(out[k], b)
		}
		if err := payload.SetToolset(v, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, kt := range payload.KeyTypes {
		k, err := c.PackagePayload(off.ID(), kt, "key-"+strings.ToLower(string(kt)))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			k.Target.Tags = map[string]string{"app": "billing", "env": "prod", "owner": "x@example.com"}
			k.Target.NotBefore, k.Target.Expires = 1_800_000_000, 1_900_000_000
			k.Provenance.Wrap.Mechanisms = nil
			k.Provenance.Key.Attributes = nil
		}
		add(bundle.KindKeyPackage, k)
		pkg, err := c.Append(bundle.ChainOffline, k)
		if err != nil {
			t.Fatal(err)
		}
		add(bundle.KindApproval, c.Approval(pkg.ID(), bundle.KindKeyPackage, 0, 1, 2))
		rc, err := c.ReceiptPayload(pkg)
		if err != nil {
			t.Fatal(err)
		}
		add(bundle.KindReceipt, rc)
		dup := *rc // a version 2 receipt of a duplicate import
		dup.Versions = []string{rc.KID, rc.KID[:strings.LastIndex(rc.KID, "/")+1] + "ffffffffffffffffffffffffffffffff"}
		dup.Toolset = &chaintest.TestToolset
		if b, err := payload.Marshal(&dup); err == nil {
			out[bundle.KindReceipt] = append(out[bundle.KindReceipt], b)
		}
		add(bundle.KindReceipt, &payload.Receipt{Package: pkg.ID(), Vault: rc.Vault, Outcome: payload.OutcomeRejected, Error: "400 BadParameter: the key is not valid"})
	}
	return out
}

// The canonical reader must take what the stations write, or replays lose its speed
// without any other test failing; and it must decode exactly what the general decoder does.
func TestDecodeCanonicalTakesWhatStationsWrite(t *testing.T) {
	for k, ps := range stationPayloads(t) {
		for i, p := range ps {
			fast, slow := newOf(k), newOf(k)
			if !payload.DecodeCanonical(p, fast) {
				t.Errorf("%s %d: the canonical reader declined %.120s", k, i, p)
				continue
			}
			if err := payload.DecodeJSON(p, slow); err != nil {
				t.Fatalf("%s %d: general decoder: %v", k, i, err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Errorf("%s %d: canonical reader = %+v, general decoder = %+v", k, i, fast, slow)
			}
			if _, err := payload.Decode(k, p); err != nil {
				t.Errorf("%s %d: Decode() = %v", k, i, err)
			}
		}
	}
}

// Other spellings go to the general decoder, which refuses them (or, for escaped strings,
// accepts them): the verdicts do not change.
func TestDecodeCanonicalDeclines(t *testing.T) {
	ps := stationPayloads(t)
	pkg := string(ps[bundle.KindKeyPackage][0]) // the one with tags and validity times
	appr := string(ps[bundle.KindApproval][0])
	rcpt := string(ps[bundle.KindReceipt][0])
	rejected := string(ps[bundle.KindReceipt][3]) // after the receipt in version 1 and 2, and the duplicate
	orig := map[string]bool{pkg: true, appr: true, rcpt: true, rejected: true}
	tests := []struct {
		name  string
		kind  bundle.Kind
		in    string
		valid bool // Decode still accepts it
	}{
		{"escaped string", bundle.KindKeyPackage, strings.Replace(pkg, `"tool":"chaintest"`, `"tool":"chain\"test"`, 1), true},
		{"non-ascii string", bundle.KindReceipt, strings.Replace(rejected, `"error":"`, `"error":"é`, 1), true},
		{"whitespace", bundle.KindKeyPackage, strings.Replace(pkg, `"vault":`, `"vault": `, 1), false},
		{"trailing newline", bundle.KindApproval, appr + "\n", false},
		{"null list", bundle.KindKeyPackage, replaceValue(t, pkg, `"key_ops":`, "null"), false},
		{"empty list", bundle.KindKeyPackage, replaceValue(t, pkg, `"key_ops":`, "[]"), false},
		{"empty signatures", bundle.KindApproval, replaceValue(t, appr, `"signatures":`, "[]"), false},
		{"unsorted tags", bundle.KindKeyPackage, strings.Replace(pkg, `"app":"billing","env":"prod"`, `"env":"prod","app":"billing"`, 1), false},
		{"empty tags", bundle.KindKeyPackage, replaceValue(t, pkg, `"tags":`, "{}"), false},
		{"leading zero", bundle.KindKeyPackage, strings.Replace(pkg, `"key_size":2048`, `"key_size":02048`, 1), false},
		{"zero omitempty", bundle.KindKeyPackage, strings.Replace(pkg, `"not_before":1800000000`, `"not_before":0`, 1), false},
		{"exponent", bundle.KindReceipt, replaceValue(t, rcpt, `"created":`, "1.8e9"), false},
		{"empty omitempty string", bundle.KindKeyPackage, strings.Replace(pkg, `"key_size":2048`, `"key_size":2048,"crv":""`, 1), false},
		{"uppercase id", bundle.KindApproval, strings.Replace(appr, `"target":"`+hexPrefix(appr, `"target":"`), `"target":"`+strings.ToUpper(hexPrefix(appr, `"target":"`)), 1), false},
		{"unpadded base64", bundle.KindApproval, strings.Replace(appr, `=="}`, `"}`, 1), false},
		{"raw newline in base64", bundle.KindApproval, strings.Replace(appr, `"sig":"`, `"sig":"`+"\n", 1), false},
		{"raw carriage return in base64", bundle.KindApproval, strings.Replace(appr, `"sig":"`, `"sig":"`+"\r", 1), false},
		{"unknown member", bundle.KindReceipt, strings.Replace(rcpt, `"outcome":`, `"extra":"x","outcome":`, 1), false},
		{"duplicate member", bundle.KindReceipt, strings.Replace(rcpt, `"outcome":`, `"vault":"https://x.vault.azure.net","outcome":`, 1), false},
		{"truncated", bundle.KindReceipt, rcpt[:len(rcpt)-1], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in == "" || orig[tt.in] {
				t.Fatal("the mutation did not apply")
			}
			if payload.DecodeCanonical([]byte(tt.in), newOf(tt.kind)) {
				t.Fatalf("the canonical reader took %.200s", tt.in)
			}
			_, err := payload.Decode(tt.kind, []byte(tt.in))
			var pe *bundle.ParseError
			if tt.valid != (err == nil) || (err != nil && !errors.As(err, &pe)) {
				t.Errorf("Decode() = %v, want success %v (or a *ParseError)", err, tt.valid)
			}
		})
	}
}

// A value that is not zero goes to the general decoder, which merges into it as
// encoding/json does.
func TestDecodeCanonicalOnlyIntoZeroValues(t *testing.T) {
	p := stationPayloads(t)[bundle.KindReceipt][0]
	rc := &payload.Receipt{Error: "left over"}
	if payload.DecodeCanonical(p, rc) || rc.Error != "left over" {
		t.Errorf("the canonical reader decoded into a non-zero value: %+v", rc)
	}
}

// replaceValue replaces the value after member (up to the next comma or closing bracket at
// the same depth) with v.
func replaceValue(t *testing.T, s, member, v string) string {
	t.Helper()
	i := strings.Index(s, member)
	if i < 0 {
		t.Fatalf("no %s", member)
	}
	start := i + len(member)
	depth, j := 0, start
	for ; j < len(s); j++ {
		switch s[j] {
		case '[', '{':
			depth++
		case ']', '}':
			depth--
		}
		if depth < 0 || depth == 0 && (s[j] == ',' || s[j] == ']' || s[j] == '}') {
			if depth == 0 && (s[j] == ']' || s[j] == '}') {
				j++
			}
			break
		}
	}
	return s[:start] + v + s[j:]
}

func hexPrefix(s, member string) string {
	i := strings.Index(s, member) + len(member)
	return s[i : i+64]
}

// fuzzCanonical checks that whatever the canonical reader takes, the general decoder takes
// too, with the same value, and that it is the canonical encoding of that value.
func fuzzCanonical(f *testing.F, k bundle.Kind) {
	for _, p := range vectorPayloads(f, k) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast := newOf(k)
		if !payload.DecodeCanonical(data, fast) {
			return
		}
		slow := newOf(k)
		if err := payload.DecodeJSON(data, slow); err != nil {
			t.Fatalf("the canonical reader took what the general decoder refuses: %v", err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("canonical reader = %+v, general decoder = %+v", fast, slow)
		}
		again, err := payload.Marshal(fast)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("Marshal(canonical reader(x)) = %.80q, %v; want x", again, err)
		}
	})
}

func FuzzCanonicalKeyPackage(f *testing.F) { fuzzCanonical(f, bundle.KindKeyPackage) }
func FuzzCanonicalApproval(f *testing.F)   { fuzzCanonical(f, bundle.KindApproval) }
func FuzzCanonicalReceipt(f *testing.F)    { fuzzCanonical(f, bundle.KindReceipt) }

func BenchmarkDecode(b *testing.B) {
	c, err := chaintest.New(chaintest.Config{Dir: b.TempDir(), FastWrite: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Setup(); err != nil {
		b.Fatal(err)
	}
	off, err := c.Offer()
	if err != nil {
		b.Fatal(err)
	}
	k, err := c.PackagePayload(off.ID(), payload.RSA3072, "key-1")
	if err != nil {
		b.Fatal(err)
	}
	data, err := payload.Marshal(k)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("key_package", func(b *testing.B) {
		for b.Loop() {
			if _, err := payload.Decode(bundle.KindKeyPackage, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("key_package/general", func(b *testing.B) {
		for b.Loop() {
			var v payload.KeyPackage
			if err := payload.DecodeJSON(data, &v); err != nil {
				b.Fatal(err)
			}
			if err := v.Validate(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
