package chain

import (
	"context"
	"crypto"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// The replay runs in two stages. Stage 1 works on one bundle at a time, in parallel: read the
// file, parse the header, check the name, and, when the signer's key is already known, verify
// the signature and only then open and decode the payload. Stage 2 (replay.go) takes the
// bundles of both chains in order, one at a time, and does everything that needs state: the
// links, who may sign what, approvals, expiry. Anything stage 1 could not do because the key
// was not known yet, stage 2 does itself, in the same order.

// item is one bundle passing through the pipeline.
type item struct {
	entry media.Entry
	data  []byte
	b     *bundle.Bundle
	err   error // stage 1 failure: read, parse, name

	verifiedWith bundle.ID // non-zero once the signature verified with this key
	sigErr       error     // the signature failed with the key named by the header
	opened       bool      // payload decoded (or openErr set)
	payload      any
	openErr      error
	// approved[i] is true if signature i of an approval payload verified, in stage 1, with
	// the custodian key whose ID it names. Stage 2 still decides whether that custodian may
	// approve; it skips only the signature check.
	approved []bool

	done chan struct{}
}

// keySet holds the keys stage 1 may verify with, by key ID: the station keys and the
// custodian keys of every policy known so far. Any key whose ID matches the one a bundle
// names is the right key (the ID is its hash); whether that key was allowed to sign is stage
// 2's decision. Custodian keys are never used for station signatures.
type keySet struct {
	stations   map[bundle.ID]*bundle.Verifier
	custodians map[bundle.ID]crypto.PublicKey
}

func stage1(it *item, src Source, keys *atomic.Pointer[keySet]) {
	defer close(it.done)
	data, err := src.Read(it.entry)
	if err != nil {
		it.err = fmt.Errorf("read %s: %w", it.entry.Path, err)
		return
	}
	b, err := bundle.Parse(data)
	if err != nil {
		it.err = fmt.Errorf("%s: %w", it.entry.Path, err)
		return
	}
	it.b = b
	it.data = data
	if err := checkName(it.entry, b); err != nil {
		it.err = err
		return
	}
	if ks := keys.Load(); ks != nil {
		if v, ok := ks.stations[b.Header.Signer]; ok {
			verifyAndOpen(it, v)
			verifyApprovals(it, ks)
		}
	}
}

// verifyApprovals checks the custodian signatures of an approval payload with the custodian
// keys known so far, so that stage 2 need not (it is the most expensive part of an approval).
func verifyApprovals(it *item, ks *keySet) {
	a, ok := it.payload.(*payload.Approval)
	if !ok || it.openErr != nil {
		return
	}
	it.approved = make([]bool, len(a.Signatures))
	for i, s := range a.Signatures {
		if pub, ok := ks.custodians[s.Custodian]; ok {
			it.approved[i] = bundle.VerifyApproval(pub, it.b.Header.Version, a.Target, [bundle.SignatureSize]byte(s.Sig)) == nil
		}
	}
}

// checkName compares the claims of the file name and folder with the header.
func checkName(e media.Entry, b *bundle.Bundle) error {
	if id := b.ID(); id != e.ID {
		return fmt.Errorf("%s: %w", e.Path, &bundle.HashMismatchError{What: "file name", Want: e.ID[:], Got: id[:]})
	}
	if b.Header.Seq != e.Seq || b.Header.Chain != e.Chain {
		return &ChainBreakError{Chain: e.Chain, Seq: e.Seq, Reason: fmt.Sprintf("%s holds %s chain seq %d", e.Path, b.Header.Chain, b.Header.Seq)}
	}
	return nil
}

// verifyAndOpen checks the signature with v and, only if it verifies, opens and decodes the
// payload.
func verifyAndOpen(it *item, v *bundle.Verifier) {
	if err := it.b.VerifySignatureWith(v); err != nil {
		it.sigErr = err
		return
	}
	it.verifiedWith = it.b.Header.Signer
	openPayload(it)
}

// openPayload decodes the payload. Callers have authenticated the header first.
func openPayload(it *item) {
	it.opened = true
	p, err := it.b.Open()
	if err != nil {
		it.openErr = err
		return
	}
	it.payload, it.openErr = payload.DecodeVersion(it.b.Header.Version, it.b.Header.Kind, p)
}

// cursor yields the bundles of one chain in order, prefetching up to its buffer.
type cursor struct {
	chain bundle.Chain
	out   chan *item
	next  *item
	eof   bool
}

func startCursor(ctx context.Context, wg *sync.WaitGroup, src Source, c bundle.Chain, from uint64, warn func(media.Warning), jobs chan<- *item, depth int) *cursor {
	cur := &cursor{chain: c, out: make(chan *item, depth)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(cur.out)
		for e, err := range src.Entries(c, from, warn) {
			it := &item{entry: e, done: make(chan struct{})}
			if err != nil {
				it.err = fmt.Errorf("list %s chain: %w", c, err)
				close(it.done)
			} else {
				select {
				case jobs <- it:
				case <-ctx.Done():
					return
				}
			}
			select {
			case cur.out <- it:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return cur
}

// peek returns the next bundle once stage 1 is done with it, or nil at the end.
func (c *cursor) peek(ctx context.Context) (*item, error) {
	if c.next == nil && !c.eof {
		select {
		case it, ok := <-c.out:
			if !ok {
				c.eof = true
				return nil, nil
			}
			c.next = it
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if c.next == nil {
		return nil, nil
	}
	select {
	case <-c.next.done:
		return c.next, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *cursor) pop() { c.next = nil }
