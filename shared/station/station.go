// Package station is what both stations do with their own chain: keep its head, the other
// chain's latest verified head and the trusted policy in the ledger, replay the medium against
// them, and append bundles so that a crash at any point converges.
//
// # Ledger buckets
//
// Each station's store adds its own buckets; this package owns one:
//
//	station/
//	  head        JSON chain.Head: the last bundle of this station's chain, on the medium
//	  peer        JSON chain.Head: the latest verified bundle of the other chain
//	  anchor      32 bytes: ID of policy version 1, the trust anchor
//	  pending     sealed bundles, one after the other, that may or may not be on the medium
//	              yet (one journal cycle; a bundle's header gives its length)
//	  checkpoint  JSON chain.State of the last replay that verified the medium without a
//	              finding, for ReplayState
//
// and station-archive, a copy of every bundle this station wrote or verified (archive.go).
// Every command that opens a medium first compares its listing with them (Identity, in
// identity.go): another ceremony's stick, an older copy and a forked one are refused before
// anything is written.
//
// # Appending, and what a crash leaves behind
//
// Append seals the bundle (the HSM or key file signs it), records it in station/pending in
// one transaction, writes it to the medium (atomic write, read back), then in a second
// transaction advances station/head, applies the caller's own ledger changes and clears
// pending. A crash before the first transaction leaves nothing; between the two, the ledger
// holds the exact bytes, and Recover, which every command runs first, either finds them on the
// medium or writes them, and then applies them. So the medium never holds half a bundle, and
// the ledger and the medium agree after any rerun.
//
// AppendBatch does the same for several bundles in one journal cycle (group commit): one
// pending record holding them all, each file written, synced and renamed, one sync per
// folder, one commit. A crash anywhere converges the same way: Recover finishes the whole
// batch. Only a power cut between the renames and the folder sync can leave some of the
// batch's files without the others (a gap a read-only replay reports as a chain break) until
// the next command that writes completes the batch from the ledger.
//
// # Replaying
//
// Replay verifies the whole medium. ReplayState is for commands that need only the state
// (the policy in force, the offers, the packages awaiting upload): it resumes from the
// checkpoint of the last clean replay, so it reads only the bundles written since, after
// checking what it skips: the medium's listing up to the checkpoint must name exactly the
// bundles the archive holds there, and the checkpoint's heads must be on it. Commands that
// show every bundle (verify, log, audit) replay everything.
package station

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

var (
	bucketStation = []byte("station")
	keyHead       = []byte("head")
	keyPeer       = []byte("peer")
	keyAnchor     = []byte("anchor")
	keyPending    = []byte("pending")
	keyCheckpoint = []byte("checkpoint")
)

// Migration creates the station bucket; stores list it among their migrations.
func Migration(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists(bucketStation)
	return err
}

// ErrForeignBundles means the medium holds bundles of this station's chain that this ledger
// did not write: another ledger is writing the same chain, or this ledger was restored from
// an old copy.
var ErrForeignBundles = errors.New("the medium holds bundles of this station's chain that this ledger did not write")

// ErrNoAnchor means no policy has been trusted yet.
var ErrNoAnchor = errors.New("no policy is trusted yet")

// Station is one station's view of its chain.
type Station struct {
	Chain bundle.Chain
	DB    *bolt.DB
	Media *media.Media
	Log   *slog.Logger
	// LockWait is how long a write lock this station takes on a medium (Open's, Restore's)
	// waits for another process that holds it (the --wait flag); 0 fails at once.
	LockWait time.Duration
	// Hook, when set, is called at named points of Append and AppendBatch
	// ("pending-recorded", "media-written", "committed", once per journal cycle) after the
	// crash point of the same name.
	Hook func(point string)

	// listed is what the last Identity learnt of Media's listing, which holds reuses instead
	// of listing the medium again.
	listed listing

	mu sync.Mutex // one Append at a time: a chain has one head
	// maxSkew is the clock tolerance of the policy in force, known once a replay of this
	// process has found one (skewKnown); AppendBatch checks its clock against it.
	maxSkew   int64
	skewKnown bool
	// policies are the policies this process verified or wrote, by ID (toolset.go).
	policies map[bundle.ID]*payload.Policy
}

// SetMaxSkew sets the clock tolerance AppendBatch checks against, for the writer of the
// first policy (which no replay has found yet).
func (s *Station) SetMaxSkew(d time.Duration) {
	s.maxSkew, s.skewKnown = int64(d/time.Second), true
}

// CheckWrite makes the checks AppendBatch makes before it writes under policy at now (the
// clock, and whether the policy allows this binary to write), for a command to make before it
// acts on the world (a KEK created or a key imported in Key Vault) whose record it then could
// not write.
func (s *Station) CheckWrite(now time.Time, policy bundle.ID) error {
	if err := s.CheckClock(now); err != nil {
		return err
	}
	ts, err := Toolset()
	if err != nil {
		return err
	}
	return s.checkToolset(policy, ts)
}

// CheckClock is the clock check AppendBatch makes, for a command to make before it acts on
// the world (an import into Key Vault) whose record it then could not write.
func (s *Station) CheckClock(now time.Time) error {
	st, err := s.Load()
	if err != nil {
		return err
	}
	return s.checkClock(chain.Position{Chain: s.Chain, Head: st.Head, Peer: st.Peer}, now)
}

// checkClock refuses to write at now, a time the replay would report as clock skew: more
// than the policy's tolerance before the other station's latest bundle, which the new bundle
// says it has seen (SPEC.md §9). Nothing is written, and the operator learns it now rather
// than from the other station's verify.
func (s *Station) checkClock(pos chain.Position, now time.Time) error {
	if !s.skewKnown || pos.Peer.Seq == 0 || now.Unix()+s.maxSkew >= pos.Peer.Created {
		return nil
	}
	peer := time.Unix(pos.Peer.Created, 0).UTC()
	err := &chain.ClockSkewError{Chain: s.Chain, Seq: pos.Head.Seq + 1, Skew: peer.Sub(now.Truncate(time.Second)), Max: time.Duration(s.maxSkew) * time.Second,
		Reason: fmt.Sprintf("would be created before %s seq %d, which it saw,", s.Chain.Other(), pos.Peer.Seq)}
	return &ClockError{Err: fmt.Errorf("%w: %w", chain.ErrClockSkew, err), Now: now, Peer: peer}
}

func (s *Station) hit(point string) {
	crashpoint.Hit(point)
	if s.Hook != nil {
		s.Hook(point)
	}
}

// State is the station's ledger view.
type State struct {
	Head    chain.Head
	Peer    chain.Head
	Anchor  bundle.ID
	Pending bool
}

// Heads returns the heads to remember when replaying: own chain and the other chain.
func (st State) Heads(c bundle.Chain) chain.Heads {
	var h chain.Heads
	*h.Of(c) = st.Head
	*h.Of(c.Other()) = st.Peer
	return h
}

// Load reads the station's ledger state.
func (s *Station) Load() (State, error) {
	var st State
	err := s.DB.View(func(tx *bolt.Tx) error {
		var err error
		st, err = s.load(tx)
		return err
	})
	return st, err
}

func (s *Station) load(tx *bolt.Tx) (State, error) {
	var st State
	b := tx.Bucket(bucketStation)
	if b == nil {
		return st, errors.New("ledger has no station bucket")
	}
	if v := b.Get(keyHead); v != nil {
		if err := json.Unmarshal(v, &st.Head); err != nil {
			return st, fmt.Errorf("ledger station/head: %w", err)
		}
	}
	if v := b.Get(keyPeer); v != nil {
		if err := json.Unmarshal(v, &st.Peer); err != nil {
			return st, fmt.Errorf("ledger station/peer: %w", err)
		}
	}
	if v := b.Get(keyAnchor); len(v) == len(st.Anchor) {
		copy(st.Anchor[:], v)
	}
	st.Pending = b.Get(keyPending) != nil
	return st, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, j)
}

// SetAnchor records the trusted policy (version 1). It refuses to replace a different one.
func SetAnchor(tx *bolt.Tx, id bundle.ID) error {
	b := tx.Bucket(bucketStation)
	if v := b.Get(keyAnchor); v != nil && !bytes.Equal(v, id[:]) {
		return ErrOtherAnchor
	}
	return b.Put(keyAnchor, id[:])
}

// SetPeer records the latest verified head of the other chain, refusing to go backwards.
func SetPeer(tx *bolt.Tx, h chain.Head) error {
	b := tx.Bucket(bucketStation)
	var cur chain.Head
	if v := b.Get(keyPeer); v != nil {
		if err := json.Unmarshal(v, &cur); err != nil {
			return err
		}
	}
	if h.Seq < cur.Seq {
		return fmt.Errorf("%w: the other chain's head would go back from %d to %d", chain.ErrRollback, cur.Seq, h.Seq)
	}
	return putJSON(b, keyPeer, h)
}

// Apply is a caller's ledger change made in the same transaction that records a bundle.
type Apply func(tx *bolt.Tx, b *bundle.Bundle) error

// Recover finishes an Append that a crash interrupted. apply is called for the pending
// bundle exactly as Append would have; callers pass the function that derives their ledger
// changes from the bundle alone (or nil if they have none).
func (s *Station) Recover(apply Apply) error {
	var pending []byte
	if err := s.DB.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketStation).Get(keyPending); v != nil {
			pending = bytes.Clone(v)
		}
		return nil
	}); err != nil {
		return err
	}
	if pending == nil {
		return nil
	}
	bs, err := parsePending(pending)
	if err != nil {
		return fmt.Errorf("ledger station/pending: %w", err)
	}
	for _, b := range bs {
		s.Log.Warn("finishing an interrupted write", "chain", s.Chain.String(), "seq", b.Header.Seq, "id", b.ID().Short())
	}
	if err := s.ensureOnMedia(bs); err != nil {
		return err
	}
	return s.commit(bs, func(int) Apply { return apply })
}

// parsePending splits station/pending into its bundles.
func parsePending(data []byte) ([]*bundle.Bundle, error) {
	var bs []*bundle.Bundle
	for len(data) > 0 {
		h, err := bundle.ParseHeader(data)
		if err != nil {
			return nil, err
		}
		n := bundle.HeaderSize + bundle.SignatureSize + int(h.StoredLen)
		if n > len(data) {
			return nil, fmt.Errorf("truncated bundle %d", len(bs)+1)
		}
		b, err := bundle.Parse(data[:n])
		if err != nil {
			return nil, err
		}
		bs = append(bs, b)
		data = data[n:]
	}
	if len(bs) == 0 {
		return nil, errors.New("empty")
	}
	return bs, nil
}

// ensureOnMedia writes the bundles of bs that the medium does not hold yet, together.
func (s *Station) ensureOnMedia(bs []*bundle.Bundle) error {
	var missing []*bundle.Bundle
	for _, b := range bs {
		e := media.Entry{Chain: b.Header.Chain, Seq: b.Header.Seq, ID: b.ID(), Path: media.Path(b.Header.Chain, b.Header.Seq, b.ID())}
		got, err := s.Media.Read(e)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, b)
		case err != nil:
			return fmt.Errorf("%w: read back %s: %v", ErrWriteMedium, e.Path, err)
		case !bytes.Equal(got, b.Marshal()):
			// Same ID, other signature bytes: the same content, signed again. The file on
			// the medium is authoritative; keep ours out.
			s.Log.Warn("the medium has the bundle with another signature; keeping the medium's", "id", b.ID().Short())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := s.Media.WriteAll(missing); err != nil {
		return mediaErr(err)
	}
	return nil
}

func mediaErr(err error) error {
	var rb *media.ReadBackError
	if errors.As(err, &rb) {
		return &WriteError{Err: err}
	}
	return &WriteError{Err: fmt.Errorf("write to the medium: %w", err)}
}

// commit records bs in the ledger in one transaction: the new head, the caller's change for
// each bundle (applyOf(i) for bs[i]), and the end of the journal cycle.
func (s *Station) commit(bs []*bundle.Bundle, applyOf func(i int) Apply) error {
	last := bs[len(bs)-1]
	err := s.DB.Update(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketStation)
		if err := putJSON(sb, keyHead, chain.Head{Seq: last.Header.Seq, ID: last.ID(), Created: last.Header.Created}); err != nil {
			return err
		}
		if err := archivePut(tx, bs); err != nil {
			return err
		}
		for i, b := range bs {
			if apply := applyOf(i); apply != nil {
				if err := apply(tx, b); err != nil {
					return fmt.Errorf("bundle %s: %w", b.ID().Short(), err)
				}
			}
		}
		return sb.Delete(keyPending)
	})
	if err != nil {
		if len(bs) == 1 {
			return fmt.Errorf("record bundle %s in the ledger: %w", last.ID().Short(), err)
		}
		return fmt.Errorf("record %d bundles in the ledger: %w", len(bs), err)
	}
	s.hit("committed")
	return nil
}

// Position returns where the next bundle of this station goes, under policy (zero for an
// enrollment or the first policy).
func (s *Station) Position(policy bundle.ID) (chain.Position, error) {
	st, err := s.Load()
	if err != nil {
		return chain.Position{}, err
	}
	if st.Pending {
		return chain.Position{}, errors.New("an interrupted write is pending: run Recover first")
	}
	return chain.Position{Chain: s.Chain, Head: st.Head, Peer: st.Peer, Policy: policy}, nil
}

// CheckMedia verifies that the medium's copy of this station's chain ends exactly at the
// ledger's head: not shorter (a rollback, or another stick) and not longer (bundles this
// ledger did not write).
func (s *Station) CheckMedia() error {
	st, err := s.Load()
	if err != nil {
		return err
	}
	h, ok, err := s.Media.Head(s.Chain)
	if err != nil {
		return fmt.Errorf("%w: list the medium: %v", ErrUnreadable, err)
	}
	switch {
	case !ok && st.Head.Seq == 0:
		return nil
	case !ok || h.Seq < st.Head.Seq:
		got := uint64(0)
		if ok {
			got = h.Seq
		}
		return &DisagreeError{Err: &chain.RollbackError{Chain: s.Chain, Remembered: st.Head.Seq, Found: got, Reason: "the medium lacks bundles this station wrote"}}
	case h.Seq > st.Head.Seq:
		return &DisagreeError{Err: fmt.Errorf("%w (%s chain seq %d > %d)", ErrForeignBundles, s.Chain, h.Seq, st.Head.Seq)}
	case h.ID != st.Head.ID:
		return &DisagreeError{Err: &chain.ForkError{Chain: s.Chain, Seq: h.Seq, A: st.Head.ID, B: h.ID, Reason: "the medium's bundle is not the one this station wrote"}}
	}
	return nil
}

// Append seals v as the next bundle of this station's chain at pos, writes it to the medium,
// and records it with apply, crash-safely (see the package doc). pos comes from Position.
func (s *Station) Append(ctx context.Context, pos chain.Position, v any, signer crypto.Signer, now time.Time, lifetime time.Duration, apply Apply) (*bundle.Bundle, error) {
	bs, err := s.AppendBatch(ctx, pos, []Item{{Payload: v, Apply: apply}}, signer, now, lifetime)
	if err != nil {
		return nil, err
	}
	return bs[0], nil
}

// Item is one bundle of AppendBatch: its payload and the caller's ledger change for it.
type Item struct {
	Payload any
	Apply   Apply
}

// AppendBatch seals the payloads of items as the next bundles of this station's chain from
// pos on, all created at now, writes them to the medium and records them, in one journal
// cycle (see the package doc): one pending record, one sync per folder, one commit, in which
// each item's Apply runs for its bundle, in order. It returns the bundles in order; on an
// error none is recorded as written (Recover finishes those the journal holds). An empty
// batch does nothing.
func (s *Station) AppendBatch(ctx context.Context, pos chain.Position, items []Item, signer crypto.Signer, now time.Time, lifetime time.Duration) ([]*bundle.Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, nil
	}
	if err := s.checkClock(pos, now); err != nil {
		return nil, err
	}
	// Every bundle records the binary that writes it, in the newest format version (§7.7);
	// a policy that lists the toolsets allowed to write must list this one.
	ts, err := Toolset()
	if err != nil {
		return nil, err
	}
	if err := s.checkToolset(pos.Policy, ts); err != nil {
		return nil, err
	}
	bs := make([]*bundle.Bundle, 0, len(items))
	var journal []byte
	at := pos
	at.Version, at.Toolset = bundle.Version, &ts
	for _, it := range items {
		d, err := chain.Draft(at, it.Payload, now, lifetime)
		if err != nil {
			return nil, err
		}
		b, err := bundle.Seal(d, signer, nil)
		if err != nil {
			return nil, fmt.Errorf("sign bundle: %w", err)
		}
		bs = append(bs, b)
		if p, ok := it.Payload.(*payload.Policy); ok {
			s.learnPolicy(b.ID(), p)
		}
		journal = append(journal, b.Marshal()...)
		at.Head = chain.Head{Seq: b.Header.Seq, ID: b.ID(), Created: b.Header.Created}
	}
	if err := s.DB.Update(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketStation)
		if sb.Get(keyPending) != nil {
			return errors.New("an interrupted write is pending")
		}
		cur, err := s.load(tx)
		if err != nil {
			return err
		}
		if cur.Head != pos.Head {
			return fmt.Errorf("the chain moved while the bundle was prepared (head %d, expected %d)", cur.Head.Seq, pos.Head.Seq)
		}
		return sb.Put(keyPending, journal)
	}); err != nil {
		return nil, err
	}
	s.hit("pending-recorded")
	if err := s.ensureOnMedia(bs); err != nil {
		return nil, err
	}
	s.hit("media-written")
	if err := s.commit(bs, func(i int) Apply { return items[i].Apply }); err != nil {
		return nil, err
	}
	for _, b := range bs {
		s.Log.Info("bundle written", "chain", s.Chain.String(), "seq", b.Header.Seq, "kind", b.Header.Kind.String(), "id", b.ID().Short(), "path", media.Path(b.Header.Chain, b.Header.Seq, b.ID()))
	}
	return bs, nil
}

// Replay verifies the medium against the ledger: the trusted policy (if any), this chain's
// head, and the other chain's last verified head. On success it records the other chain's new
// head. onBundle may be nil.
func (s *Station) Replay(ctx context.Context, onBundle func(*chain.Verified) error) (*chain.Result, error) {
	st, err := s.Load()
	if err != nil {
		return nil, err
	}
	col, err := s.newCollector(st)
	if err != nil {
		return nil, err
	}
	res, err := chain.Replay(ctx, s.Media, s.replayOptions(st, col.wrap(onBundle)))
	return s.replayed(st, col, res, err)
}

// ReplayState is Replay for commands that need only the resulting state, without seeing
// each bundle: it resumes from the ledger's checkpoint (the state of the last replay that
// verified the medium without a finding), so that it verifies only the bundles written since.
// Without a usable checkpoint, or if the medium's listing up to the checkpoint is not exactly
// what the archive holds there (a bundle missing, added or renamed), it replays everything, as Replay does (which then reports why). Its result's
// findings, warnings and counts of verified bundles concern the replayed part; its state is
// the whole medium's, as Replay's.
func (s *Station) ReplayState(ctx context.Context) (*chain.Result, error) {
	st, err := s.Load()
	if err != nil {
		return nil, err
	}
	cp, err := s.checkpoint()
	if err != nil || cp == nil || st.Anchor.IsZero() || cp.Anchor != st.Anchor || !s.holds(cp.Heads) {
		if err != nil {
			s.Log.Warn("replaying the whole medium: the ledger's checkpoint is unreadable", "err", err)
		}
		return s.Replay(ctx, nil)
	}
	col, err := s.newCollector(st)
	if err != nil {
		return nil, err
	}
	opts := s.replayOptions(st, col.wrap(nil))
	opts.Resume = cp
	res, err := chain.Replay(ctx, s.Media, opts)
	return s.replayed(st, col, res, err)
}

func (s *Station) replayOptions(st State, onBundle func(*chain.Verified) error) chain.Options {
	return chain.Options{
		Anchor:     st.Anchor,
		Remembered: st.Heads(s.Chain),
		OnBundle:   onBundle,
		Warn: func(w media.Warning) {
			s.Log.Warn("ignoring a file on the medium", "path", w.Path, "reason", w.Reason)
		},
	}
}

// replayed finishes Replay and ReplayState: it checks that the medium ends where the ledger
// says this station's chain ends, records the other chain's new head, and keeps the state as
// the checkpoint if the replay found nothing.
func (s *Station) replayed(st State, col *collector, res *chain.Result, err error) (*chain.Result, error) {
	if err != nil {
		return res, VerifyErr(err)
	}
	if err := s.CheckMedia(); err != nil {
		return res, err
	}
	if cur := res.State.Current(); cur != nil {
		s.maxSkew, s.skewKnown = cur.Policy.MaxClockSkewSeconds, true
	}
	s.learnPolicies(res.State)
	peer := *res.State.Heads.Of(s.Chain.Other())
	if err := col.fill(s.Media, st.Head.Seq, max(peer.Seq, st.Peer.Seq)); err != nil {
		return res, err
	}
	keep := res.Complete && len(res.Findings) == 0 && res.State.Current() != nil && !res.State.Anchor.IsZero() && res.State.Anchor == st.Anchor
	if peer.Seq <= st.Peer.Seq && !keep && len(col.peer)+len(col.mine) == 0 {
		return res, nil
	}
	err = s.DB.Update(func(tx *bolt.Tx) error {
		if err := col.flushTx(tx); err != nil {
			return err
		}
		if peer.Seq > st.Peer.Seq {
			if err := SetPeer(tx, peer); err != nil {
				return err
			}
		}
		if keep {
			return putCheckpoint(tx, res.State)
		}
		return nil
	})
	return res, err
}

// checkpoint returns the ledger's checkpoint, or nil if there is none.
func (s *Station) checkpoint() (*chain.State, error) {
	var cp *chain.State
	err := s.DB.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStation).Get(keyCheckpoint)
		if v == nil {
			return nil
		}
		cp = new(chain.State)
		if err := json.Unmarshal(v, cp); err != nil {
			return fmt.Errorf("ledger station/checkpoint: %w", err)
		}
		return nil
	})
	if err != nil || cp == nil || cp.Current() == nil {
		return nil, err
	}
	return cp, nil
}

// putCheckpoint records st as the checkpoint unless the one recorded ends at the same heads.
func putCheckpoint(tx *bolt.Tx, st *chain.State) error {
	b := tx.Bucket(bucketStation)
	if v := b.Get(keyCheckpoint); v != nil {
		var old struct {
			Heads chain.Heads `json:"heads"`
		}
		if json.Unmarshal(v, &old) == nil && old.Heads == st.Heads {
			return nil
		}
	}
	return putJSON(b, keyCheckpoint, st)
}

// holds reports whether the medium holds what a replay from a checkpoint at heads skips:
// at each head's place the bundle the head names, and, by its listing, exactly the bundles
// this station archived at every seq up to there (no gap, no other bundle, no second one at
// a seq). Without a complete archive up to the heads it reports false (a full replay then
// verifies everything, and fills the archive). The listing is Identity's, when it listed this
// medium (every open with a medium runs it); bundles written since are beyond the heads.
func (s *Station) holds(heads chain.Heads) bool {
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		h := heads.Of(c)
		if h.Seq == 0 {
			continue
		}
		if !s.listingMatches(c, h.Seq) {
			return false
		}
		e, err := s.Media.Find(c, h.Seq)
		if err != nil {
			return false
		}
		data, err := s.Media.Read(e)
		if err != nil || len(data) < bundle.HeaderSize || bundle.IDOfHeader(data[:bundle.HeaderSize]) != h.ID {
			return false
		}
	}
	return true
}

// listing is what Identity learnt of a medium's listing: for each chain, the n up to which it
// lists exactly one bundle at each seq from 1, each named with the ID the archive holds there.
type listing struct {
	m       *media.Media
	matched map[bundle.Chain]uint64
}

// prefix follows a chain's listing, one entry at a time in seq order, and keeps the n of
// listing.matched.
type prefix struct {
	n      uint64
	broken bool
}

// see takes the next entry at seq, whose ID the archive holds (or not, ok false).
func (p *prefix) see(seq uint64, archived bool) {
	switch {
	case p.broken:
	case archived && seq == p.n+1:
		p.n = seq
	default:
		// A gap, another ID, or a second bundle at a seq (then the seq before is the last
		// one that is whole).
		p.n = min(p.n, seq-1)
		p.broken = true
	}
}

// listingMatches reports whether the medium lists, for chain c, exactly one bundle at each
// seq from 1 to n, each named with the ID this station archived there.
func (s *Station) listingMatches(c bundle.Chain, n uint64) bool {
	ok := true
	err := s.DB.View(func(tx *bolt.Tx) error {
		h, err := upto(tx)
		if err != nil || h.Of(c).Seq < n {
			ok = false
			return err
		}
		if s.listed.m == s.Media && s.listed.matched != nil {
			ok = s.listed.matched[c] >= n
			return nil
		}
		ab := tx.Bucket(bucketArchive)
		var p prefix
		for e, err := range s.Media.Entries(c, 1, nil) {
			if err != nil {
				return err
			}
			if e.Seq > n {
				break
			}
			id, _ := archivedID(ab, c, e.Seq)
			p.see(e.Seq, id == e.ID)
		}
		ok = p.n >= n
		return nil
	})
	return ok && err == nil
}

// VerifyErr marks a replay failure as such: a *ReplayError wrapping err (nil stays nil). The
// command line reports malformed or unreadable bundles as 4, everything else as 3, unless
// err carries a code of its own.
func VerifyErr(err error) error {
	if err == nil {
		return nil
	}
	return &ReplayError{Err: err}
}
