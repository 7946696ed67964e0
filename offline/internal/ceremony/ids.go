package ceremony

import (
	"slices"
	"strings"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// ResolveID finds the one ID among candidates that s names: 64 hex digits, or a short
// fingerprint as people read it. One that names none is ErrNoSuchBundle, with the candidates
// (each as describe says; nil: its fingerprint) in Error.Have; one that is neither form, or a
// fingerprint that names several, is ErrUsage.
func ResolveID(what, s string, candidates []bundle.ID, describe func(bundle.ID) string) (bundle.ID, error) {
	var found []bundle.ID
	if id, err := bundle.ParseID(strings.ToLower(s)); err == nil {
		if slices.Contains(candidates, id) {
			return id, nil
		}
	} else {
		short, err := bundle.ParseShort(s)
		if err != nil {
			return bundle.ID{}, usagef("%s %q: want a fingerprint (XXXX-XXXX-XXXX-XXXX) or a 64-digit ID", what, s)
		}
		s = short
		for _, c := range candidates {
			if c.Short() == short {
				found = append(found, c)
			}
		}
	}
	switch len(found) {
	case 0:
		have := []string{}
		for _, c := range candidates {
			if describe != nil {
				have = append(have, describe(c))
			} else {
				have = append(have, c.Short())
			}
		}
		e := errorf(ErrNoSuchBundle, "no %s %s", what, s).(*Error)
		e.Have = have
		return bundle.ID{}, e
	case 1:
		return found[0], nil
	}
	return bundle.ID{}, usagef("fingerprint %s names %d %ss: give the full ID", s, len(found), what)
}
