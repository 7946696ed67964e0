//go:build cgo

package hsm

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"

	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/miekg/pkcs11"
)

// minKEKBits is the smallest KEK Wrap accepts; Azure's KEKs are 2048, 3072 or 4096 bits.
const minKEKBits = 2048

// testOnlyBeforeDestroy, when set, runs inside Wrap after wrapping and before the ephemeral
// AES key and the KEK object are destroyed (with the session lock held).
var testOnlyBeforeDestroy func()

// Wrap wraps the target key k for the vault's key-exchange key kek, by the token's wrap path
// (see ChooseWrapMethod), and returns the ciphertext Azure's .byok file holds with the
// provenance of the wrap.
//
// The KEK public key is imported as a session object (C_CreateObject: CKA_WRAP true, no
// CKA_MODULUS_BITS); on the two-step path a session AES-256 key is generated. Both objects
// are destroyed before Wrap returns, also on error; Wrapped.EphemeralDestroyed and
// KEKDestroyed are true only if C_DestroyObject succeeded. A failed destroy after a good
// wrap is logged and shows in those flags, not as an error: the ciphertext is sound, and
// session objects die with the session at Close at the latest.
//
// Errors wrap ErrInvalid (nil key, KEK under 2048 bits), ErrMechanism (no wrap path, or a
// listed mechanism refused), ErrNotTrusted (k is CKA_WRAP_WITH_TRUSTED: use WrapTrusted),
// ErrUnsupportedKey (the token will not wrap k), ErrKeyNotFound or the token's failure.
func (t *Token) Wrap(ctx context.Context, k *Key, kek *rsa.PublicKey) (*Wrapped, error) {
	return t.wrap(ctx, k, kek, nil)
}

// WrapTrusted wraps a key marked CKA_WRAP_WITH_TRUSTED, with the security officer's PIN.
//
// SoftHSM (and PKCS#11) allow only the SO to set CKA_TRUSTED, and a CKA_WRAP_WITH_TRUSTED key
// is only wrapped by a CKA_TRUSTED key. On the two-step path the wrapping key is the
// ephemeral AES key, which must therefore be made by the SO for every wrap; a persistent
// trusted AES key would be reused across KEKs, so that every vault that ever received it
// could unwrap every other package. WrapTrusted therefore:
//
//  1. logs the user out of the token (C_Logout: all sessions of this process, crypto11's
//     included) and logs in the SO with soPIN;
//  2. generates the ephemeral AES-256 key as a public session object with CKA_TRUSTED (on
//     the one-shot path it imports the KEK with CKA_TRUSTED instead);
//  3. logs the SO out and the user back in with the Token's PIN, whatever happened before;
//  4. wraps exactly as Wrap does, and destroys the ephemeral key and the KEK object.
//
// The logout invalidates every handle to private objects: Keys and SigningKeys of this Token
// look their objects up again on next use, but signing on another goroutine during
// WrapTrusted fails. Do not run it concurrently with other work on the same token.
//
// Errors are those of Wrap, plus ErrPINIncorrect or ErrPINLocked for the SO PIN and
// ErrInvalid for an empty one.
func (t *Token) WrapTrusted(ctx context.Context, k *Key, kek *rsa.PublicKey, soPIN secret.Value) (*Wrapped, error) {
	if soPIN.Empty() {
		return nil, errorf("wrap key with trusted", ErrInvalid, "security officer pin is required")
	}
	return t.wrap(ctx, k, kek, &soPIN)
}

func (t *Token) wrap(ctx context.Context, k *Key, kek *rsa.PublicKey, soPIN *secret.Value) (*Wrapped, error) {
	if k == nil {
		return nil, errorf("wrap key", ErrInvalid, "key is nil")
	}
	op := fmt.Sprintf("wrap key %q", k.Label)
	if kek == nil || kek.N == nil || kek.N.BitLen() < minKEKBits {
		return nil, errorf(op, ErrInvalid, "the kek must be an rsa key of at least %d bits", minKEKBits)
	}
	if err := t.lock(ctx, op); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	w, err := t.wrapLocked(ctx, op, k, kek, soPIN)
	if err != nil {
		return nil, err
	}
	t.log.Info("wrapped key", "key", k, "wrapped", w)
	return w, nil
}

// wrapLocked is Wrap and WrapTrusted with the session lock held; Check's self-test calls it
// too, so that production and self-test share one code path.
func (t *Token) wrapLocked(ctx context.Context, op string, k *Key, kek *rsa.PublicKey, soPIN *secret.Value) (*Wrapped, error) {
	method, err := t.methodLocked(op)
	if err != nil {
		return nil, err
	}
	info := t.info
	if info == nil {
		if _, err := t.infoLocked(op); err != nil {
			return nil, err
		}
		info = t.info
	}
	// The deferred cleanup records the destruction in w, which is returned only on success.
	w := &Wrapped{
		RSAPartLen:          kek.Size(),
		Method:              method,
		Trusted:             soPIN != nil,
		ZeroPaddingExpected: k.Spec.Type != AES && padsToEight(*info),
	}

	var kekObj, aesObj pkcs11.ObjectHandle
	defer func() {
		if testOnlyBeforeDestroy != nil {
			testOnlyBeforeDestroy()
		}
		if aesObj != 0 {
			if derr := t.p.DestroyObject(t.sh, aesObj); derr != nil {
				t.log.Warn("destroy ephemeral aes key failed", "err", p11Err(op, derr))
			} else {
				w.EphemeralDestroyed = true
			}
		}
		if kekObj != 0 {
			if derr := t.p.DestroyObject(t.sh, kekObj); derr != nil {
				t.log.Warn("destroy kek object failed", "err", p11Err(op, derr))
			} else {
				w.KEKDestroyed = true
			}
		}
	}()

	if soPIN != nil {
		err = t.asSOLocked(op, *soPIN, func() error {
			var err error
			if method.Path == PathOneShot {
				kekObj, err = t.p.CreateObject(t.sh, kekTemplate(kek, true))
				return p11Err(op+": import trusted kek", err)
			}
			aesObj, err = t.p.GenerateKey(t.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, ephemeralTemplate(true))
			if err == nil {
				w.EphemeralCreated = true
			}
			return p11Err(op+": generate trusted ephemeral aes key", err)
		})
		if err != nil {
			return nil, err
		}
	}
	if err := canceled(ctx, op); err != nil {
		return nil, err
	}
	target, err := t.resolveLocked(op, k)
	if err != nil {
		return nil, err
	}
	if kekObj == 0 {
		if kekObj, err = t.p.CreateObject(t.sh, kekTemplate(kek, false)); err != nil {
			return nil, p11Err(op+": import kek", err)
		}
	}

	// A plain Wrap of a CKA_WRAP_WITH_TRUSTED key is refused by the token: say so precisely.
	untrusted := soPIN == nil && k.WrapWithTrusted
	switch method.Path {
	case PathOneShot:
		mech := pkcs11.NewMechanism(pkcs11.CKM_RSA_AES_KEY_WRAP, &pkcs11.RSAAESKeyWrapParams{
			AESKeyBits: ephemeralAESBytes * 8,
			OAEPParams: *oaepSHA1(),
		})
		ct, err := t.p.WrapKey(t.sh, []*pkcs11.Mechanism{mech}, kekObj, target)
		if err != nil {
			return nil, wrapKeyErr(op+": "+MechanismName(pkcs11.CKM_RSA_AES_KEY_WRAP), err, untrusted)
		}
		if len(ct) < kek.Size()+16 {
			return nil, errorf(op, ErrModule, "%s returned %d bytes, want at least %d", MechanismName(pkcs11.CKM_RSA_AES_KEY_WRAP), len(ct), kek.Size()+16)
		}
		w.Ciphertext = ct
	case PathTwoStep:
		if aesObj == 0 {
			aesObj, err = t.p.GenerateKey(t.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, ephemeralTemplate(false))
			if err != nil {
				return nil, p11Err(op+": generate ephemeral aes key", err)
			}
			w.EphemeralCreated = true
		}
		kwp, err := t.p.WrapKey(t.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(method.KeyWrapMechanism, nil)}, aesObj, target)
		if err != nil {
			return nil, wrapKeyErr(op+": "+MechanismName(method.KeyWrapMechanism), err, untrusted)
		}
		rsaPart, err := t.p.WrapKey(t.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, oaepSHA1())}, kekObj, aesObj)
		if err != nil {
			return nil, p11Err(op+": "+MechanismName(pkcs11.CKM_RSA_PKCS_OAEP), err)
		}
		if len(rsaPart) != kek.Size() {
			return nil, errorf(op, ErrModule, "rsa-oaep part is %d bytes, want the kek modulus length %d", len(rsaPart), kek.Size())
		}
		ct := make([]byte, 0, len(rsaPart)+len(kwp))
		ct = append(ct, rsaPart...)
		w.Ciphertext = append(ct, kwp...)
	default:
		return nil, errorf(op, ErrMechanism, "unknown wrap path %q", method.Path)
	}
	return w, nil
}

// oaepSHA1 are the OAEP parameters Azure's BYOK specification fixes: SHA-1, MGF1-SHA-1,
// empty label.
func oaepSHA1() *pkcs11.OAEPParams {
	return pkcs11.NewOAEPParams(pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, pkcs11.CKZ_DATA_SPECIFIED, nil)
}

// kekTemplate is the session object for the vault's KEK public key. It must not carry
// CKA_MODULUS_BITS: SoftHSM refuses C_CreateObject with it (the bits follow from the modulus).
func kekTemplate(kek *rsa.PublicKey, trusted bool) []*pkcs11.Attribute {
	attrs := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "byok-kek (session)"),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, kek.N.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(kek.E)).Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
	}
	if trusted {
		attrs = append(attrs, pkcs11.NewAttribute(pkcs11.CKA_TRUSTED, true))
	}
	return attrs
}

// ephemeralTemplate is the session AES-256 key of the two-step path: sensitive, and
// extractable only so that RSA-OAEP can wrap it. The trusted variant is made in an SO
// session, where only public objects can be created.
func ephemeralTemplate(trusted bool) []*pkcs11.Attribute {
	attrs := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, ephemeralAESBytes),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, !trusted),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "byok-ephemeral (session)"),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
	}
	if trusted {
		attrs = append(attrs, pkcs11.NewAttribute(pkcs11.CKA_TRUSTED, true))
	}
	return attrs
}

// asSOLocked runs f with the security officer logged in on the token, then logs the user
// back in. PKCS#11 allows one user type per token and process, so the user is logged out
// first: that invalidates every private-object handle, and the login generation moves on.
func (t *Token) asSOLocked(op string, soPIN secret.Value, f func() error) (err error) {
	if lerr := t.p.Logout(t.sh); lerr != nil && !isCode(lerr, pkcs11.CKR_USER_NOT_LOGGED_IN) {
		return p11Err(op+": log out user", lerr)
	}
	t.gen.Add(1)
	defer func() {
		if lerr := t.p.Login(t.sh, pkcs11.CKU_USER, t.pin.Reveal()); lerr != nil && !isCode(lerr, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
			err = errors.Join(err, p11Err(op+": log the user back in", lerr))
		}
	}()
	if lerr := t.p.Login(t.sh, pkcs11.CKU_SO, soPIN.Reveal()); lerr != nil {
		return p11Err(op+": log in as security officer", lerr)
	}
	t.log.Info("security officer logged in", "token", t.label)
	defer func() {
		if lerr := t.p.Logout(t.sh); lerr != nil {
			err = errors.Join(err, p11Err(op+": log out security officer", lerr))
		}
	}()
	return f()
}
