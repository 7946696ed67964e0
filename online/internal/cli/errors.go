package cli

import (
	"errors"

	"github.com/airgap-byok/airgap-byok/online/internal/keyfile"
	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/online/internal/verify"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
)

// rules give byok-online's own domain errors (vault, verify, keyfile) their exit codes and
// hints; shared/clirun adds those of the shared packages. This is the one place where the
// online station's domain errors meet exit codes.
var rules = []exitcode.Rule{rule}

// exitCode returns err's exit code as the command line reports it.
func exitCode(err error) int { return clirun.Code(err, rules...) }

// vaultHint is the operator's next step after a Key Vault failure after which nothing was
// done (vault.NothingDone): no connection, no token, a token refused.
func vaultHint(e *vault.Error) string {
	switch e.Kind {
	case vault.ErrAuth:
		return "nothing was sent: the local Key Vault (kvemu) needs --token-file and --ca-file; " +
			"against Azure, sign in (az login, or a managed identity) as an identity with a Key Vault role"
	case vault.ErrUnauthorized:
		return "Key Vault refused the credential; nothing was done: check --token-file, or the identity signed in (az login)"
	case vault.ErrConnect:
		return "nothing was sent: check --vault and the network; a local Key Vault's TLS certificate needs its CA in --ca-file"
	}
	return ""
}

func rule(err error) (exitcode.Class, bool) {
	switch e := err.(type) {
	case *vault.Error:
		return exitcode.Class{Code: exitcode.Vault, Sentinel: true, Hint: vaultHint(e)}, true
	case *vault.TokenFileError:
		return exitcode.Class{Code: exitcode.Usage, Hint: "--token-file must name a file whose first line is the bearer token"}, true
	case *vault.CredentialError:
		return exitcode.Class{Code: exitcode.Vault, Hint: "log in with az login, or set the AZURE_* environment variables"}, true
	case *vault.CAFileError:
		return exitcode.Class{Code: exitcode.Usage}, true
	case *verify.FindingError:
		return exitcode.Class{Code: exitcode.Verify}, true
	case *keyfile.WriteError:
		return exitcode.Class{Code: exitcode.Media}, true
	}
	switch {
	case errors.Is(err, station.ErrNoAnchor):
		return exitcode.Class{Code: exitcode.Usage, Hint: "run byok-online trust first"}, true
	case errors.Is(err, verify.ErrNoPolicy):
		return exitcode.Class{Code: exitcode.Verify}, true
	case errors.Is(err, keyfile.ErrExists):
		return exitcode.Class{Code: exitcode.Refused, Hint: "a state folder holds one station for its life; use a new --state-dir for a new station"}, true
	case errors.Is(err, keyfile.ErrPermissions):
		return exitcode.Class{Code: exitcode.Refused, Hint: "the key may have been copied: if you are sure it was not, chmod 600 it"}, true
	}
	return exitcode.Class{}, false
}
