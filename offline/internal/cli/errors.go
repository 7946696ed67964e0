package cli

import (
	"errors"

	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
)

// rules give byok-offline's own domain errors (hsm, store) their exit codes and hints;
// shared/clirun adds those of the shared packages. This is the one place where the offline
// station's domain errors meet exit codes.
var rules = []exitcode.Rule{rule}

// exitCode returns err's exit code as the command line reports it.
func exitCode(err error) int { return clirun.Code(err, rules...) }

func rule(err error) (exitcode.Class, bool) {
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
