package station

import (
	"errors"
	"fmt"

	"github.com/airgap-byok/airgap-byok/shared/buildinfo"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// ErrToolsetNotAllowed means the policy a bundle would be made under lists the toolsets
// allowed to write, and the running binary is not one of them: the station writes nothing.
var ErrToolsetNotAllowed = errors.New("this binary is not a toolset the policy allows to write")

// ToolsetError says which binary the policy refused.
type ToolsetError struct {
	Toolset payload.Toolset // the running binary
	Policy  bundle.ID       // the policy in force
	Allowed int             // how many toolsets it lists
}

func (e *ToolsetError) Error() string {
	return fmt.Sprintf("this binary (toolset %s, sha256 %s) is not one of the %d toolsets policy %s allows to write", e.Toolset.Version, e.Toolset.SHA256, e.Allowed, e.Policy.Short())
}

func (e *ToolsetError) Is(t error) bool { return t == ErrToolsetNotAllowed }

// ErrUnknownPolicy means a bundle would be made under a policy this station has not
// verified in this process or its last clean replay: it replays the medium before it writes.
var ErrUnknownPolicy = errors.New("the policy a bundle would be made under is not known to this station")

// Toolset returns the toolset this station records in every bundle it writes: the version
// and SHA-256 of the running binary (buildinfo.Self).
func Toolset() (payload.Toolset, error) {
	self, err := buildinfo.Self()
	if err != nil {
		return payload.Toolset{}, err
	}
	t := payload.Toolset{Version: self.Version, SHA256: self.SHA256}
	if err := t.Validate(); err != nil {
		return payload.Toolset{}, fmt.Errorf("the running binary's toolset cannot be recorded: %w", err)
	}
	return t, nil
}

// learnPolicies remembers the policies a replay verified (in force, or awaiting approval),
// so that AppendBatch knows which toolsets each allows.
func (s *Station) learnPolicies(st *chain.State) {
	if st == nil {
		return
	}
	for i := range st.Policies {
		s.learnPolicy(st.Policies[i].ID, st.Policies[i].Policy)
	}
	if st.Pending != nil {
		s.learnPolicy(st.Pending.ID, st.Pending.Policy)
	}
}

func (s *Station) learnPolicy(id bundle.ID, p *payload.Policy) {
	if s.policies == nil {
		s.policies = map[bundle.ID]*payload.Policy{}
	}
	s.policies[id] = p
}

// policyOf returns the policy with the given ID that this station verified: in this
// process, or in the checkpoint of its last clean replay.
func (s *Station) policyOf(id bundle.ID) (*payload.Policy, error) {
	if p, ok := s.policies[id]; ok {
		return p, nil
	}
	cp, err := s.checkpoint()
	if err != nil {
		return nil, err
	}
	s.learnPolicies(cp)
	if p, ok := s.policies[id]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownPolicy, id.Short())
}

// checkToolset refuses to write under policy id with toolset t when the policy lists the
// allowed toolsets and t is not one (SPEC.md §9.2 step 8 rule 4). The enrollment and the
// first policy (id zero) are made under no policy. A policy this station has not verified
// cannot be checked: every command replays the medium before it writes (SPEC.md §9.1), which
// teaches the station its policies, so this happens only to callers that skip it, and the
// verifiers still flag what the policy does not allow.
func (s *Station) checkToolset(id bundle.ID, t payload.Toolset) error {
	if id.IsZero() {
		return nil
	}
	p, err := s.policyOf(id)
	if errors.Is(err, ErrUnknownPolicy) {
		s.Log.Warn("writing under a policy this station has not verified: its allowed toolsets are not checked", "policy", id.Short())
		return nil
	}
	if err != nil {
		return err
	}
	if !p.AllowsToolset(t.SHA256) {
		return &ToolsetError{Toolset: t, Policy: id, Allowed: len(p.AllowedToolsets)}
	}
	return nil
}
