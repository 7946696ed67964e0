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
}

// Draft returns the draft of the bundle that carries payload v (a pointer to one of the
// payload types) as the next bundle after pos, created at created and expiring lifetime later
// (§4.3, §9.1). Times are truncated to whole seconds.
func Draft(pos Position, v any, created time.Time, lifetime time.Duration) (bundle.Draft, error) {
	kind, err := payload.KindOf(v)
	if err != nil {
		return bundle.Draft{}, err
	}
	if !pos.Chain.Allows(kind) {
		return bundle.Draft{}, fmt.Errorf("a %s does not belong on the %s chain", kind, pos.Chain)
	}
	p, err := payload.Marshal(v)
	if err != nil {
		return bundle.Draft{}, err
	}
	c := created.Unix()
	return bundle.Draft{
		Kind: kind, Chain: pos.Chain,
		Seq: pos.Head.Seq + 1, Prev: pos.Head.ID,
		PeerSeq: pos.Peer.Seq, Peer: pos.Peer.ID,
		Policy:  pos.Policy,
		Created: c, Expires: c + int64(lifetime/time.Second),
		Payload: p,
	}, nil
}
