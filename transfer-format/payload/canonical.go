package payload

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"strconv"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// A replay decodes one payload per bundle, most of them key packages, approvals and
// receipts. For those three kinds decodeCanonical reads the canonical encoding directly:
// members in struct order, each value in the one spelling Marshal gives it. It takes only
// the plain cases (strings of printable ASCII without escapes, non-empty lists and maps,
// sorted map keys, canonical integers, strict padded base64) and gives up on anything else,
// so that the general decoder decides with its reasons. Whatever it accepts, the general
// decoder accepts with the same value, and Marshal returns the input again; a fuzz target
// checks both.

// decodeCanonical decodes data into v if v is a zero *KeyPackage, *Approval or *Receipt and
// data is a canonical encoding the fast path takes. It reports whether it did; v is
// untouched otherwise.
func decodeCanonical(data []byte, v any) bool {
	r := canonReader{b: data}
	switch p := v.(type) {
	case *KeyPackage:
		if !reflect.ValueOf(p).Elem().IsZero() {
			return false
		}
		var k KeyPackage
		r.keyPackage(&k)
		if r.done() {
			*p = k
			return true
		}
	case *Approval:
		if !reflect.ValueOf(p).Elem().IsZero() {
			return false
		}
		var a Approval
		r.approval(&a)
		if r.done() {
			*p = a
			return true
		}
	case *Receipt:
		if !reflect.ValueOf(p).Elem().IsZero() {
			return false
		}
		var rc Receipt
		r.receipt(&rc)
		if r.done() {
			*p = rc
			return true
		}
	}
	return false
}

func (r *canonReader) keyPackage(k *KeyPackage) {
	r.lit(`{"vault":`)
	k.Vault = r.str()
	r.lit(`,"key_name":`)
	k.KeyName = r.str()
	if r.opt(`,"regions":`) {
		k.Regions = r.strs()
	}
	r.lit(`,"kek":{"offer":`)
	k.KEK.Offer = r.id()
	r.lit(`,"kid":`)
	k.KEK.KID = r.str()
	r.lit(`},"target":{"kty":`)
	t := &k.Target
	t.Kty = r.str()
	if r.opt(`,"key_size":`) {
		t.KeySize = int(r.nonZeroInt(strconv.IntSize))
	}
	if r.opt(`,"crv":`) {
		t.Curve = r.nonEmptyStr()
	}
	r.lit(`,"key_ops":`)
	t.KeyOps = r.strs()
	r.lit(`,"enabled":`)
	t.Enabled = r.bool()
	if r.opt(`,"not_before":`) {
		t.NotBefore = r.nonZeroInt(64)
	}
	if r.opt(`,"expires":`) {
		t.Expires = r.nonZeroInt(64)
	}
	if r.opt(`,"tags":`) {
		t.Tags = r.strMap()
	}
	r.lit(`}`)
	if r.opt(`,"public_key":`) {
		k.PublicKey = r.bytes()
	}
	if r.opt(`,"kcv":`) {
		k.KCV = r.bytes()
	}
	r.lit(`,"byok":`)
	k.BYOK = r.bytes()
	p := &k.Provenance
	r.lit(`,"provenance":{"tool":`)
	p.Tool = r.str()
	r.lit(`,"token":`)
	r.tokenInfo(&p.Token)
	r.lit(`,"key":{"label":`)
	p.Key.Label = r.str()
	r.lit(`,"id":`)
	p.Key.ID = r.str()
	if r.opt(`,"attributes":`) {
		p.Key.Attributes = r.strMap()
	}
	r.lit(`},"wrap":{"path":`)
	p.Wrap.Path = r.str()
	if r.opt(`,"mechanisms":`) {
		p.Wrap.Mechanisms = r.strs()
	}
	r.lit(`,"ephemeral_key_destroyed":`)
	p.Wrap.EphemeralKeyDestroyed = r.bool()
	r.lit(`,"trailing_zero_padding":`)
	p.Wrap.TrailingZeroPadding = r.bool()
	r.lit(`}}`)
	k.Toolset = r.toolset()
	r.lit(`}`)
}

// toolset reads the optional toolset member that ends a payload of format version 2.
func (r *canonReader) toolset() *Toolset {
	if !r.opt(`,"toolset":{"version":`) {
		return nil
	}
	t := &Toolset{Version: r.str()}
	r.lit(`,"sha256":`)
	t.SHA256 = r.str()
	r.lit(`}`)
	return t
}

func (r *canonReader) tokenInfo(t *TokenInfo) {
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{`{"label":`, &t.Label}, {`,"manufacturer":`, &t.Manufacturer}, {`,"model":`, &t.Model},
		{`,"serial":`, &t.Serial}, {`,"firmware":`, &t.Firmware}, {`,"hardware":`, &t.Hardware},
		{`,"library":`, &t.Library}, {`,"library_version":`, &t.LibraryVersion}, {`,"cryptoki":`, &t.Cryptoki},
	} {
		r.lit(f.name)
		*f.dst = r.str()
	}
	r.lit(`}`)
}

func (r *canonReader) approval(a *Approval) {
	r.lit(`{"target":`)
	a.Target = r.id()
	r.lit(`,"target_kind":`)
	a.TargetKind = r.str()
	r.lit(`,"signatures":[`)
	for {
		var s Signature
		r.lit(`{"custodian":`)
		s.Custodian = r.id()
		r.lit(`,"sig":`)
		s.Sig = r.bytes()
		r.lit(`}`)
		if r.failed {
			return
		}
		a.Signatures = append(a.Signatures, s)
		if !r.opt(`,`) {
			break
		}
	}
	r.lit(`]`)
	a.Toolset = r.toolset()
	r.lit(`}`)
}

func (r *canonReader) receipt(rc *Receipt) {
	r.lit(`{"package":`)
	rc.Package = r.id()
	r.lit(`,"vault":`)
	rc.Vault = r.str()
	r.lit(`,"outcome":`)
	rc.Outcome = r.str()
	if r.opt(`,"kid":`) {
		rc.KID = r.nonEmptyStr()
	}
	if r.opt(`,"public_key":`) {
		rc.PublicKey = r.bytes()
	}
	if r.opt(`,"created":`) {
		rc.Created = r.nonZeroInt(64)
	}
	if r.opt(`,"tags":`) {
		rc.Tags = r.strMap()
	}
	if r.opt(`,"error":`) {
		rc.Error = r.nonEmptyStr()
	}
	if r.opt(`,"versions":`) {
		rc.Versions = r.strs()
	}
	rc.Toolset = r.toolset()
	r.lit(`}`)
}

// canonReader reads canonical JSON from b. Once something is not as expected it sets
// failed, and every later call does nothing.
type canonReader struct {
	b      []byte
	failed bool
}

// done reports whether everything was read as expected, to the end.
func (r *canonReader) done() bool { return !r.failed && len(r.b) == 0 }

func (r *canonReader) fail() { r.failed = true }

// lit reads the literal s.
func (r *canonReader) lit(s string) {
	if !r.opt(s) {
		r.fail()
	}
}

// opt reads the literal s if the input continues with it, for members Marshal leaves out
// when they are empty.
func (r *canonReader) opt(s string) bool {
	if r.failed || len(r.b) < len(s) || string(r.b[:len(s)]) != s {
		return false
	}
	r.b = r.b[len(s):]
	return true
}

// str reads a string Marshal writes without escapes: printable ASCII without '"' or '\\'.
func (r *canonReader) str() string {
	if r.failed || len(r.b) == 0 || r.b[0] != '"' {
		r.fail()
		return ""
	}
	for i := 1; i < len(r.b); i++ {
		switch c := r.b[i]; {
		case c == '"':
			s := string(r.b[1:i])
			r.b = r.b[i+1:]
			return s
		case c < 0x20 || c > 0x7e || c == '\\':
			r.fail()
			return ""
		}
	}
	r.fail()
	return ""
}

// nonEmptyStr reads a string of an omitempty member, which Marshal writes only when it is
// not empty.
func (r *canonReader) nonEmptyStr() string {
	s := r.str()
	if s == "" {
		r.fail()
	}
	return s
}

// strs reads a non-empty list of strings.
func (r *canonReader) strs() []string {
	r.lit(`[`)
	var out []string
	for !r.failed {
		out = append(out, r.str())
		if !r.opt(`,`) {
			break
		}
	}
	r.lit(`]`)
	return out
}

// strMap reads a non-empty object of strings whose keys are in increasing order, as
// Marshal sorts them.
func (r *canonReader) strMap() map[string]string {
	r.lit(`{`)
	out := map[string]string{}
	prev := ""
	for !r.failed {
		k := r.str()
		if len(out) > 0 && k <= prev {
			r.fail()
		}
		r.lit(`:`)
		out[k] = r.str()
		prev = k
		if !r.opt(`,`) {
			break
		}
	}
	r.lit(`}`)
	return out
}

// id reads a bundle or key ID: 64 lowercase hex digits in quotes.
func (r *canonReader) id() bundle.ID {
	var id bundle.ID
	if r.failed || len(r.b) < 66 || r.b[0] != '"' || r.b[65] != '"' {
		r.fail()
		return id
	}
	for i := range id {
		hi, ok1 := lowerHex(r.b[1+2*i])
		lo, ok2 := lowerHex(r.b[2+2*i])
		if !ok1 || !ok2 {
			r.fail()
			return id
		}
		id[i] = hi<<4 | lo
	}
	r.b = r.b[66:]
	return id
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// bytes reads a non-empty byte string: standard padded base64, with zero unused bits.
func (r *canonReader) bytes() []byte {
	if r.failed || len(r.b) == 0 || r.b[0] != '"' {
		r.fail()
		return nil
	}
	n := bytes.IndexByte(r.b[1:], '"')
	if n < 1 {
		r.fail()
		return nil
	}
	// The decoder refuses every byte outside the alphabet but skips CR and LF, which a JSON
	// string cannot hold unescaped.
	src := r.b[1 : 1+n]
	if bytes.IndexByte(src, '\r') >= 0 || bytes.IndexByte(src, '\n') >= 0 {
		r.fail()
		return nil
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	m, err := base64.StdEncoding.Strict().Decode(out, src)
	if err != nil {
		r.fail()
		return nil
	}
	r.b = r.b[2+n:]
	return out[:m]
}

// nonZeroInt reads a non-zero integer of an omitempty member in its canonical spelling (no
// leading zeros, no '+', no fraction or exponent) that fits in bits.
func (r *canonReader) nonZeroInt(bits int) int64 {
	if r.failed {
		return 0
	}
	i := 0
	if i < len(r.b) && r.b[i] == '-' {
		i++
	}
	start := i
	for i < len(r.b) && '0' <= r.b[i] && r.b[i] <= '9' {
		i++
	}
	if i == start || r.b[start] == '0' {
		r.fail()
		return 0
	}
	n, err := strconv.ParseInt(string(r.b[:i]), 10, bits)
	if err != nil {
		r.fail()
		return 0
	}
	r.b = r.b[i:]
	return n
}

// bool reads true or false.
func (r *canonReader) bool() bool {
	switch {
	case r.opt("true"):
		return true
	case r.opt("false"):
		return false
	}
	r.fail()
	return false
}
