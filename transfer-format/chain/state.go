package chain

import (
	"maps"
	"slices"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Head is the latest bundle of a chain.
type Head struct {
	Seq     uint64    `json:"seq"`
	ID      bundle.ID `json:"id"`
	Created int64     `json:"created"`
}

// Heads holds the head of each chain.
type Heads struct {
	Offline Head `json:"offline"`
	Online  Head `json:"online"`
}

// Of returns the head of chain c.
func (h *Heads) Of(c bundle.Chain) *Head {
	if c == bundle.ChainOffline {
		return &h.Offline
	}
	return &h.Online
}

// Versions holds the format version of each chain's applied head: 0 before its first
// bundle. A chain never goes back to an older version (§9.2 step 3).
type Versions struct {
	Offline uint16 `json:"offline"`
	Online  uint16 `json:"online"`
}

// Of returns the version of chain c's head.
func (v *Versions) Of(c bundle.Chain) *uint16 {
	if c == bundle.ChainOffline {
		return &v.Offline
	}
	return &v.Online
}

// PolicyRecord is a policy version that took effect.
type PolicyRecord struct {
	ID        bundle.ID       `json:"id"`
	Seq       uint64          `json:"seq"`       // offline sequence number of the policy bundle
	Effective uint64          `json:"effective"` // offline sequence number of the approval that made it effective
	Created   int64           `json:"created"`
	Policy    *payload.Policy `json:"policy"`
}

// StationKey returns the key ID of the station key the policy names for chain c.
func (p *PolicyRecord) StationKey(c bundle.Chain) bundle.ID {
	if c == bundle.ChainOffline {
		return p.Policy.OfflineStation.ID()
	}
	return p.Policy.OnlineStation.ID()
}

// PendingPolicy is a policy version awaiting its approvals.
type PendingPolicy struct {
	PolicyRecord
	Expires   int64       `json:"expires"`
	Approvals []bundle.ID `json:"approvals"` // custodian key IDs that approved, sorted
}

// OfferRecord is a verified KEK offer.
type OfferRecord struct {
	ID      bundle.ID         `json:"id"`
	Seq     uint64            `json:"seq"`
	Created int64             `json:"created"`
	Expires int64             `json:"expires"`
	Offer   *payload.KEKOffer `json:"offer"`
}

// PackageRecord is a verified key package that has not been uploaded yet.
type PackageRecord struct {
	ID        bundle.ID       `json:"id"`
	Seq       uint64          `json:"seq"`
	Created   int64           `json:"created"`
	Expires   int64           `json:"expires"`
	Vault     string          `json:"vault"`
	KeyName   string          `json:"key_name"`
	KeyType   payload.KeyType `json:"key_type"`
	PublicKey []byte          `json:"public_key,omitempty"`
	KCV       []byte          `json:"kcv,omitempty"`
	Offer     bundle.ID       `json:"offer"`
	Approvals []bundle.ID     `json:"approvals"` // custodian key IDs that approved, sorted
	// ApprovedAt is the offline sequence number of each custodian's approval.
	ApprovedAt map[bundle.ID]uint64 `json:"approved_at,omitempty"`
	Rejected   int                  `json:"rejected"`          // receipts saying Key Vault refused it
	Regions    []string             `json:"regions,omitempty"` // the residency the package states (format version 2)
}

// ApprovedBy returns how many of the package's approvals come from custodians of p and were
// made at or before offline sequence number upTo.
func (r *PackageRecord) ApprovedBy(p *payload.Policy, upTo uint64) int {
	n := 0
	for _, a := range r.ApproversUpTo(upTo) {
		if _, ok := p.Custodian(a); ok {
			n++
		}
	}
	return n
}

// ApproversUpTo returns the custodian key IDs whose approvals of the package were made at or
// before offline sequence number upTo.
func (r *PackageRecord) ApproversUpTo(upTo uint64) []bundle.ID {
	var out []bundle.ID
	for _, a := range r.Approvals {
		if seq, ok := r.ApprovedAt[a]; ok && seq > upTo {
			continue
		}
		out = append(out, a)
	}
	return out
}

// Quorum checks the package's approvals made at or before offline sequence number upTo
// against what p requires for its vault (SPEC.md §9.7): ok if every quorum is met, else the
// first quorum that is not and how many approvals it has.
func (r *PackageRecord) Quorum(p *payload.Policy, upTo uint64) (q payload.Quorum, have int, ok bool) {
	return payload.Unmet(p.VaultQuorums(r.Vault), r.ApproversUpTo(upTo))
}

// Counts are running totals of a replay.
type Counts struct {
	Offline   uint64 `json:"offline"`
	Online    uint64 `json:"online"`
	Packages  uint64 `json:"packages"`
	Approvals uint64 `json:"approvals"`
	Offers    uint64 `json:"offers"`
	Receipts  uint64 `json:"receipts"`
	Imported  uint64 `json:"imported"`
}

// State is everything a replay remembers between bundles. Its size depends on the number of
// policy versions, KEK offers and key packages not uploaded yet, not on the length of the
// chains. It serialises to JSON, so an audit can resume from a checkpoint.
type State struct {
	Anchor bundle.ID `json:"anchor"` // ID of policy version 1
	Heads  Heads     `json:"heads"`
	Peers  Heads     `json:"peers"` // the latest peer reference each chain made: Peers.Offline is what the offline chain last saw of the online chain
	// Versions are the format versions of the heads. A checkpoint written before version 2
	// existed has none (zero), which is right: its heads were version 1.
	Versions Versions                     `json:"versions"`
	Policies []PolicyRecord               `json:"policies"`
	Pending  *PendingPolicy               `json:"pending,omitempty"`
	Offers   map[bundle.ID]*OfferRecord   `json:"offers"`
	Packages map[bundle.ID]*PackageRecord `json:"packages"`
	Counts   Counts                       `json:"counts"`
	Enrolled map[string]bundle.ID         `json:"enrolled"` // station ("offline", "online") → enrollment bundle ID
	// pending enrollments: genesis bundles waiting for the first policy (not serialised:
	// a checkpoint is only taken once a policy is in force).
	waiting [3]*item
}

func newState() *State {
	return &State{
		Offers:   map[bundle.ID]*OfferRecord{},
		Packages: map[bundle.ID]*PackageRecord{},
		Enrolled: map[string]bundle.ID{},
	}
}

// Current returns the policy in force on the offline chain, or nil.
func (s *State) Current() *PolicyRecord {
	if len(s.Policies) == 0 {
		return nil
	}
	return &s.Policies[len(s.Policies)-1]
}

// PolicyAt returns the policy in force after offline bundle seq, or nil.
func (s *State) PolicyAt(seq uint64) *PolicyRecord {
	for i := len(s.Policies) - 1; i >= 0; i-- {
		if s.Policies[i].Effective <= seq {
			return &s.Policies[i]
		}
	}
	return nil
}

// Policy returns the effective policy with the given ID, or nil.
func (s *State) Policy(id bundle.ID) *PolicyRecord {
	for i := range s.Policies {
		if s.Policies[i].ID == id {
			return &s.Policies[i]
		}
	}
	return nil
}

// Clone returns a deep enough copy for a checkpoint.
func (s *State) Clone() *State {
	c := *s
	c.Policies = slices.Clone(s.Policies)
	c.Offers = make(map[bundle.ID]*OfferRecord, len(s.Offers))
	for k, v := range s.Offers {
		vv := *v
		c.Offers[k] = &vv
	}
	c.Packages = make(map[bundle.ID]*PackageRecord, len(s.Packages))
	for k, v := range s.Packages {
		vv := *v
		vv.Approvals = slices.Clone(v.Approvals)
		vv.ApprovedAt = maps.Clone(v.ApprovedAt)
		c.Packages[k] = &vv
	}
	c.Enrolled = make(map[string]bundle.ID, len(s.Enrolled))
	for k, v := range s.Enrolled {
		c.Enrolled[k] = v
	}
	if s.Pending != nil {
		p := *s.Pending
		p.Approvals = slices.Clone(s.Pending.Approvals)
		c.Pending = &p
	}
	c.waiting = [3]*item{}
	return &c
}
