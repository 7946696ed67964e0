package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// rules give byok-offline's own domain errors (hsm, store) their exit codes and hints;
// shared/clirun adds those of the shared packages. This is the one place where the offline
// station's domain errors meet exit codes.
var rules = []exitcode.Rule{rule}

// exitCode returns err's exit code as the command line reports it.
func exitCode(err error) int { return clirun.Code(err, rules...) }

func rule(err error) (exitcode.Class, bool) {
	if c, ok := ceremonyRule(err); ok {
		return c, true
	}
	switch e := err.(type) {
	case *hsm.Error:
		return hsmClass(e.Kind), true
	case *store.KeyConflictError:
		if e.Interrupted {
			return exitcode.Class{Code: exitcode.Refused, Hint: "rerun keygen with the same --type and --wrap-with-trusted to finish it"}, true
		}
		return exitcode.Class{Code: exitcode.Refused, Hint: "choose another --ident"}, true
	}
	if errors.Is(err, store.ErrOtherOnline) {
		return exitcode.Class{Code: exitcode.Refused, Hint: "a station pairs with one online station for its life; use a new state folder for a new ceremony"}, true
	}
	for _, k := range hsmKinds {
		if err == k {
			return hsmClass(k), true
		}
	}
	return exitcode.Class{}, false
}

// hsmKinds are the hsm package's classes of failure.
var hsmKinds = []error{
	hsm.ErrTokenNotFound, hsm.ErrKeyNotFound, hsm.ErrAmbiguous, hsm.ErrExists, hsm.ErrPINIncorrect,
	hsm.ErrPINLocked, hsm.ErrMechanism, hsm.ErrNotTrusted, hsm.ErrUnsupportedKey, hsm.ErrSelfTest,
	hsm.ErrInvalid, hsm.ErrClosed, hsm.ErrNoCGO, hsm.ErrModule,
}

// hsmClass is the exit code of an hsm failure of kind k: an object that exists is a refusal,
// an invalid argument a usage error, the rest HSM failures. They compete by urgency, so that
// an interrupted operation (the cause in the chain) is 130.
func hsmClass(k error) exitcode.Class {
	switch k {
	case hsm.ErrExists:
		return exitcode.Class{Code: exitcode.Refused, Sentinel: true}
	case hsm.ErrInvalid:
		return exitcode.Class{Code: exitcode.Usage, Sentinel: true}
	}
	return exitcode.Class{Code: exitcode.HSM, Sentinel: true}
}

// ceremonyRule maps the ceremony package's errors.
func ceremonyRule(err error) (exitcode.Class, bool) {
	switch e := err.(type) {
	case *ceremony.Error:
		return ceremonyClass(e)
	case *ceremony.ReplayError:
		return replayClass(e)
	}
	switch {
	case err == ceremony.ErrUsage:
		return exitcode.Class{Code: exitcode.Usage, Sentinel: true}, true
	case errors.Is(err, ceremony.ErrNotInitialised):
		return exitcode.Class{Code: exitcode.Usage, Hint: "run byok-offline init first"}, true
	case errors.Is(err, ceremony.ErrNoPolicy):
		return exitcode.Class{Code: exitcode.Verify}, true
	}
	return exitcode.Class{}, false
}

// ceremonyKinds are the exit codes and hints of the kinds of ceremony.Error (ErrToken and
// the kinds whose hint names a value: see ceremonyClass).
var ceremonyKinds = map[error]exitcode.Class{
	ceremony.ErrUsage:              {Code: exitcode.Usage},
	ceremony.ErrNoKey:              {Code: exitcode.Usage, Hint: "generate it with byok-offline keygen, or adopt it with keygen --select-label"},
	ceremony.ErrKeyGenerating:      {Code: exitcode.Usage, Hint: "rerun the interrupted keygen"},
	ceremony.ErrKeyTypeNotAllowed:  {Code: exitcode.Refused},
	ceremony.ErrKEKRefused:         {Code: exitcode.Refused},
	ceremony.ErrKeyExists:          {Code: exitcode.Refused, Hint: "choose another --ident"},
	ceremony.ErrKeygenPending:      {Code: exitcode.Refused, Hint: "rerun that keygen, or choose another --ident"},
	ceremony.ErrResumeRegions:      {Code: exitcode.Refused, Hint: "rerun it with the same --regions"},
	ceremony.ErrNoVaultInRegion:    {Code: exitcode.Usage},
	ceremony.ErrOfferRefused:       {Code: exitcode.Verify, Hint: "ask the online operator for a new KEK offer"},
	ceremony.ErrNoSuchOffer:        {Code: exitcode.Refused},
	ceremony.ErrOfferMissing:       {Code: exitcode.Verify, Hint: "is this the right stick?"},
	ceremony.ErrNoSuchKEK:          {Code: exitcode.Refused, Hint: "list them with byok-offline status; accept offers with byok-offline kek accept"},
	ceremony.ErrNoKEK:              {Code: exitcode.Refused, Hint: "have the online station offer one (byok-online kek create), then run byok-offline kek accept"},
	ceremony.ErrKEKSize:            {Code: exitcode.Refused},
	ceremony.ErrUploaded:           {Code: exitcode.Refused, Hint: "byok-offline sync shows what landed where"},
	ceremony.ErrAwaitingUpload:     {Code: exitcode.Refused, Hint: "upload or let that package expire first"},
	ceremony.ErrOtherKey:           {Code: exitcode.Verify, Hint: "is this the right token?"},
	ceremony.ErrNotStationKey:      {Code: exitcode.Verify, Hint: "is this the right token? check --token-label"},
	ceremony.ErrByokWrite:          {Code: exitcode.Media, Hint: "check that the stick is writable and not full"},
	ceremony.ErrByokBadType:        {Code: exitcode.Bundle, Hint: "the stick's byok folder must be a plain folder of plain files: remove what is in the way (nothing outside the stick was written), then run the command again to write the copies"},
	ceremony.ErrByokCheck:          {Code: exitcode.Bundle},
	ceremony.ErrOwnPackage:         {Code: exitcode.Bundle, Hint: "is this the right stick?"},
	ceremony.ErrMalformed:          {Code: exitcode.Bundle},
	ceremony.ErrResidency:          {Code: exitcode.Refused, Hint: "its residency was set when it was generated or first packaged (--regions) and does not change"},
	ceremony.ErrBound:              {Code: exitcode.Refused},
	ceremony.ErrAppliedAlready:     {Code: exitcode.Refused, Hint: "byok-offline status shows the policy in force"},
	ceremony.ErrOtherObject:        {Code: exitcode.Refused, Hint: "remove that object from the token, or adopt it under another --ident with --select-label"},
	ceremony.ErrLabelTaken:         {Code: exitcode.Refused, Hint: "another object in the token carries this label: choose another --ident"},
	ceremony.ErrNoSuchObject:       {Code: exitcode.HSM, Hint: "list the token's keys with pkcs11-tool --list-objects"},
	ceremony.ErrRecordedAlready:    {Code: exitcode.Refused},
	ceremony.ErrNotExtractable:     {Code: exitcode.Refused},
	ceremony.ErrKeyGone:            {Code: exitcode.HSM, Hint: "is this the right token?"},
	ceremony.ErrApprovalUnverified: {Code: exitcode.HSM},
	ceremony.ErrNotCustodianKey:    {Code: exitcode.Verify, Hint: "is this the custodian's token?"},
	ceremony.ErrInitDone:           {Code: exitcode.Refused, Hint: "init runs once per state folder; use a new --state-dir for a new ceremony"},
	ceremony.ErrInitPolicyDiffers:  {Code: exitcode.Refused, Hint: "rerun init with exactly the flags of the interrupted run"},
	ceremony.ErrNoOnlineEnrollment: {Code: exitcode.Bundle, Hint: "run byok-online init with this medium first, then bring it here"},
	ceremony.ErrOnlineEnrollments:  {Code: exitcode.Verify, Hint: "the medium must hold exactly one online station's enrollment"},
	ceremony.ErrOnlineChanged:      {Code: exitcode.Verify, Hint: "is this the right stick?"},
	ceremony.ErrWrongFingerprint:   {Code: exitcode.Verify, Hint: "do not continue: the medium or the fingerprint read aloud is not the online station's"},
	ceremony.ErrOnlineUnverified:   {Code: exitcode.Verify},
	ceremony.ErrNotAwaitingUpload:  {Code: exitcode.Refused, Hint: "byok-offline sync shows the receipt"},
	ceremony.ErrPackageExpired:     {Code: exitcode.Verify, Hint: "package the key again"},
	ceremony.ErrApprovedAlready:    {Code: exitcode.Refused},
	ceremony.ErrNothingToApprove:   {Code: exitcode.Refused, Hint: "byok-offline status lists the packages"},
	ceremony.ErrNotPolicyKey:       {Code: exitcode.Verify},
	ceremony.ErrNoProposal:         {Code: exitcode.Refused, Hint: "byok-offline policy amend proposes one"},
	ceremony.ErrProposalExpired:    {Code: exitcode.Verify, Hint: "propose it again with byok-offline policy amend"},
	ceremony.ErrKeyMismatch:        {Code: exitcode.Verify, Hint: "do not use those keys; investigate with the online operator"},
	ceremony.ErrPolicyFindings:     {Code: exitcode.Verify, Hint: "a key reached Key Vault against the policy: investigate with the online operator"},
}

func ceremonyClass(e *ceremony.Error) (exitcode.Class, bool) {
	switch e.Kind {
	case ceremony.ErrToken:
		// The HSM's own code; a hint where the next step is obvious.
		if h := hsmHint(e.Err); h != "" {
			return exitcode.Class{Code: exitcode.HSM, Hint: h}, true
		}
		return exitcode.Class{}, false
	case ceremony.ErrVaultNotAllowed:
		return exitcode.Class{Code: exitcode.Refused, Hint: "the policy allows " + strings.Join(e.Vaults, ", ")}, true
	case ceremony.ErrKEKExpired:
		return exitcode.Class{Code: exitcode.Verify, Hint: newKEKHint(e.Vault, e.KID)}, true
	case ceremony.ErrKEKStrength:
		return exitcode.Class{Code: exitcode.Refused, Hint: weakerKEKHint(e.KeyType)}, true
	case ceremony.ErrLabelHeld:
		return exitcode.Class{Code: exitcode.Refused, Hint: fmt.Sprintf("adopt it with --select-label %s, or choose another --ident", e.Label)}, true
	case ceremony.ErrSignerHeld:
		return exitcode.Class{Code: exitcode.Refused, Hint: fmt.Sprintf("pass %s to use it as the %s, or remove it", e.Flag, e.What)}, true
	case ceremony.ErrNoSuchBundle:
		hint := "there is none"
		if len(e.Have) > 0 {
			hint = "there are: " + strings.Join(e.Have, ", ")
		}
		return exitcode.Class{Code: exitcode.Bundle, Hint: hint}, true
	case ceremony.ErrNotEligible:
		return exitcode.Class{Code: exitcode.Refused, Hint: notEligibleHint(e)}, true
	case ceremony.ErrSignerLabelTaken:
		return exitcode.Class{Code: exitcode.Refused, Hint: fmt.Sprintf("another object in token %q carries label %q: choose another label", e.Token, e.Label)}, true
	}
	c, ok := ceremonyKinds[e.Kind]
	return c, ok
}

// notEligibleHint says whose approvals count, when a custodian named is not one of them.
func notEligibleHint(e *ceremony.Error) string {
	names := strings.Join(e.Custodians, ", ")
	switch {
	case e.Region != "":
		return "the approvals that count are those of " + names
	case e.Proposed != nil:
		return "the custodians are " + names + " now and " + strings.Join(e.Proposed, ", ") + " in the proposal"
	}
	return "the custodians are " + names
}

// replayClass adds the operator's next step to a replay failure that has an obvious one and
// none of its own; the code is the failure's.
func replayClass(e *ceremony.ReplayError) (exitcode.Class, bool) {
	code, hint := clirun.Classify(e.Err, rule)
	if hint != "" {
		return exitcode.Class{}, false
	}
	switch {
	case errors.Is(e.Err, chain.ErrRollback):
		hint = "is this the right stick? it must hold everything both stations wrote"
	case errors.Is(e.Err, chain.ErrUntrusted):
		hint = "this medium belongs to another ceremony"
	case errors.Is(e.Err, chain.ErrFork), errors.Is(e.Err, station.ErrForeignBundles):
		hint = "another station wrote to this medium's chains: do not use it, investigate"
	default:
		return exitcode.Class{}, false
	}
	return exitcode.Class{Code: code, Hint: hint}, true
}

// hsmHint is the operator's next step after an HSM failure that has an obvious one.
func hsmHint(err error) string {
	switch {
	case errors.Is(err, hsm.ErrPINIncorrect):
		return "check the PIN: the token locks the PIN after a few wrong tries"
	case errors.Is(err, hsm.ErrPINLocked):
		return "the security officer must unlock the PIN"
	case errors.Is(err, hsm.ErrTokenNotFound):
		return "check --token-label and that the HSM is attached (byok-offline hsm check)"
	case errors.Is(err, hsm.ErrNotTrusted):
		return "the key is marked CKA_WRAP_WITH_TRUSTED: the security officer must be present, give the SO PIN with --so-pin-file or $" + envSOPIN
	}
	return ""
}

// weakerKEKHint is the way out for a key type stronger than a KEK: a larger KEK where one
// is strong enough, else a policy that allows weaker KEKs.
func weakerKEKHint(kt payload.KeyType) string {
	amend := "byok-offline policy amend --allow-weaker-kek (the custodians approve it with byok-offline policy approve)"
	if payload.RSAStrength(ceremony.MaxKEKBits) < kt.Strength() {
		return fmt.Sprintf("no KEK is as strong as an %s key (Azure's largest, RSA-%d, has %d-bit strength): the policy must allow weaker KEKs: %s",
			kt, ceremony.MaxKEKBits, payload.RSAStrength(ceremony.MaxKEKBits), amend)
	}
	return fmt.Sprintf("have the online station offer a larger KEK (byok-online kek create --size %d), or allow weaker KEKs: %s", ceremony.MaxKEKBits, amend)
}

// newKEKHint is the way out for an expired KEK or offer: the online station offers a new one.
func newKEKHint(vault, kid string) string {
	name := "NAME"
	if id, err := byok.ParseKeyID(kid); err == nil {
		name = id.Name
	}
	return fmt.Sprintf("the online station offers a new one (byok-online kek create --vault %s --name %s), then run byok-offline kek accept", vault, name)
}
