// Package chain verifies and replays the two hash chains of a transfer medium (SPEC.md §9):
// every signature, link, policy version, approval threshold and expiry, and the matching of
// key packages, KEK offers and receipts.
//
// [Replay] streams both chains from genesis (or from a checkpoint) in constant memory: it
// keeps the head of each chain, the policy versions, the KEK offers, and the key packages that
// have not been uploaded yet, never the chains themselves. Bundles are verified in parallel
// where that needs no state, and applied in order.
//
// # Verdicts
//
// A failure that leaves the rest of a chain unverifiable (a malformed bundle, a bad
// signature, a broken link, a fork, an untrusted policy) stops the replay: Replay returns it,
// and it is also the last Finding. A rule broken by a bundle that is itself authentic (an
// expired offer used, too few approvals, a vault the policy does not allow, a key mismatch) is
// recorded as a Finding and the replay goes on, so an audit reports every one. Every finding's
// error wraps one verdict sentinel (errors.go); [Verdict] names its class.
package chain

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Source is where the bundles come from. *media.Media is the usual one.
type Source interface {
	// Entries yields the bundle files of chain c from sequence number from on, in order.
	Entries(c bundle.Chain, from uint64, warn func(media.Warning)) iter.Seq2[media.Entry, error]
	// Read returns the bytes of a bundle file.
	Read(e media.Entry) ([]byte, error)
	// Find returns the entry at a sequence number.
	Find(c bundle.Chain, seq uint64) (media.Entry, error)
}

// surveyor is a Source that can also report what it holds outside the chains (media.Media):
// a replay passes those warnings on with the chains' own.
type surveyor interface {
	Unknown(warn func(media.Warning)) error
}

// Options configure a replay.
type Options struct {
	// Anchor is the ID of the policy the caller trusts (version 1, the genesis policy). If
	// zero, the first policy on the medium is trusted on first use and the result says so.
	Anchor bundle.ID
	// Remembered are the heads the caller saw before. The medium must extend them: a shorter
	// chain is a rollback, a different bundle at a remembered place is a fork.
	Remembered Heads
	// Resume continues a replay from a checkpoint (a State of an earlier replay of the same
	// medium, taken once a policy was in force) instead of from genesis.
	Resume *State
	// Workers is the number of bundles verified in parallel; 0 means GOMAXPROCS.
	Workers int
	// OnBundle, if set, is called for every verified bundle, in replay order. Genesis
	// enrollments are delivered when the first policy has verified them, just before it.
	// An error from OnBundle stops the replay and is returned.
	OnBundle func(*Verified) error
	// Warn, if set, receives the files on the medium that readers ignore.
	Warn func(media.Warning)
}

// Verified is a bundle whose signature and place in its chain have been checked.
type Verified struct {
	Entry    media.Entry
	Bundle   *bundle.Bundle
	Payload  any           // *payload.Enrollment, *payload.Policy, ...
	Policy   *PolicyRecord // the policy it was checked against; nil for enrollments and a policy awaiting approval
	Findings []error       // rules it breaks (see the package doc)
}

// Finding is one verdict about one bundle.
type Finding struct {
	Chain bundle.Chain
	Seq   uint64
	ID    bundle.ID
	Kind  bundle.Kind
	Path  string
	Err   error
}

func (f Finding) Error() string {
	if f.Seq == 0 {
		return fmt.Sprintf("%s chain: %v", f.Chain, f.Err)
	}
	return fmt.Sprintf("%s chain seq %d (%s): %v", f.Chain, f.Seq, f.Kind, f.Err)
}

func (f Finding) Unwrap() error { return f.Err }

// Result is the outcome of a replay.
type Result struct {
	State             *State
	Findings          []Finding
	Warnings          []media.Warning // at most maxWarnings; WarningCount has the total
	WarningCount      int
	TrustedOnFirstUse bool // no anchor was given; the first policy was taken as found
	Complete          bool // both chains were replayed to their end
}

const maxWarnings = 1000

// Err returns nil if the replay found nothing, else the first finding.
func (r *Result) Err() error {
	if len(r.Findings) == 0 {
		return nil
	}
	return r.Findings[0]
}

// Replay verifies the medium src. It returns the result and, if the replay had to stop, the
// reason (also the last finding). Findings that did not stop it are only in the result.
func Replay(ctx context.Context, src Source, opts Options) (*Result, error) {
	r := &replayer{src: src, opts: opts, res: &Result{}}
	if opts.Resume != nil {
		if opts.Resume.Current() == nil {
			return r.res, errors.New("resume: the checkpoint has no policy in force")
		}
		if !opts.Anchor.IsZero() && opts.Resume.Anchor != opts.Anchor {
			return r.res, &UntrustedError{Pinned: opts.Anchor, Found: opts.Resume.Anchor}
		}
		r.st = opts.Resume.Clone()
	} else {
		r.st = newState()
	}
	r.res.State = r.st
	r.publishKeys()
	if sv, ok := src.(surveyor); ok {
		// What cannot be listed here is not part of any chain; the replay reads the chains.
		_ = sv.Unknown(r.warn)
	}
	err := r.run(ctx)
	return r.res, err
}

type replayer struct {
	src  Source
	opts Options
	st   *State
	res  *Result
	keys atomic.Pointer[keySet]
	ring [3]ring
	wmu  sync.Mutex
	// ids holds the key IDs of every policy known so far (publishKeys), for stage 2, which
	// asks who a policy's stations and custodians are for every bundle: each ID is a hash.
	ids map[*payload.Policy]*policyIDs
}

// policyIDs are the key IDs a policy names.
type policyIDs struct {
	stations   [3]bundle.ID // by chain
	custodians []bundle.ID
}

// idsOf returns the key IDs of p.
func (r *replayer) idsOf(p *payload.Policy) *policyIDs {
	if ids, ok := r.ids[p]; ok {
		return ids
	}
	ids := &policyIDs{}
	ids.stations[bundle.ChainOffline] = p.OfflineStation.ID()
	ids.stations[bundle.ChainOnline] = p.OnlineStation.ID()
	for _, c := range p.Custodians {
		ids.custodians = append(ids.custodians, c.Key.ID())
	}
	if r.ids == nil {
		r.ids = map[*payload.Policy]*policyIDs{}
	}
	r.ids[p] = ids
	return ids
}

// isCustodian reports whether the key id is one of p's custodians (p.Custodian).
func (r *replayer) isCustodian(p *payload.Policy, id bundle.ID) bool {
	return slices.Contains(r.idsOf(p).custodians, id)
}

// ring remembers the IDs and times of the latest bundles of a chain, so that peer references
// rarely need the medium.
type ring struct {
	seq     [ringSize]uint64
	id      [ringSize]bundle.ID
	created [ringSize]int64
}

const ringSize = 1024

func (r *replayer) warn(w media.Warning) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.res.WarningCount++
	if len(r.res.Warnings) < maxWarnings {
		r.res.Warnings = append(r.res.Warnings, w)
	}
	if r.opts.Warn != nil {
		r.opts.Warn(w)
	}
}

func (r *replayer) run(ctx context.Context) error {
	workers := r.opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	jobs := make(chan *item)
	var wwg, cwg sync.WaitGroup
	for range workers {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for it := range jobs {
				stage1(it, r.src, &r.keys)
			}
		}()
	}
	depth := 8 * workers
	off := startCursor(ctx, &cwg, r.src, bundle.ChainOffline, r.st.Heads.Offline.Seq+1, r.warn, jobs, depth)
	on := startCursor(ctx, &cwg, r.src, bundle.ChainOnline, r.st.Heads.Online.Seq+1, r.warn, jobs, depth)
	defer func() {
		cancel()
		cwg.Wait()
		close(jobs)
		wwg.Wait()
	}()

	for {
		a, err := off.peek(ctx)
		if err != nil {
			return err
		}
		b, err := on.peek(ctx)
		if err != nil {
			return err
		}
		if a == nil && b == nil {
			break
		}
		c, it, err := r.choose(a, b)
		if err != nil {
			return r.stop(c, it, err)
		}
		if c == bundle.ChainOffline {
			off.pop()
		} else {
			on.pop()
		}
		if err := r.process(c, it); err != nil {
			return err
		}
	}
	return r.finish()
}

// choose picks the next bundle to apply: one whose peer reference is already verified.
func (r *replayer) choose(a, b *item) (bundle.Chain, *item, error) {
	// A bundle that failed stage 1 is ready at once and goes first: its failure is the
	// verdict, and its header, unauthenticated, must not decide the order (a flipped peer
	// seq would turn a hash mismatch into a chain break or a rollback). SPEC.md §9.2.
	failed := func(it *item) bool { return it != nil && (it.b == nil || it.err != nil) }
	ready := func(it *item, other bundle.Chain) bool {
		return it != nil && (failed(it) || it.b.Header.PeerSeq <= r.st.Heads.Of(other).Seq)
	}
	ra, rb := ready(a, bundle.ChainOnline), ready(b, bundle.ChainOffline)
	switch {
	case failed(a):
		return bundle.ChainOffline, a, nil
	case failed(b):
		return bundle.ChainOnline, b, nil
	case ra && rb:
		// Prefer the bundle that references the other chain's head, so that the reference
		// is checked against the head rather than looked up.
		if b.b.Header.PeerSeq == r.st.Heads.Offline.Seq && a.b.Header.PeerSeq != r.st.Heads.Online.Seq {
			return bundle.ChainOnline, b, nil
		}
		return bundle.ChainOffline, a, nil
	case ra:
		return bundle.ChainOffline, a, nil
	case rb:
		return bundle.ChainOnline, b, nil
	case a != nil && b == nil:
		return bundle.ChainOffline, a, r.missingPeer(bundle.ChainOffline, a)
	case b != nil && a == nil:
		return bundle.ChainOnline, b, r.missingPeer(bundle.ChainOnline, b)
	}
	return bundle.ChainOffline, a, &ChainBreakError{Chain: bundle.ChainOffline, Seq: a.entry.Seq,
		Reason: fmt.Sprintf("it and online seq %d each reference the other's future", b.entry.Seq)}
}

func (r *replayer) missingPeer(c bundle.Chain, it *item) error {
	o := c.Other()
	return &RollbackError{Chain: o, Remembered: it.b.Header.PeerSeq, Found: r.st.Heads.Of(o).Seq,
		Reason: fmt.Sprintf("%s seq %d saw %s seq %d, which is not on the medium", c, it.entry.Seq, o, it.b.Header.PeerSeq)}
}

// stop records a finding that ends the replay and returns it.
func (r *replayer) stop(c bundle.Chain, it *item, err error) error {
	f := Finding{Chain: c, Err: err}
	if it != nil {
		f.Seq, f.ID, f.Path = it.entry.Seq, it.entry.ID, it.entry.Path
		if it.b != nil {
			f.Kind = it.b.Header.Kind
		}
	}
	r.res.Findings = append(r.res.Findings, f)
	return f
}

func (r *replayer) soft(it *item, v *Verified, err error) {
	h := &it.b.Header
	r.res.Findings = append(r.res.Findings, Finding{Chain: h.Chain, Seq: h.Seq, ID: it.b.ID(), Kind: h.Kind, Path: it.entry.Path, Err: err})
	v.Findings = append(v.Findings, err)
}

// publishKeys gives stage 1 the station and custodian keys of every policy known so far.
func (r *replayer) publishKeys() {
	ks := keySet{stations: map[bundle.ID]*bundle.Verifier{}, custodians: map[bundle.ID]crypto.PublicKey{}}
	add := func(p *payload.Policy) {
		for _, k := range []payload.PublicKey{p.OfflineStation, p.OnlineStation} {
			if pub, err := k.Parse(); err == nil {
				if v, err := bundle.NewVerifier(pub); err == nil {
					ks.stations[v.ID()] = v
				}
			}
		}
		for _, c := range p.Custodians {
			if pub, err := c.Key.Parse(); err == nil {
				ks.custodians[c.Key.ID()] = pub
			}
		}
	}
	for i := range r.st.Policies {
		add(r.st.Policies[i].Policy)
		r.idsOf(r.st.Policies[i].Policy)
	}
	if r.st.Pending != nil {
		add(r.st.Pending.Policy)
		r.idsOf(r.st.Pending.Policy)
	}
	r.keys.Store(&ks)
}

func (r *replayer) key(id bundle.ID) *bundle.Verifier {
	if ks := r.keys.Load(); ks != nil {
		return ks.stations[id]
	}
	return nil
}

// open makes sure the signature of it verified with the key named by its header and its
// payload is decoded. The caller has checked that the signer is allowed.
func (r *replayer) open(it *item) error {
	if it.verifiedWith != it.b.Header.Signer {
		if it.sigErr != nil {
			return it.sigErr
		}
		pub := r.key(it.b.Header.Signer)
		if pub == nil {
			return &SignerError{Chain: it.b.Header.Chain, Seq: it.b.Header.Seq, Signer: it.b.Header.Signer}
		}
		verifyAndOpen(it, pub)
		if it.sigErr != nil {
			return it.sigErr
		}
	}
	if !it.opened {
		openPayload(it)
	}
	return it.openErr
}

// lookup returns the ID and creation time of bundle seq of chain c, which the replay has
// already verified.
func (r *replayer) lookup(c bundle.Chain, seq uint64) (bundle.ID, int64, error) {
	if h := r.st.Heads.Of(c); h.Seq == seq {
		return h.ID, h.Created, nil
	}
	rg := &r.ring[c]
	if i := seq % ringSize; rg.seq[i] == seq {
		return rg.id[i], rg.created[i], nil
	}
	e, err := r.src.Find(c, seq)
	if err != nil {
		return bundle.ID{}, 0, err
	}
	data, err := r.src.Read(e)
	if err != nil {
		return bundle.ID{}, 0, err
	}
	h, err := bundle.ParseHeader(data)
	if err != nil {
		return bundle.ID{}, 0, err
	}
	return bundle.IDOfHeader(data[:bundle.HeaderSize]), h.Created, nil
}

func (r *replayer) advance(c bundle.Chain, it *item) {
	h := &it.b.Header
	id := it.b.ID()
	*r.st.Heads.Of(c) = Head{Seq: h.Seq, ID: id, Created: h.Created}
	*r.st.Versions.Of(c) = h.Version
	if h.PeerSeq > 0 {
		*r.st.Peers.Of(c) = Head{Seq: h.PeerSeq, ID: h.Peer}
	}
	rg := &r.ring[c]
	i := h.Seq % ringSize
	rg.seq[i], rg.id[i], rg.created[i] = h.Seq, id, h.Created
	if c == bundle.ChainOffline {
		r.st.Counts.Offline++
	} else {
		r.st.Counts.Online++
	}
}

func (r *replayer) deliver(v *Verified) error {
	if r.opts.OnBundle == nil {
		return nil
	}
	if err := r.opts.OnBundle(v); err != nil {
		return fmt.Errorf("%s chain seq %d: %w", v.Entry.Chain, v.Entry.Seq, err)
	}
	return nil
}

// process applies one bundle (§9.2).
func (r *replayer) process(c bundle.Chain, it *item) error {
	if it.err != nil {
		return r.stop(c, it, it.err)
	}
	h := &it.b.Header
	id := it.b.ID()
	head := r.st.Heads.Of(c)

	// Place in the chain.
	switch {
	case h.Seq == head.Seq && head.Seq != 0:
		return r.stop(c, it, &ForkError{Chain: c, Seq: h.Seq, A: head.ID, B: id, Reason: "two bundles with one sequence number"})
	case h.Seq != head.Seq+1:
		return r.stop(c, it, &ChainBreakError{Chain: c, Seq: h.Seq, Reason: fmt.Sprintf("seq %d is missing", head.Seq+1)})
	case h.Prev != head.ID:
		return r.stop(c, it, &ChainBreakError{Chain: c, Seq: h.Seq, WantPrev: head.ID, GotPrev: h.Prev})
	case h.Created < head.Created:
		return r.stop(c, it, &ChainBreakError{Chain: c, Seq: h.Seq, Reason: "created before the bundle it follows"})
	}
	if rem := r.opts.Remembered.Of(c); rem.Seq == h.Seq && rem.ID != id {
		return r.stop(c, it, &ForkError{Chain: c, Seq: h.Seq, A: rem.ID, B: id, Reason: "not the bundle seen there before"})
	}

	// Reference to the other chain.
	o := c.Other()
	last := r.st.Peers.Of(c)
	switch {
	case h.PeerSeq < last.Seq:
		return r.stop(c, it, &RollbackError{Chain: o, Remembered: last.Seq, Found: h.PeerSeq,
			Reason: fmt.Sprintf("%s seq %d saw less of it than an earlier bundle did", c, h.Seq)})
	case h.PeerSeq == last.Seq && h.Peer != last.ID:
		return r.stop(c, it, &ForkError{Chain: o, Seq: h.PeerSeq, A: last.ID, B: h.Peer, Reason: "two bundles of this chain reference different bundles there"})
	}
	var peerCreated int64
	if h.PeerSeq > 0 {
		pid, pc, err := r.lookup(o, h.PeerSeq)
		if err != nil {
			return r.stop(c, it, fmt.Errorf("look up %s seq %d: %w", o, h.PeerSeq, err))
		}
		if pid != h.Peer {
			return r.stop(c, it, &ForkError{Chain: o, Seq: h.PeerSeq, A: pid, B: h.Peer, Reason: fmt.Sprintf("%s seq %d saw a different bundle there", c, h.Seq)})
		}
		peerCreated = pc
	}
	// A chain moves from format version 1 to 2 at any bundle, never back (§3, §9.2 step 3.8).
	if prev := r.st.Versions.Of(c); h.Version < *prev {
		return r.stop(c, it, &ChainBreakError{Chain: c, Seq: h.Seq,
			Reason: fmt.Sprintf("a version %d bundle follows a version %d bundle (a chain never goes back to an older format version)", h.Version, *prev)})
	}

	v := &Verified{Entry: it.entry, Bundle: it.b}

	// Signer, signature, payload.
	switch {
	case h.Kind == bundle.KindEnrollment:
		// A genesis enrollment is signed by the key it carries; it is verified when the first
		// policy names that key (§9.2 step 4).
		r.st.waiting[c] = it
		r.advance(c, it)
		return nil
	case h.Kind == bundle.KindPolicy && r.st.Current() == nil && r.st.Pending == nil:
		return r.firstPolicy(it, v)
	}
	pol, err := r.policyFor(c, h)
	if err != nil {
		return r.stop(c, it, err)
	}
	if want := r.idsOf(pol.Policy).stations[c]; h.Signer != want {
		return r.stop(c, it, &SignerError{Chain: c, Seq: h.Seq, Signer: h.Signer, Want: want})
	}
	if err := r.open(it); err != nil {
		return r.stop(c, it, err)
	}
	v.Payload, v.Policy = it.payload, pol
	if h.Policy != pol.ID {
		r.soft(it, v, &PolicyError{Rule: "policy-in-force", Detail: fmt.Sprintf("made under policy %s, but %s is in force", h.Policy.Short(), pol.ID.Short())})
	}

	p := pol.Policy
	skew := p.MaxClockSkewSeconds
	if life := h.Expires - h.Created; life > p.BundleLifetimeSeconds {
		r.soft(it, v, &PolicyError{Rule: "lifetime", Detail: fmt.Sprintf("lives %s, the policy allows %s", secs(life), secs(p.BundleLifetimeSeconds))})
	}
	if h.PeerSeq > 0 && h.Created+skew < peerCreated {
		r.soft(it, v, &ClockSkewError{Chain: c, Seq: h.Seq, Skew: secs(peerCreated - h.Created), Max: secs(skew),
			Reason: fmt.Sprintf("created before %s seq %d, which it saw", o, h.PeerSeq)})
	}
	if err := toolsetAllowed(p, it.payload); err != nil {
		r.soft(it, v, err)
	}

	switch pl := it.payload.(type) {
	case *payload.Policy:
		if err := r.nextPolicy(it, v, pl, pol); err != nil {
			return r.stop(c, it, err)
		}
	case *payload.Approval:
		r.approval(it, v, pl, pol)
	case *payload.KEKOffer:
		r.offer(it, v, pl, pol)
	case *payload.KeyPackage:
		r.keyPackage(it, v, pl, pol, peerCreated)
	case *payload.Receipt:
		r.receipt(it, v, pl, pol)
	}
	r.advance(c, it)
	return r.deliver(v)
}

func secs(s int64) time.Duration { return time.Duration(s) * time.Second }

// toolsetAllowed checks that a policy which lists allowed toolsets lists the one that wrote
// payload v (§9.2 step 8 rule 4). A version 1 payload records none: it was written by a
// binary no policy can list.
func toolsetAllowed(p *payload.Policy, v any) error {
	if len(p.AllowedToolsets) == 0 {
		return nil
	}
	t := payload.ToolsetOf(v)
	switch {
	case t == nil:
		return &PolicyError{Rule: "toolset", Detail: "a version 1 bundle records no toolset, and the policy lists the toolsets allowed to write"}
	case !p.AllowsToolset(t.SHA256):
		return &PolicyError{Rule: "toolset", Detail: fmt.Sprintf("written by toolset %s (sha256 %s), which the policy does not list", t.Version, t.SHA256)}
	}
	return nil
}

// policyFor returns the policy a bundle other than an enrollment or the first policy must be
// checked against (§9.2 step 5).
func (r *replayer) policyFor(c bundle.Chain, h *bundle.Header) (*PolicyRecord, error) {
	if c == bundle.ChainOffline {
		if cur := r.st.Current(); cur != nil {
			return cur, nil
		}
		// Only the approvals of the first policy come before any policy is in force.
		if p := r.st.Pending; p != nil && h.Kind == bundle.KindApproval {
			return &p.PolicyRecord, nil
		}
		return nil, &SignerError{Chain: c, Seq: h.Seq, Signer: h.Signer}
	}
	if pol := r.st.PolicyAt(h.PeerSeq); pol != nil {
		return pol, nil
	}
	return nil, &SignerError{Chain: c, Seq: h.Seq, Signer: h.Signer}
}

// firstPolicy trusts the first policy, by the caller's anchor or on first use, and verifies
// the waiting enrollments with the keys it names (§9.2 step 4).
func (r *replayer) firstPolicy(it *item, v *Verified) error {
	h := &it.b.Header
	id := it.b.ID()
	c := bundle.ChainOffline
	if !r.opts.Anchor.IsZero() && id != r.opts.Anchor {
		return r.stop(c, it, &UntrustedError{Pinned: r.opts.Anchor, Found: id})
	}
	// The header is authentic if it is the pinned one (its ID is its hash); otherwise it is
	// being trusted on first use. Either way the digests it holds guard the payload.
	if !it.opened {
		openPayload(it)
	}
	if it.openErr != nil {
		return r.stop(c, it, it.openErr)
	}
	p, ok := it.payload.(*payload.Policy)
	if !ok {
		return r.stop(c, it, fmt.Errorf("policy bundle without a policy payload"))
	}
	switch {
	case p.Version != 1:
		return r.stop(c, it, &PolicyError{Rule: "version", Detail: fmt.Sprintf("the first policy is version %d", p.Version)})
	case !h.Policy.IsZero():
		return r.stop(c, it, &PolicyError{Rule: "policy-in-force", Detail: "the first policy names a policy it is made under"})
	case h.PeerSeq == 0:
		return r.stop(c, it, &ChainBreakError{Chain: c, Seq: h.Seq, Reason: "the first policy does not reference the online station's enrollment"})
	}
	offKey, err := p.OfflineStation.Parse()
	if err != nil {
		return r.stop(c, it, err)
	}
	if want := p.OfflineStation.ID(); h.Signer != want {
		return r.stop(c, it, &SignerError{Chain: c, Seq: h.Seq, Signer: h.Signer, Want: want})
	}
	if err := it.b.VerifySignature(offKey); err != nil {
		return r.stop(c, it, err)
	}
	rec := PolicyRecord{ID: id, Seq: h.Seq, Created: h.Created, Policy: p}
	for _, wc := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		if err := r.enrollment(wc, &rec); err != nil {
			return r.stop(c, it, err)
		}
	}
	r.st.Anchor = id
	r.res.TrustedOnFirstUse = r.opts.Anchor.IsZero()
	r.st.Pending = &PendingPolicy{PolicyRecord: rec, Expires: h.Expires}
	r.publishKeys()
	v.Payload = p
	r.advance(c, it)
	return r.deliver(v)
}

// enrollment verifies the waiting genesis of chain c against the first policy.
func (r *replayer) enrollment(c bundle.Chain, pol *PolicyRecord) error {
	w := r.st.waiting[c]
	if w == nil {
		return &ChainBreakError{Chain: c, Seq: 1, Reason: "no enrollment before the first policy"}
	}
	want := pol.StationKey(c)
	if w.b.Header.Signer != want {
		return &SignerError{Chain: c, Seq: 1, Signer: w.b.Header.Signer, Want: want}
	}
	k := pol.Policy.OfflineStation
	if c == bundle.ChainOnline {
		k = pol.Policy.OnlineStation
	}
	pub, err := k.Parse()
	if err != nil {
		return err
	}
	if w.verifiedWith != want {
		v, err := bundle.NewVerifier(pub)
		if err != nil {
			return err
		}
		verifyAndOpen(w, v)
	}
	if w.sigErr != nil {
		return w.sigErr
	}
	if !w.opened {
		openPayload(w)
	}
	if w.openErr != nil {
		return w.openErr
	}
	e := w.payload.(*payload.Enrollment)
	if e.Station != c.String() || e.Key.ID() != want {
		return &PolicyError{Rule: "enrollment", Detail: fmt.Sprintf("the %s enrollment does not carry the key the policy names", c)}
	}
	r.st.Enrolled[c.String()] = w.b.ID()
	r.st.waiting[c] = nil
	return r.deliver(&Verified{Entry: w.entry, Bundle: w.b, Payload: e})
}

// nextPolicy records a proposed policy version n+1 (§9.3).
func (r *replayer) nextPolicy(it *item, v *Verified, p *payload.Policy, cur *PolicyRecord) error {
	h := &it.b.Header
	if pend := r.st.Pending; pend != nil && pend.Policy.Version != p.Version {
		return &PolicyError{Rule: "version", Detail: fmt.Sprintf("policy version %d proposed while version %d awaits approval", p.Version, pend.Policy.Version)}
	}
	if p.Version != cur.Policy.Version+1 || p.Previous != cur.ID {
		return &PolicyError{Rule: "version", Detail: fmt.Sprintf("policy version %d does not follow version %d (%s)", p.Version, cur.Policy.Version, cur.ID.Short())}
	}
	v.Policy = nil
	r.st.Pending = &PendingPolicy{PolicyRecord: PolicyRecord{ID: it.b.ID(), Seq: h.Seq, Created: h.Created, Policy: p}, Expires: h.Expires}
	r.publishKeys()
	return nil
}

// approval applies custodian approvals (§9.4).
func (r *replayer) approval(it *item, v *Verified, a *payload.Approval, pol *PolicyRecord) {
	h := &it.b.Header
	r.st.Counts.Approvals++
	add := func(approvers func(bundle.ID) (crypto.PublicKey, bool), have *[]bundle.ID, at map[bundle.ID]uint64, expires int64) {
		if h.Created > expires {
			r.soft(it, v, &ExpiredError{ID: a.Target, What: a.TargetKind, Expires: time.Unix(expires, 0).UTC(), At: h.CreatedTime()})
			return
		}
		for k, s := range a.Signatures {
			pub, ok := approvers(s.Custodian)
			if !ok {
				r.soft(it, v, &SignerError{Chain: h.Chain, Seq: h.Seq, Signer: s.Custodian, Reason: "approval signed by a key that is not a custodian of the policy:"})
				continue
			}
			// Stage 1 may have verified it with the key of the same ID.
			if k >= len(it.approved) || !it.approved[k] {
				if err := bundle.VerifyApproval(pub, h.Version, a.Target, [bundle.SignatureSize]byte(s.Sig)); err != nil {
					r.soft(it, v, fmt.Errorf("approval by %s: %w", s.Custodian.Short(), err))
					continue
				}
			}
			i, found := slices.BinarySearchFunc(*have, s.Custodian, cmpID)
			if found {
				r.soft(it, v, &ReplayError{ID: a.Target, Reason: fmt.Sprintf("custodian %s approved it before", s.Custodian.Short())})
				continue
			}
			*have = slices.Insert(*have, i, s.Custodian)
			if at != nil {
				at[s.Custodian] = h.Seq
			}
		}
	}
	custodianOf := func(ps ...*payload.Policy) func(bundle.ID) (crypto.PublicKey, bool) {
		return func(id bundle.ID) (crypto.PublicKey, bool) {
			for _, p := range ps {
				if p == nil {
					continue
				}
				if r.isCustodian(p, id) {
					// Published when the policy became known; Validate parsed it then.
					pub, ok := r.keys.Load().custodians[id]
					return pub, ok
				}
			}
			return nil, false
		}
	}
	if pend := r.st.Pending; pend != nil && a.Target == pend.ID {
		if a.TargetKind != bundle.KindPolicy.String() {
			r.soft(it, v, &PolicyError{Rule: "approval-target", Detail: "target_kind says key_package for a policy"})
		}
		cur := r.st.Current()
		var curPol *payload.Policy
		if cur != nil {
			curPol = cur.Policy
		}
		add(custodianOf(pend.Policy, curPol), &pend.Approvals, nil, pend.Expires)
		if r.takesEffect(pend.Policy, curPol, pend.Approvals) {
			rec := pend.PolicyRecord
			rec.Effective = h.Seq
			r.st.Policies = append(r.st.Policies, rec)
			r.st.Pending = nil
			r.publishKeys()
		}
		return
	}
	if pkg, ok := r.st.Packages[a.Target]; ok {
		if a.TargetKind != bundle.KindKeyPackage.String() {
			r.soft(it, v, &PolicyError{Rule: "approval-target", Detail: "target_kind says policy for a key package"})
		}
		if pkg.ApprovedAt == nil {
			pkg.ApprovedAt = map[bundle.ID]uint64{}
		}
		add(custodianOf(pol.Policy), &pkg.Approvals, pkg.ApprovedAt, pkg.Expires)
		return
	}
	r.soft(it, v, &PolicyError{Rule: "approval-target", Detail: fmt.Sprintf("approves %s, which is neither a policy awaiting approval nor a key package awaiting upload", a.Target.Short())})
}

func cmpID(a, b bundle.ID) int { return bytes.Compare(a[:], b[:]) }

// takesEffect reports whether the approvers put the proposal next into force (§9.4): the
// threshold of next's custodians, and, if a policy cur is in force, the threshold of cur's
// and that of every region of cur that next changes.
func (r *replayer) takesEffect(next, cur *payload.Policy, approvers []bundle.ID) bool {
	if r.countIn(approvers, next) < next.Threshold {
		return false
	}
	if cur == nil {
		return true
	}
	if r.countIn(approvers, cur) < cur.Threshold {
		return false
	}
	if len(cur.Regions) == 0 {
		return true
	}
	_, _, ok := payload.Unmet(cur.AmendmentQuorums(next), approvers)
	return ok
}

func (r *replayer) countIn(ids []bundle.ID, p *payload.Policy) int {
	n := 0
	for _, id := range ids {
		if r.isCustodian(p, id) {
			n++
		}
	}
	return n
}

// offer records a KEK offer (§9.5).
func (r *replayer) offer(it *item, v *Verified, o *payload.KEKOffer, pol *PolicyRecord) {
	h := &it.b.Header
	r.st.Counts.Offers++
	vault, ok := pol.Policy.Vault(o.Vault)
	if !ok {
		r.soft(it, v, &PolicyError{Rule: "vault", Detail: fmt.Sprintf("KEK in %s, which the policy does not allow", o.Vault)})
	}
	if o.KeySize < pol.Policy.MinKEKBits {
		r.soft(it, v, &PolicyError{Rule: "kek-size", Detail: fmt.Sprintf("KEK of %d bits, the policy requires %d", o.KeySize, pol.Policy.MinKEKBits)})
	}
	if o.Expires <= h.Created {
		r.soft(it, v, &ExpiredError{ID: it.b.ID(), What: "KEK", Expires: time.Unix(o.Expires, 0).UTC(), At: h.CreatedTime()})
	}
	if ok && vault.Kind == payload.VaultManagedHSM && o.Attestation == nil {
		r.soft(it, v, &PolicyError{Rule: "attestation", Detail: "a Managed HSM KEK offer carries no attestation"})
	}
	r.st.Offers[it.b.ID()] = &OfferRecord{ID: it.b.ID(), Seq: h.Seq, Created: h.Created, Expires: h.Expires, Offer: o}
}

// keyPackage records a key package and checks it against its KEK and the policy (§9.6).
func (r *replayer) keyPackage(it *item, v *Verified, k *payload.KeyPackage, pol *PolicyRecord, _ int64) {
	h := &it.b.Header
	p := pol.Policy
	r.st.Counts.Packages++
	kt, _ := k.Target.KeyType() // Validate checked it
	rec := &PackageRecord{ID: it.b.ID(), Seq: h.Seq, Created: h.Created, Expires: h.Expires, Vault: k.Vault,
		KeyName: k.KeyName, KeyType: kt, PublicKey: k.PublicKey, KCV: k.KCV, Offer: k.KEK.Offer, Approvals: []bundle.ID{}, Regions: k.Regions}
	r.st.Packages[rec.ID] = rec

	vault, ok := p.Vault(k.Vault)
	if !ok {
		r.soft(it, v, &PolicyError{Rule: "vault", Detail: fmt.Sprintf("%s is not a vault the policy allows", k.Vault)})
	}
	if !p.AllowsKeyType(kt) {
		r.soft(it, v, &PolicyError{Rule: "key-type", Detail: fmt.Sprintf("%s keys are not allowed", kt)})
	}
	if ok && kt.IsSymmetric() && vault.Kind != payload.VaultManagedHSM {
		r.soft(it, v, &PolicyError{Rule: "key-type", Detail: fmt.Sprintf("%s keys need a Managed HSM, %s is %s", kt, k.Vault, vault.Kind)})
	}
	if ok && len(k.Regions) > 0 && !slices.Contains(k.Regions, vault.Region) {
		r.soft(it, v, &PolicyError{Rule: "residency", Detail: fmt.Sprintf("%s is in region %s; the key may live only in %s", k.Vault, vault.Region, strings.Join(k.Regions, ", "))})
	}
	off, ok := r.st.Offers[k.KEK.Offer]
	if !ok || off.Seq > h.PeerSeq {
		r.soft(it, v, &ChainBreakError{Chain: h.Chain, Seq: h.Seq, Reason: fmt.Sprintf("KEK offer %s is not on the online chain before what this bundle saw", k.KEK.Offer.Short())})
		return
	}
	o := off.Offer
	if o.Vault != k.Vault || o.KID != k.KEK.KID {
		r.soft(it, v, &PolicyError{Rule: "kek", Detail: fmt.Sprintf("KEK offer %s is %s in %s, the package says %s", off.ID.Short(), o.KID, o.Vault, k.KEK.KID)})
	}
	if o.KeySize < p.MinKEKBits {
		r.soft(it, v, &PolicyError{Rule: "kek-size", Detail: fmt.Sprintf("KEK of %d bits, the policy requires %d", o.KeySize, p.MinKEKBits)})
	}
	if s := payload.RSAStrength(o.KeySize); s < kt.Strength() && !p.AllowWeakerKEK {
		r.soft(it, v, &PolicyError{Rule: "kek-strength", Detail: fmt.Sprintf("RSA-%d KEK (%d-bit strength) is weaker than the %s target (%d-bit)", o.KeySize, s, kt, kt.Strength())})
	}
	skew := p.MaxClockSkewSeconds
	if h.Created > off.Expires+skew {
		r.soft(it, v, &ExpiredError{ID: off.ID, What: "KEK offer", Expires: time.Unix(off.Expires, 0).UTC(), At: h.CreatedTime()})
	}
	if h.Created > o.Expires+skew {
		r.soft(it, v, &ExpiredError{ID: off.ID, What: "KEK", Expires: time.Unix(o.Expires, 0).UTC(), At: h.CreatedTime()})
	}
	if f, err := k.File(); err == nil {
		n := len(o.N)
		if rest := len(f.Ciphertext) - n; rest < 16 || rest%8 != 0 {
			r.soft(it, v, &PolicyError{Rule: "byok", Detail: fmt.Sprintf("ciphertext of %d bytes does not fit an RSA-%d KEK", len(f.Ciphertext), o.KeySize)})
		}
	}
}

// receipt matches an upload receipt to its key package (§9.7).
func (r *replayer) receipt(it *item, v *Verified, rc *payload.Receipt, pol *PolicyRecord) {
	h := &it.b.Header
	p := pol.Policy
	r.st.Counts.Receipts++
	pkg, ok := r.st.Packages[rc.Package]
	if !ok {
		r.soft(it, v, &ReplayError{ID: rc.Package, Reason: "a receipt for a key package that is not awaiting upload (unknown, or uploaded before)"})
		return
	}
	if pkg.Seq > h.PeerSeq {
		r.soft(it, v, &ChainBreakError{Chain: h.Chain, Seq: h.Seq, Reason: fmt.Sprintf("receipt for key package %s, which this bundle had not seen", pkg.ID.Short())})
	}
	if rc.Vault != pkg.Vault {
		r.soft(it, v, &PolicyError{Rule: "vault", Detail: fmt.Sprintf("uploaded to %s, packaged for %s", rc.Vault, pkg.Vault)})
	}
	if rc.Outcome == payload.OutcomeRejected {
		pkg.Rejected++
		return
	}
	delete(r.st.Packages, pkg.ID)
	r.st.Counts.Imported++
	// Only approvals the online station had seen count: those at or before its peer seq.
	if len(p.Regions) == 0 {
		if n := r.approvedBy(pkg, p, h.PeerSeq); n < p.Threshold {
			r.soft(it, v, &ApprovalError{Target: pkg.ID, Have: n, Need: p.Threshold, Reason: " at upload"})
		}
	} else if q, n, ok := pkg.Quorum(p, h.PeerSeq); !ok {
		r.soft(it, v, &ApprovalError{Target: pkg.ID, Have: n, Need: q.Threshold, Reason: " at upload, from " + q.String()})
	}
	if h.Created > pkg.Expires+p.MaxClockSkewSeconds {
		r.soft(it, v, &ExpiredError{ID: pkg.ID, What: "key package", Expires: time.Unix(pkg.Expires, 0).UTC(), At: h.CreatedTime()})
	}
	if kid, err := byok.ParseKeyID(rc.KID); err == nil && kid.Name != pkg.KeyName {
		r.soft(it, v, &PolicyError{Rule: "key-name", Detail: fmt.Sprintf("imported as %s, packaged as %s", kid.Name, pkg.KeyName)})
	}
	switch {
	case rc.Outcome == payload.OutcomePublicKeyMismatch:
		r.soft(it, v, &KeyMismatchError{Package: pkg.ID, KID: rc.KID, Reason: "the online station recorded that Key Vault returned another public key"})
	case pkg.KeyType.IsSymmetric():
		// Key Vault returns no key material for oct-HSM keys: nothing to compare.
	case !bytes.Equal(rc.PublicKey, pkg.PublicKey):
		r.soft(it, v, &KeyMismatchError{Package: pkg.ID, KID: rc.KID, Reason: "the receipt's public key is not the packaged key's"})
	}
	// A version 2 receipt lists the versions when Key Vault holds more than one (§9.7 rule
	// 5.5): the package was imported more than once.
	if len(rc.Versions) > 1 {
		r.soft(it, v, &ReplayError{ID: pkg.ID, Reason: fmt.Sprintf("imported more than once: Key Vault holds %d versions carrying its tag (%s)", len(rc.Versions), strings.Join(rc.Versions, ", "))})
	}
}

// approvedBy is pkg.ApprovedBy(p, upTo) with p's custodian IDs computed once.
func (r *replayer) approvedBy(pkg *PackageRecord, p *payload.Policy, upTo uint64) int {
	n := 0
	for _, a := range pkg.Approvals {
		if seq, ok := pkg.ApprovedAt[a]; ok && seq > upTo {
			continue
		}
		if r.isCustodian(p, a) {
			n++
		}
	}
	return n
}

// finish checks what can only be checked at the end (§9.2 step 9).
func (r *replayer) finish() error {
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		rem := r.opts.Remembered.Of(c)
		if h := r.st.Heads.Of(c); rem.Seq > h.Seq {
			return r.stop(c, nil, &RollbackError{Chain: c, Remembered: rem.Seq, Found: h.Seq, Reason: "the medium holds fewer bundles than were seen before"})
		}
	}
	r.res.Complete = true
	return nil
}
