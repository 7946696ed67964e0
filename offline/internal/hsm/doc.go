// Package hsm is byok-offline's PKCS#11 layer: it opens a token, reports what the token can
// do, generates and finds the keys the ceremony needs, and wraps target keys for Azure Key
// Vault's key-exchange key (KEK) without the key ever leaving the token in clear.
//
// The API is narrow on purpose: [Open] a [Token]; [Token.Check] it; generate or find a
// target [Key] ([Token.GenerateTarget], [Token.FindTarget]); [Token.Wrap] it for a KEK; and
// generate or find station and custodian [SigningKey]s ([Token.GenerateSigner],
// [Token.FindSigner]). Everything is tested against SoftHSM2 2.6.1.
//
// # Two handles on one module
//
// crypto11 generates, finds and signs with signing keys; a second miekg/pkcs11 handle on the
// same module does what crypto11 cannot: C_WrapKey, C_CreateObject, C_GetAttributeValue,
// C_Encrypt, mechanism and token information. Both share the process's login state. The
// second handle is never finalized (crypto11 finalizes the module on its last Close), its
// session is guarded by a mutex, and it is closed before crypto11's context. Several tokens
// of one module can be open at once, each logged in with its own PIN; the same token cannot
// be opened twice in one process.
//
// # Wrapping
//
// The ciphertext is Azure's BYOK format: RSA-OAEP(KEK, K) || RFC 5649(K, target), with K a
// fresh AES-256 key, OAEP with SHA-1 and MGF1-SHA-1, the RSA part first and exactly the KEK
// modulus long. The target is PKCS#8 for RSA and EC keys and raw bytes for AES keys. Where
// the token lists CKM_RSA_AES_KEY_WRAP (0x1054) with CKF_WRAP, one C_WrapKey does all of it;
// otherwise (SoftHSM) the package runs the equivalent two steps, destroying K afterwards. See
// [ChooseWrapMethod].
//
// # Trailing zero padding (SoftHSM 2.6)
//
// SoftHSM before 2.7 zero-pads a private key to a multiple of 8 bytes before RFC 5649, so the
// key Azure unwraps is the PKCS#8 followed by 1 to 7 zero bytes. OpenSSL and Go parse it;
// Azure's acceptance is not verified. [Wrapped.ZeroPaddingExpected] and
// [CheckReport.ZeroPadding] say so; the CLI should tell the operator.
//
// # Keys marked CKA_WRAP_WITH_TRUSTED
//
// A target generated with [TargetOptions].WrapWithTrusted can only be wrapped by a key marked
// CKA_TRUSTED, and only the security officer (SO) can set CKA_TRUSTED. A plain [Token.Wrap]
// of such a key fails with [ErrNotTrusted]: the token enforces it. [Token.WrapTrusted] is the
// sequence that works on SoftHSM 2.6.1: it logs the user out, logs the SO in, has the SO make
// the wrapping key trusted (the fresh ephemeral AES key on the two-step path, the imported
// KEK on the one-shot path), logs the user back in and wraps. A persistent trusted AES key
// set up once by the SO would not do: it would be sent to every vault under their KEKs, and
// any one of them could unwrap the packages made for the others.
//
// What the operator must do:
//
//   - At key generation, decide that the key may leave the token only with the SO's consent,
//     and generate it with WrapWithTrusted (this cannot be undone).
//   - At each export of that key, have the SO present and enter the SO PIN: WrapTrusted takes
//     it as a [github.com/airgap-byok/airgap-byok/shared/secret.Value] (from a file, the environment or a prompt, never a flag).
//   - Run nothing else on the same token meanwhile: the user is logged out for a moment, and
//     every private-object handle is invalidated (this package looks its keys up again).
//
// # Errors
//
// Every error is an [*Error] whose Kind is one of the sentinels in errors.go ([ErrExists],
// [ErrInvalid], [ErrPINIncorrect], ...), which classify failures; the command line maps them to
// exit codes; PKCS#11 return values are translated in one
// adapter. PINs never appear in errors or logs.
//
// # Build
//
// The implementation needs cgo (miekg/pkcs11 dlopens the module). Without cgo the package
// builds, and every operation fails with [ErrNoCGO].
package hsm
