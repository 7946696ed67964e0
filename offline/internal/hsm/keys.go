//go:build cgo

package hsm

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

// idBytes is the length of the random CKA_ID given to target keys.
const idBytes = 16

// findLocked returns the handles of the objects matching tmpl.
func (t *Token) findLocked(tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := t.p.FindObjectsInit(t.sh, tmpl); err != nil {
		return nil, err
	}
	var out []pkcs11.ObjectHandle
	for {
		hs, _, err := t.p.FindObjects(t.sh, 64)
		if err != nil {
			_ = t.p.FindObjectsFinal(t.sh)
			return nil, err
		}
		if len(hs) == 0 {
			break
		}
		out = append(out, hs...)
	}
	return out, t.p.FindObjectsFinal(t.sh)
}

// attrLocked reads one attribute. When the object does not have it or the token refuses to
// reveal it, v is nil and status says which: "unavailable" or "sensitive".
func (t *Token) attrLocked(h pkcs11.ObjectHandle, typ uint) (v []byte, status string, err error) {
	attrs, err := t.p.GetAttributeValue(t.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
	switch {
	case isCode(err, pkcs11.CKR_ATTRIBUTE_TYPE_INVALID):
		return nil, "unavailable", nil
	case isCode(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE):
		return nil, "sensitive", nil
	case err != nil:
		return nil, "", err
	}
	return attrs[0].Value, "", nil
}

// mustAttrLocked reads an attribute the object must have.
func (t *Token) mustAttrLocked(op string, h pkcs11.ObjectHandle, typ uint) ([]byte, error) {
	v, status, err := t.attrLocked(h, typ)
	if err != nil {
		return nil, p11Err(fmt.Sprintf("%s: read %s", op, attributeName(typ)), err)
	}
	if status != "" {
		return nil, errorf(op, ErrUnsupportedKey, "%s is %s", attributeName(typ), status)
	}
	return v, nil
}

// attributesLocked returns the provenance attributes of an object of the given class.
func (t *Token) attributesLocked(op string, h pkcs11.ObjectHandle, class uint) (map[string]string, error) {
	out := make(map[string]string)
	for _, a := range provenance[class] {
		v, status, err := t.attrLocked(h, a.typ)
		if err != nil {
			return nil, p11Err(fmt.Sprintf("%s: read %s", op, attributeName(a.typ)), err)
		}
		if status != "" {
			out[attributeName(a.typ)] = status
			continue
		}
		out[attributeName(a.typ)] = formatAttr(a.kind, v)
	}
	return out, nil
}

// existsLocked returns an error wrapping ErrExists if any object carries the label or, when
// id is not empty, the CKA_ID.
func (t *Token) existsLocked(op, label string, id []byte) error {
	hs, err := t.findLocked([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
	if err != nil {
		return p11Err(op+": look for existing label", err)
	}
	if len(hs) > 0 {
		return errorf(op, ErrExists, "%d object(s) with label %q exist already", len(hs), label)
	}
	if len(id) == 0 {
		return nil
	}
	hs, err = t.findLocked([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, id)})
	if err != nil {
		return p11Err(op+": look for existing id", err)
	}
	if len(hs) > 0 {
		return errorf(op, ErrExists, "%d object(s) with id %x exist already", len(hs), id)
	}
	return nil
}

// GenerateTarget generates a target key to be wrapped for Azure, as token objects labelled
// label with a random 16-byte CKA_ID: for RSA and EC a key pair, for AES a secret key.
//
// The private or secret key is CKA_PRIVATE, CKA_SENSITIVE (its value never leaves the token
// in clear) and CKA_EXTRACTABLE: extractable only so that it can be wrapped with C_WrapKey for
// the vault's KEK, which is this tool's purpose. Its usage flags are minimal: CKA_SIGN for
// RSA and EC (the caller may prove possession), CKA_ENCRYPT for AES (so that a token without
// CKA_CHECK_VALUE can compute the key check value); no decrypt, unwrap or derive. The public
// key object is a public token object with CKA_VERIFY only. With opts.WrapWithTrusted the key
// also gets CKA_WRAP_WITH_TRUSTED and can then only be wrapped by WrapTrusted.
//
// Errors wrap ErrInvalid (spec not in KeySpecs, empty label), ErrExists (an object with the
// label exists: nothing is generated) or the token's failure.
func (t *Token) GenerateTarget(ctx context.Context, spec KeySpec, label string, opts TargetOptions) (*Key, error) {
	op := fmt.Sprintf("generate target key %q", label)
	if label == "" {
		return nil, errorf("generate target key", ErrInvalid, "label is required")
	}
	if !spec.Valid() {
		return nil, errorf(op, ErrInvalid, "unsupported key spec %s", spec)
	}
	if err := t.lock(ctx, op); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	if err := t.existsLocked(op, label, nil); err != nil {
		return nil, err
	}
	id := make([]byte, idBytes)
	if _, err := rand.Read(id); err != nil {
		return nil, errorf(op, ErrModule, "random id: %w", err)
	}
	if err := t.existsLocked(op, label, id); err != nil {
		return nil, err
	}
	priv, pub, err := t.generateLocked(op, spec, label, id, true, opts.WrapWithTrusted)
	if err != nil {
		return nil, err
	}
	k, err := t.loadKeyLocked(op, priv, classOf(spec), false)
	if err != nil {
		t.destroyLocked(priv, pub)
		return nil, err
	}
	t.log.Info("generated target key", "key", k, "wrap_with_trusted", k.WrapWithTrusted)
	return k, nil
}

// classOf returns the class of the object that holds a spec's secret.
func classOf(spec KeySpec) uint {
	if spec.Type == AES {
		return pkcs11.CKO_SECRET_KEY
	}
	return pkcs11.CKO_PRIVATE_KEY
}

// generateLocked generates a target key; pub is 0 for AES. token false makes session objects
// (the self-test's throwaway keys).
func (t *Token) generateLocked(op string, spec KeySpec, label string, id []byte, token, wrapWithTrusted bool) (priv, pub pkcs11.ObjectHandle, err error) {
	common := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, token),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	secretAttrs := append(common[:len(common):len(common)],
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		// Extractable only so that C_WrapKey can wrap it for the vault's KEK.
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
	)
	if wrapWithTrusted {
		secretAttrs = append(secretAttrs, pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, true))
	}
	publicAttrs := append(common[:len(common):len(common)],
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
	)

	switch spec.Type {
	case RSA:
		publicAttrs = append(publicAttrs,
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, spec.Bits),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{0x01, 0x00, 0x01}),
		)
		privAttrs := append(secretAttrs,
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		)
		pub, priv, err = t.p.GenerateKeyPair(t.sh,
			[]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)}, publicAttrs, privAttrs)
	case EC:
		publicAttrs = append(publicAttrs,
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, curveOIDs[spec.Curve]),
		)
		privAttrs := append(secretAttrs,
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		)
		pub, priv, err = t.p.GenerateKeyPair(t.sh,
			[]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)}, publicAttrs, privAttrs)
	case AES:
		attrs := append(secretAttrs,
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, spec.Bits/8),
			// Only so that the key check value can be computed where CKA_CHECK_VALUE is absent.
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		)
		priv, err = t.p.GenerateKey(t.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, attrs)
	default:
		return 0, 0, errorf(op, ErrInvalid, "unsupported key spec %s", spec)
	}
	if err != nil {
		return 0, 0, p11Err(op, err)
	}
	return priv, pub, nil
}

// destroyLocked destroys objects, ignoring zero handles and errors (cleanup paths only).
func (t *Token) destroyLocked(hs ...pkcs11.ObjectHandle) {
	for _, h := range hs {
		if h != 0 {
			if err := t.p.DestroyObject(t.sh, h); err != nil {
				t.log.Warn("destroy object failed", "handle", uint(h), "err", p11Err("destroy object", err))
			}
		}
	}
}

// FindTarget finds an existing target key (a private or secret token object) by label, by
// CKA_ID or by both. Errors wrap ErrInvalid (empty ref), ErrKeyNotFound, ErrAmbiguous (several
// keys match), or ErrUnsupportedKey (a type or size outside KeySpecs, or an EC key whose
// public key object is missing).
func (t *Token) FindTarget(ctx context.Context, ref KeyRef) (*Key, error) {
	op := fmt.Sprintf("find target key %s", ref)
	if ref.Label == "" && len(ref.ID) == 0 {
		return nil, errorf("find target key", ErrInvalid, "a label or an id is required")
	}
	if err := t.lock(ctx, op); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	type match struct {
		h     pkcs11.ObjectHandle
		class uint
	}
	// One search for every class, then each match's class: a search costs the token a
	// pass over all its objects (SoftHSM reads its object files again), an attribute one
	// object.
	hs, err := t.findLocked(refTemplate(ref, classAny))
	if err != nil {
		return nil, p11Err(op, err)
	}
	var found []match
	for _, h := range hs {
		cb, _, err := t.attrLocked(h, pkcs11.CKA_CLASS)
		if err != nil {
			return nil, p11Err(op+": read CKA_CLASS", err)
		}
		if class, ok := ulong(cb); ok && (class == pkcs11.CKO_PRIVATE_KEY || class == pkcs11.CKO_SECRET_KEY) {
			found = append(found, match{h, uint(class)})
		}
	}
	switch len(found) {
	case 0:
		return nil, errorOf(op, ErrKeyNotFound)
	case 1:
	default:
		return nil, errorf(op, ErrAmbiguous, "%d keys match: select by id", len(found))
	}
	return t.loadKeyLocked(op, found[0].h, found[0].class, false)
}

// classAny asks refTemplate for objects of every class.
const classAny = ^uint(0)

// refTemplate is the search template for a target key of a class (classAny: any class).
func refTemplate(ref KeyRef, class uint) []*pkcs11.Attribute {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)}
	if class != classAny {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_CLASS, class))
	}
	if ref.Label != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, ref.Label))
	}
	if len(ref.ID) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, ref.ID))
	}
	return tmpl
}

// loadKeyLocked builds a Key from its private or secret key object.
func (t *Token) loadKeyLocked(op string, h pkcs11.ObjectHandle, class uint, session bool) (*Key, error) {
	attrs, err := t.attributesLocked(op, h, class)
	if err != nil {
		return nil, err
	}
	label, err := t.mustAttrLocked(op, h, pkcs11.CKA_LABEL)
	if err != nil {
		return nil, err
	}
	id, err := t.mustAttrLocked(op, h, pkcs11.CKA_ID)
	if err != nil {
		return nil, err
	}
	ktb, err := t.mustAttrLocked(op, h, pkcs11.CKA_KEY_TYPE)
	if err != nil {
		return nil, err
	}
	kt, _ := ulong(ktb)
	k := &Key{
		Label:           string(label),
		ID:              id,
		Attributes:      attrs,
		WrapWithTrusted: attrs[attributeName(pkcs11.CKA_WRAP_WITH_TRUSTED)] == "true",
		tok:             t,
		session:         session,
		class:           class,
		handle:          uint(h),
		gen:             t.gen.Load(),
	}
	switch {
	case class == pkcs11.CKO_PRIVATE_KEY && kt == pkcs11.CKK_RSA:
		err = t.loadRSALocked(op, h, k)
	case class == pkcs11.CKO_PRIVATE_KEY && kt == pkcs11.CKK_EC:
		err = t.loadECLocked(op, h, k)
	case class == pkcs11.CKO_SECRET_KEY && kt == pkcs11.CKK_AES:
		err = t.loadAESLocked(op, h, k)
	default:
		err = errorf(op, ErrUnsupportedKey, "%s %s is not a supported target key", className(class), keyTypeName(kt))
	}
	if err != nil {
		return nil, err
	}
	return k, nil
}

func (t *Token) loadRSALocked(op string, h pkcs11.ObjectHandle, k *Key) error {
	n, err := t.mustAttrLocked(op, h, pkcs11.CKA_MODULUS)
	if err != nil {
		return err
	}
	e, err := t.mustAttrLocked(op, h, pkcs11.CKA_PUBLIC_EXPONENT)
	if err != nil {
		return err
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
	eb := new(big.Int).SetBytes(e)
	if !eb.IsInt64() || eb.Int64() > 1<<31-1 || eb.Int64() < 3 {
		return errorf(op, ErrUnsupportedKey, "rsa public exponent %s is out of range", eb)
	}
	pub.E = int(eb.Int64())
	k.Spec = KeySpec{Type: RSA, Bits: pub.N.BitLen()}
	if !k.Spec.Valid() {
		return errorf(op, ErrUnsupportedKey, "rsa key of %d bits: Azure accepts 2048, 3072 and 4096", pub.N.BitLen())
	}
	k.Public = pub
	return nil
}

func (t *Token) loadECLocked(op string, h pkcs11.ObjectHandle, k *Key) error {
	params, err := t.mustAttrLocked(op, h, pkcs11.CKA_EC_PARAMS)
	if err != nil {
		return err
	}
	spec, ok := ecSpec(curveByParams(params))
	if !ok {
		return errorf(op, ErrUnsupportedKey, "ec key on curve %x: Azure accepts P-256, P-384 and P-521", params)
	}
	k.Spec = spec
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		pkcs11.NewAttribute(pkcs11.CKA_ID, k.ID),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
	}
	hs, err := t.findLocked(tmpl)
	if err != nil {
		return p11Err(op+": find public key", err)
	}
	if len(hs) != 1 {
		return errorf(op, ErrUnsupportedKey, "found %d ec public key objects with id %x, want 1: the public key is needed", len(hs), k.ID)
	}
	point, err := t.mustAttrLocked(op, hs[0], pkcs11.CKA_EC_POINT)
	if err != nil {
		return err
	}
	pub, err := parseECPoint(spec.Curve, point)
	if err != nil {
		return errorf(op, ErrUnsupportedKey, "ec public key: %w", err)
	}
	k.Public = pub
	return nil
}

func (t *Token) loadAESLocked(op string, h pkcs11.ObjectHandle, k *Key) error {
	vl, err := t.mustAttrLocked(op, h, pkcs11.CKA_VALUE_LEN)
	if err != nil {
		return err
	}
	n, _ := ulong(vl)
	k.Spec = KeySpec{Type: AES, Bits: int(n) * 8}
	if !k.Spec.Valid() {
		return errorf(op, ErrUnsupportedKey, "aes key of %d bytes", n)
	}
	kcv, status, err := t.attrLocked(h, pkcs11.CKA_CHECK_VALUE)
	if err != nil {
		return p11Err(op+": read CKA_CHECK_VALUE", err)
	}
	if status == "" && len(kcv) >= 3 {
		k.CheckValue, k.CheckValueSource = kcv[:3], CheckValueAttribute
		return nil
	}
	kcv, err = t.computeKCVLocked(h)
	if err != nil {
		// Not fatal: the key is usable, the operator just has no check value to compare.
		t.log.Warn("no key check value", "label", k.Label, "err", err)
		return nil
	}
	k.CheckValue, k.CheckValueSource = kcv, CheckValueComputed
	return nil
}

// computeKCVLocked returns the first 3 bytes of AES-ECB of a zero block under the key.
func (t *Token) computeKCVLocked(h pkcs11.ObjectHandle) ([]byte, error) {
	if err := t.p.EncryptInit(t.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil)}, h); err != nil {
		return nil, p11Err("compute key check value", err)
	}
	ct, err := t.p.Encrypt(t.sh, make([]byte, 16))
	if err != nil {
		return nil, p11Err("compute key check value", err)
	}
	if len(ct) < 3 {
		return nil, errorf("compute key check value", ErrModule, "aes-ecb returned %d bytes", len(ct))
	}
	return ct[:3], nil
}

// parseECPoint parses CKA_EC_POINT: a DER OCTET STRING holding an uncompressed point
// (PKCS#11), or the raw point (some tokens).
func parseECPoint(curveName string, b []byte) (*ecdsa.PublicKey, error) {
	var curve elliptic.Curve
	switch curveName {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("unknown curve %q", curveName)
	}
	var inner []byte
	if rest, err := asn1.Unmarshal(b, &inner); err == nil && len(rest) == 0 {
		if pub, err := ecdsa.ParseUncompressedPublicKey(curve, inner); err == nil {
			return pub, nil
		}
	}
	return ecdsa.ParseUncompressedPublicKey(curve, b)
}

// resolveLocked returns a valid handle for k, looking the key up again by class, CKA_ID and
// label if a logout (WrapTrusted) invalidated the one k holds.
func (t *Token) resolveLocked(op string, k *Key) (pkcs11.ObjectHandle, error) {
	if k == nil {
		return 0, errorf(op, ErrInvalid, "key is nil")
	}
	if k.tok != t {
		return 0, errorf(op, ErrInvalid, "key %q belongs to another token", k.Label)
	}
	g := t.gen.Load()
	if k.gen == g {
		return pkcs11.ObjectHandle(k.handle), nil
	}
	if k.session {
		return 0, errorf(op, ErrKeyNotFound, "session key %q was destroyed by a logout", k.Label)
	}
	hs, err := t.findLocked(refTemplate(KeyRef{Label: k.Label, ID: k.ID}, k.class))
	if err != nil {
		return 0, p11Err(op, err)
	}
	if len(hs) != 1 {
		return 0, errorf(op, ErrKeyNotFound, "found %d keys with label %q and id %s after login, want 1", len(hs), k.Label, hex.EncodeToString(k.ID))
	}
	k.handle, k.gen = uint(hs[0]), g
	return hs[0], nil
}
