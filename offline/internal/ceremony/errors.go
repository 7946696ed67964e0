package ceremony

import (
	"errors"
	"fmt"

	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Error is a step of the ceremony that failed or was refused: Kind says which (one of the
// Err* kinds below) and Err says what happened, for the operator. The command line maps the
// kinds to exit codes and to the operator's next step.
type Error struct {
	Kind error
	Err  error

	// Vaults are the vaults the policy allows (ErrVaultNotAllowed).
	Vaults []string
	// Vault and KID name the KEK concerned (ErrKEKExpired); KeyType is the key too strong for
	// it (ErrKEKStrength).
	Vault, KID string
	KeyType    payload.KeyType
	// Token and Label name the token and the object label concerned (ErrLabelHeld,
	// ErrSignerLabelTaken); Flag is the option that allows reusing a key and What the key's
	// role (ErrSignerHeld).
	Token, Label, Flag, What string
	// Region is the region concerned (ErrNoVaultInRegion; ErrNotEligible: the vault's, if
	// it has custodians of its own).
	Region string
	// Have lists, for people, what there is instead of what was asked for (ErrNoSuchBundle,
	// ErrNoVaultInRegion).
	Have []string
	// Custodians are those whose approvals count, and Proposed the custodians of a proposed
	// policy version (ErrNotEligible).
	Custodians, Proposed []string
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the kind and the cause, so errors.Is and errors.As see both.
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, args...)}
}

func errorOf(kind, err error) error { return &Error{Kind: kind, Err: err} }

// Kinds of Error.
var (
	// ErrUsage: the request cannot be carried out as given (e.g. key operations its type
	// does not allow).
	ErrUsage = errors.New("usage")
	// ErrNoKey: the ledger has no key of that ident.
	ErrNoKey = errors.New("no such key")
	// ErrKeyGenerating: the key's keygen was interrupted.
	ErrKeyGenerating = errors.New("key still being generated")
	// ErrVaultNotAllowed: the policy does not allow the vault.
	ErrVaultNotAllowed = errors.New("vault not allowed")
	// ErrKeyTypeNotAllowed: the policy does not allow the key type, or the vault cannot
	// take it.
	ErrKeyTypeNotAllowed = errors.New("key type not allowed")
	// ErrKEKRefused: the KEK asked for was refused at kek accept, or belongs to another vault.
	ErrKEKRefused = errors.New("KEK refused")
	// ErrOfferRefused: kek accept refused a KEK offer, now or before.
	ErrOfferRefused = errors.New("KEK offer refused")
	// ErrNoSuchOffer: no KEK offer on the medium has the kid asked for.
	ErrNoSuchOffer = errors.New("no such KEK offer")
	// ErrOfferMissing: the KEK's offer is not on the medium.
	ErrOfferMissing = errors.New("KEK offer missing")
	// ErrNoSuchKEK: no accepted KEK matches what was asked for.
	ErrNoSuchKEK = errors.New("no such KEK")
	// ErrNoKEK: no KEK for the vault was accepted.
	ErrNoKEK = errors.New("no KEK")
	// ErrKEKExpired: the KEK or its offer has expired (a verification failure).
	ErrKEKExpired = errors.New("KEK expired")
	// ErrKEKSize: the KEK is smaller than the policy requires.
	ErrKEKSize = errors.New("KEK too small")
	// ErrKEKStrength: the KEK is weaker than the target key and the policy does not allow it.
	ErrKEKStrength = errors.New("KEK too weak")
	// ErrUploaded: the key was uploaded to the vault already.
	ErrUploaded = errors.New("uploaded already")
	// ErrAwaitingUpload: another package of the key awaits upload to the vault.
	ErrAwaitingUpload = errors.New("awaiting upload")
	// ErrOtherKey: the HSM's key is not the one the ledger recorded.
	ErrOtherKey = errors.New("not the recorded key")
	// ErrNotStationKey: the token's signing key is not the station key the ledger enrolled.
	ErrNotStationKey = errors.New("not the station key")
	// ErrToken: the HSM failed or refused (Err is the hsm package's error).
	ErrToken = errors.New("hsm")
	// ErrByokWrite: the plain .byok copies cannot be written.
	ErrByokWrite = errors.New("write .byok copies")
	// ErrByokBadType: the medium's byok folder, or a copy's name, is not a plain folder or
	// file.
	ErrByokBadType = errors.New("byok folder not plain")
	// ErrByokCheck: the plain .byok copies cannot be checked.
	ErrByokCheck = errors.New("check .byok copies")
	// ErrOwnPackage: a key package this station wrote cannot be read from the medium.
	ErrOwnPackage = errors.New("own package unreadable")
	// ErrMalformed: a bundle or payload on the medium cannot be parsed.
	ErrMalformed = errors.New("malformed")
	// ErrResidency: the key is bound to regions (keygen --regions) and the vault is in none
	// of them.
	ErrResidency = errors.New("outside the key's regions")
	// ErrBound: the key's residency cannot be bound as asked (bound to other regions, or
	// packaged before without any).
	ErrBound = errors.New("residency fixed")
	// ErrAppliedAlready: the policy version a change makes is in force already.
	ErrAppliedAlready = errors.New("applied already")
	// ErrOtherObject: the token's object under an interrupted keygen's label is not the key
	// that keygen was generating.
	ErrOtherObject = errors.New("other object")
	// ErrLabelHeld: the token holds a key with the label a new key would take.
	ErrLabelHeld = errors.New("label held")
	// ErrLabelTaken: another object of the token carries the new key's label.
	ErrLabelTaken = errors.New("label taken")
	// ErrNoSuchObject: the token holds no key the adoption names.
	ErrNoSuchObject = errors.New("no such object")
	// ErrRecordedAlready: the key to adopt is recorded already under another ident.
	ErrRecordedAlready = errors.New("recorded already")
	// ErrNotExtractable: the key to adopt cannot be wrapped.
	ErrNotExtractable = errors.New("not extractable")
	// ErrSignerHeld: the token holds a signing key with the label, and reuse was not asked.
	ErrSignerHeld = errors.New("signer label held")
	// ErrKeyGone: the signing key the ledger recorded is gone from the token.
	ErrKeyGone = errors.New("key gone")
	// ErrSignerLabelTaken: another object of the token carries the signing key's label.
	ErrSignerLabelTaken = errors.New("signer label taken")
	// ErrApprovalUnverified: a custodian's token signed an approval that does not verify
	// with the custodian's enrolled key.
	ErrApprovalUnverified = errors.New("approval does not verify")
	// ErrKeyExists: the ledger holds a key of that ident already.
	ErrKeyExists = errors.New("key exists")
	// ErrKeygenPending: an interrupted keygen of that ident is pending, and the request would
	// adopt another key under it.
	ErrKeygenPending = errors.New("keygen pending")
	// ErrResumeRegions: the interrupted keygen being finished binds the key to other regions.
	ErrResumeRegions = errors.New("other regions")
	// ErrNoVaultInRegion: no vault of the policy in force is in the region named (Region).
	ErrNoVaultInRegion = errors.New("no vault in region")
	// ErrNoSuchBundle: no bundle of the medium, among those the step can take, is the one
	// named (Have lists those there are).
	ErrNoSuchBundle = errors.New("no such bundle")
	// ErrNotCustodianKey: the custodian's token holds another key than the one enrolled for
	// them (Token names it).
	ErrNotCustodianKey = errors.New("not the custodian's key")
	// ErrInitDone: init finished on this ledger already.
	ErrInitDone = errors.New("initialised already")
	// ErrInitPolicyDiffers: an interrupted init wrote a policy other than the one asked for.
	ErrInitPolicyDiffers = errors.New("interrupted init's policy differs")
	// ErrNoOnlineEnrollment: the medium holds no online station enrollment (the online
	// station has not written it yet).
	ErrNoOnlineEnrollment = errors.New("no online enrollment")
	// ErrOnlineEnrollments: the medium holds two online enrollments (Err is a
	// *chain.ForkError).
	ErrOnlineEnrollments = errors.New("two online enrollments")
	// ErrOnlineChanged: the medium's online enrollment is not the one this station confirmed.
	ErrOnlineChanged = errors.New("online enrollment changed")
	// ErrWrongFingerprint: the fingerprint the operator confirmed is not that of the key
	// that signed the online enrollment.
	ErrWrongFingerprint = errors.New("fingerprint mismatch")
	// ErrOnlineUnverified: the online enrollment does not verify (its file name, its key or
	// its signature).
	ErrOnlineUnverified = errors.New("online enrollment does not verify")
	// ErrNotAwaitingUpload: the key package to approve was uploaded already.
	ErrNotAwaitingUpload = errors.New("not awaiting upload")
	// ErrPackageExpired: the key package to approve has expired (a verification failure).
	ErrPackageExpired = errors.New("package expired")
	// ErrNotEligible: a custodian named to approve is not one whose approval counts
	// (Custodians, Region and Proposed say whose do).
	ErrNotEligible = errors.New("not an eligible custodian")
	// ErrApprovedAlready: the custodians named, or all of them, approved already.
	ErrApprovedAlready = errors.New("approved already")
	// ErrNothingToApprove: no key package awaits upload for a vault of the region.
	ErrNothingToApprove = errors.New("nothing to approve")
	// ErrNotPolicyKey: the ledger's key for a custodian is not the one the policy names.
	ErrNotPolicyKey = errors.New("not the policy's key")
	// ErrNoProposal: no policy version awaits approval.
	ErrNoProposal = errors.New("no proposal")
	// ErrProposalExpired: the policy version awaiting approval has expired (a verification
	// failure).
	ErrProposalExpired = errors.New("proposal expired")
	// ErrKeyMismatch: Key Vault holds keys that are not the ones this station packaged
	// (wraps chain.ErrKeyMismatch).
	ErrKeyMismatch = errors.New("key mismatch")
	// ErrPolicyFindings: uploads broke the policy.
	ErrPolicyFindings = errors.New("uploads against the policy")
)

// hsmErr marks an error of the HSM as such; the command line adds the operator's next step
// for the failures that have an obvious one.
func hsmErr(err error) error {
	if err == nil {
		return nil
	}
	return errorOf(ErrToken, err)
}
