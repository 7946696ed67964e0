package upload

// Key Vault's answers are checked, not trusted (DESIGN.md §9): every byte it returns may be
// hostile. Check compares an answer with the request before a receipt vouches for it, and
// everything of the answer that reaches the operator, the log or the ledger goes through
// Printable first.

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
)

// OutcomeVaultMismatch: Key Vault answered the import with a key that does not match the
// request; no receipt is signed, and the ledger records the answer (store.StateVaultMismatch).
const OutcomeVaultMismatch = "vault_mismatch"

// ErrVaultMismatch is matched by every *MismatchError.
var ErrVaultMismatch = errors.New("key vault's answer does not match the request")

// MismatchError is an answer of Key Vault that does not match the import it answers.
type MismatchError struct {
	KeyName  string
	KID      string   // the identifier Key Vault returned, through Printable
	Problems []string // what differs from the request
	Holds    string   // what the answer says Key Vault holds
}

// Detail is what differs and what Key Vault holds, in one line (the ledger's record).
func (e *MismatchError) Detail() string {
	return strings.Join(e.Problems, "; ") + "; key vault holds " + e.Holds
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("key vault's answer to the import of %s does not match the request: %s", e.KeyName, e.Detail())
}

// Is matches ErrVaultMismatch.
func (e *MismatchError) Is(target error) bool { return target == ErrVaultMismatch }

func newMismatch(j *Job, k *vault.Key, problems []string) *MismatchError {
	return &MismatchError{KeyName: j.KeyName, KID: Printable(k.KID), Problems: problems, Holds: Describe(k)}
}

// mismatch records an answer that does not match the request as final in the ledger and
// returns the job's result: nothing is receipted.
func (e *Engine) mismatch(j *Job, mm *MismatchError, r Result) Result {
	e.Log.Error("key vault's answer does not match the request; no receipt is signed", "package", j.Package.Short(), "key", j.KeyName,
		"differences", strings.Join(mm.Problems, "; "), "holds", mm.Holds)
	if err := e.Ledger.MarkMismatch(j.Package, mm.KID, mm.Detail(), e.Now()); err != nil {
		r.Outcome, r.Err = OutcomeFailed, fmt.Errorf("record key vault's answer in the ledger: %w", err)
		return r
	}
	r.Outcome, r.KID, r.Detail, r.Err = OutcomeVaultMismatch, mm.KID, mm.Detail(), mm
	return r
}

// maxKID bounds the key identifiers accepted from Key Vault: a vault URL (at most 253 bytes
// of host and a port), /keys/, a name of at most 127 bytes and a version (32 hex digits).
const maxKID = 512

// checkKID returns what is wrong with kid as the identifier of a version of the job's key,
// or "".
func checkKID(j *Job, kid string) string {
	if len(kid) > maxKID {
		return fmt.Sprintf("kid of %d bytes, longer than any key identifier", len(kid))
	}
	id, err := byok.ParseKeyID(kid)
	switch {
	case err != nil:
		return fmt.Sprintf("kid %s that is no key identifier (%v)", Printable(kid), err)
	case id.Vault != j.Vault:
		return fmt.Sprintf("kid in vault %s, not %s", id.Vault, j.Vault)
	case !strings.EqualFold(id.Name, j.KeyName):
		return fmt.Sprintf("kid naming key %s, not %s", id.Name, j.KeyName)
	}
	return ""
}

// Check compares Key Vault's answer to an import (or the version reconciliation found) with
// the request, and returns every difference: the kid's vault and key name, the key type, RSA
// size or EC curve, key_ops, enabled, nbf, exp, the tags (the package's and TagPackage, no
// more and no fewer), a positive creation time, and a public key that parses. The public key
// itself is Compare's.
func Check(j *Job, k *vault.Key) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	t := j.Target
	if p := checkKID(j, k.KID); p != "" {
		add("a %s", p)
	}
	if k.Kty != t.Kty {
		add("key type %s, not %s", Printable(k.Kty), t.Kty)
	}
	switch {
	case k.PublicErr != nil:
		add("an unusable key (%s)", Printable(k.PublicErr.Error()))
	case t.Kty == "RSA-HSM" && k.Public != nil && k.Size != t.KeySize:
		add("a %d-bit RSA key, not %d", k.Size, t.KeySize)
	case t.Kty == "EC-HSM" && k.Curve != t.Curve:
		add("curve %s, not %s", Printable(k.Curve), t.Curve)
	}
	if got, want := slices.Sorted(slices.Values(k.KeyOps)), slices.Sorted(slices.Values(t.KeyOps)); !slices.Equal(got, want) {
		add("key_ops %s, not %s", printableList(k.KeyOps), strings.Join(want, ","))
	}
	if k.Enabled != t.Enabled {
		add("enabled %t, not %t", k.Enabled, t.Enabled)
	}
	if !sameTime(k.NotBefore, t.NotBefore) {
		add("not before %s, not %s", timeText(k.NotBefore), unixText(t.NotBefore))
	}
	if !sameTime(k.Expires, t.Expires) {
		add("expiry %s, not %s", timeText(k.Expires), unixText(t.Expires))
	}
	if k.Created.IsZero() || k.Created.Unix() <= 0 {
		add("creation time %s, not a positive time", timeText(k.Created))
	}
	if want := importParams(j).Tags; !maps.Equal(k.Tags, want) {
		add("%d tags (%s), not the %d sent", len(k.Tags), tagNames(k.Tags), len(want))
	}
	return out
}

func sameTime(got time.Time, want int64) bool {
	if want == 0 {
		return got.IsZero()
	}
	return !got.IsZero() && got.Unix() == want
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return strconv.FormatInt(t.Unix(), 10)
}

func unixText(u int64) string {
	if u == 0 {
		return "none"
	}
	return strconv.FormatInt(u, 10)
}

// Describe says what an answer of Key Vault claims it holds, bounded and printable: kid,
// key type, size or curve, key_ops, enabled, nbf, exp, creation time and tag names.
func Describe(k *vault.Key) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kid %s, kty %s", Printable(k.KID), Printable(k.Kty))
	switch {
	case k.Size > 0:
		fmt.Fprintf(&b, ", %d bits", k.Size)
	case k.Curve != "":
		fmt.Fprintf(&b, ", curve %s", Printable(k.Curve))
	}
	fmt.Fprintf(&b, ", key_ops %s, enabled %t, nbf %s, exp %s, created %s, %d tags (%s)", printableList(k.KeyOps), k.Enabled,
		timeText(k.NotBefore), timeText(k.Expires), timeText(k.Created), len(k.Tags), tagNames(k.Tags))
	return b.String()
}

// maxPrintable bounds one string of Key Vault's shown to people or kept in the ledger.
const maxPrintable = 160

// Printable returns s as it may be shown or recorded: at most maxPrintable bytes (longer
// ones are cut and say how long they were), and quoted with Go escapes if it is empty or
// holds anything but printable ASCII and spaces, so that no control sequence of Key Vault's
// reaches a terminal.
func Printable(s string) string {
	long := len(s) > maxPrintable
	cut := s
	if long {
		cut = s[:maxPrintable]
		for !utf8.ValidString(cut) && len(cut) > 0 {
			cut = cut[:len(cut)-1]
		}
	}
	plain := cut != ""
	for i := 0; i < len(cut); i++ {
		if c := cut[i]; c < 0x20 || c > 0x7e {
			plain = false
			break
		}
	}
	if !plain {
		cut = strconv.QuoteToASCII(cut)
	}
	if long {
		cut += fmt.Sprintf("... (%d bytes)", len(s))
	}
	return cut
}

func printableList(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	out := make([]string, 0, min(len(ss), 16))
	for i, s := range ss {
		if i == 16 {
			out = append(out, fmt.Sprintf("and %d more", len(ss)-16))
			break
		}
		out = append(out, Printable(s))
	}
	return strings.Join(out, ",")
}

func tagNames(tags map[string]string) string {
	return printableList(slices.Sorted(maps.Keys(tags)))
}
