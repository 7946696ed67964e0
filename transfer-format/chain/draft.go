package chain

import (
	"fmt"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Position is where a station stands when it writes: the head of its own chain, the latest
// verified head of the other chain, and the policy in force (zero for an enrollment and the
// first policy).
type Position struct {
	Chain  bundle.Chain
	Head   Head
	Peer   Head
	Policy bundle.ID
	// Version is the format version to write; 0 means bundle.Version, the newest.
	Version uint16
	// Toolset is the writer's toolset, recorded in every version 2 payload (§7.7).
	Toolset *payload.Toolset
}

// Draft returns the draft of the bundle that carries payload v (a pointer to one of the
// payload types) as the next bundle after pos, created at created and expiring lifetime later
// (§4.3, §9.1), in the format version pos names. Into a version 2 payload it records
// pos.Toolset, if set, in place of any toolset v records (so it changes v); a version 2
// payload without a toolset, or a version 1 payload with version 2 members, is an error.
// Times are truncated to whole seconds.
func Draft(pos Position, v any, created time.Time, lifetime time.Duration) (bundle.Draft, error) {
	kind, err := payload.KindOf(v)
	if err != nil {
		return bundle.Draft{}, err
	}
	if !pos.Chain.Allows(kind) {
		return bundle.Draft{}, fmt.Errorf("a %s does not belong on the %s chain", kind, pos.Chain)
	}
	version := pos.Version
	if version == 0 {
		version = bundle.Version
	}
	if version >= bundle.Version2 && pos.Toolset != nil {
		t := *pos.Toolset
		if err := payload.SetToolset(v, &t); err != nil {
			return bundle.Draft{}, err
		}
	}
	if err := payload.CheckVersion(version, v); err != nil {
		return bundle.Draft{}, err
	}
	p, err := payload.Marshal(v)
	if err != nil {
		return bundle.Draft{}, err
	}
	c := created.Unix()
	return bundle.Draft{
		Version: version,
		Kind:    kind, Chain: pos.Chain,
		Seq: pos.Head.Seq + 1, Prev: pos.Head.ID,
		PeerSeq: pos.Peer.Seq, Peer: pos.Peer.ID,
		Policy:  pos.Policy,
		Created: c, Expires: c + int64(lifetime/time.Second),
		Payload: p,
	}, nil
}
