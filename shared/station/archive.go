package station

// The station's archive: its own copy of the medium's bundles.
//
// A station keeps every bundle it wrote and every bundle of the other chain it verified, in
// the ledger bucket station-archive, written in the same transactions that advance the heads
// (or, for a long replay, in transactions of a few MiB each just before: a bundle that was
// verified is kept even if the replay then stops at a later one). The archive serves three
// things: telling an older copy of the stick from a forked one (the IDs it saw at each seq),
// checking what ReplayState skips (the listing against the IDs), and rebuilding a lost stick
// (Restore).
//
//	station-archive/
//	  <chain byte><seq, 8 bytes big-endian>   the bundle's bytes, as on the medium
//	  upto                                     JSON chain.Heads with seq only: for each chain,
//	                                           the seq up to which the archive holds every
//	                                           bundle (a ledger written before the archive
//	                                           existed fills it at its next full replay)

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"iter"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

var (
	bucketArchive = []byte("station-archive")
	keyUpto       = []byte("upto")
)

// archiveFlush is the size of bundles a replay collects before it writes them to the archive.
const archiveFlush = 4 << 20

func archiveKey(c bundle.Chain, seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = byte(c)
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

// upto returns, for each chain, the seq up to which the archive is complete.
func upto(tx *bolt.Tx) (chain.Heads, error) {
	var h chain.Heads
	b := tx.Bucket(bucketArchive)
	if b == nil {
		return h, nil
	}
	if v := b.Get(keyUpto); v != nil {
		if err := json.Unmarshal(v, &h); err != nil {
			return h, fmt.Errorf("ledger %s/upto: %w", bucketArchive, err)
		}
	}
	return h, nil
}

// archivePut keeps bs in the archive (bundles it holds already are left as they are) and
// advances each chain's complete prefix over what it now holds.
func archivePut(tx *bolt.Tx, bs []*bundle.Bundle) error {
	if len(bs) == 0 {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketArchive)
	if err != nil {
		return err
	}
	for _, x := range bs {
		k := archiveKey(x.Header.Chain, x.Header.Seq)
		if b.Get(k) != nil {
			continue
		}
		if err := b.Put(k, x.Marshal()); err != nil {
			return err
		}
	}
	h, err := upto(tx)
	if err != nil {
		return err
	}
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		u := h.Of(c)
		for b.Get(archiveKey(c, u.Seq+1)) != nil {
			u.Seq++
		}
	}
	return putJSON(b, keyUpto, h)
}

// ArchiveTx keeps bs, bundles the caller verified or wrote, in the archive within tx.
func ArchiveTx(tx *bolt.Tx, bs []*bundle.Bundle) error { return archivePut(tx, bs) }

// archivedID returns the ID of the archived bundle of chain c at seq.
func archivedID(b *bolt.Bucket, c bundle.Chain, seq uint64) (bundle.ID, bool) {
	if b == nil {
		return bundle.ID{}, false
	}
	v := b.Get(archiveKey(c, seq))
	if len(v) < bundle.HeaderSize {
		return bundle.ID{}, false
	}
	return bundle.IDOfHeader(v[:bundle.HeaderSize]), true
}

// Archived yields the archived bundles of chain c in seq order, each parsed. It reads the
// ledger in one read transaction per bundle, so that a caller may write while it iterates.
func (s *Station) Archived(c bundle.Chain) iter.Seq2[*bundle.Bundle, error] {
	return func(yield func(*bundle.Bundle, error) bool) {
		next := archiveKey(c, 0)
		for {
			var data []byte
			err := s.DB.View(func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketArchive)
				if b == nil {
					return nil
				}
				k, v := b.Cursor().Seek(next)
				if k == nil || len(k) != 9 || k[0] != byte(c) {
					return nil
				}
				data = bytes.Clone(v)
				next = archiveKey(c, binary.BigEndian.Uint64(k[1:])+1)
				return nil
			})
			if err != nil {
				yield(nil, err)
				return
			}
			if data == nil {
				return
			}
			x, err := bundle.Parse(data)
			if err != nil {
				err = fmt.Errorf("ledger %s: %w", bucketArchive, err)
			}
			if !yield(x, err) || err != nil {
				return
			}
		}
	}
}

// collector gathers the bundles a replay verified that the archive lacks. The other chain's
// are written in transactions of about archiveFlush bytes as the replay goes (each was
// verified against the heads this station saw); this station's own are kept until the
// replay has checked that the medium's chain ends at the ledger's head (which makes them the
// ones it wrote), and only those up to that head. The rest go in the transaction that
// records the replay (flushTx). Only a ledger written before the archive existed has own
// bundles to collect.
type collector struct {
	s    *Station
	own  uint64      // this station's head when the replay began
	from chain.Heads // the archive was complete up to these seqs when the replay began
	peer []*bundle.Bundle
	mine []*bundle.Bundle
	size int
}

func (s *Station) newCollector(st State) (*collector, error) {
	col := &collector{s: s, own: st.Head.Seq}
	err := s.DB.View(func(tx *bolt.Tx) error {
		var err error
		col.from, err = upto(tx)
		return err
	})
	return col, err
}

// wrap returns onBundle with the collection added.
func (col *collector) wrap(onBundle func(*chain.Verified) error) func(*chain.Verified) error {
	return func(v *chain.Verified) error {
		h := v.Bundle.Header
		switch {
		case h.Seq <= col.from.Of(h.Chain).Seq:
		case h.Chain == col.s.Chain:
			if h.Seq <= col.own {
				col.mine = append(col.mine, v.Bundle)
			}
		default:
			col.peer = append(col.peer, v.Bundle)
			col.size += len(v.Bundle.Marshal())
			if col.size >= archiveFlush {
				err := col.s.DB.Update(func(tx *bolt.Tx) error {
					err := archivePut(tx, col.peer)
					col.peer, col.size = nil, 0
					return err
				})
				if err != nil {
					return fmt.Errorf("keep verified bundles in the ledger: %w", err)
				}
			}
		}
		if onBundle != nil {
			return onBundle(v)
		}
		return nil
	}
}

// flushTx writes the collected bundles in tx.
func (col *collector) flushTx(tx *bolt.Tx) error {
	if err := archivePut(tx, col.peer); err != nil {
		return err
	}
	if err := archivePut(tx, col.mine); err != nil {
		return err
	}
	col.peer, col.mine, col.size = nil, nil, 0
	return nil
}

// fillMax bounds how many bundles fill reads from the medium.
const fillMax = 16

// fill adds to the collection the bundles of each chain up to its head (own, of this
// station's chain; peer, of the other) that the archive lacks and the replay did not deliver:
// genesis enrollments, which a replay holds until a policy verifies them (and so never
// delivers before the first policy), read from m after the replay checked their place in
// their chain. It reads at most fillMax of them; a later full replay delivers the rest.
func (col *collector) fill(m *media.Media, own, peer uint64) error {
	got := map[bundle.Chain]map[uint64]bool{col.s.Chain: {}, col.s.Chain.Other(): {}}
	for _, b := range append(slices.Clone(col.mine), col.peer...) {
		got[b.Header.Chain][b.Header.Seq] = true
	}
	n := 0
	for c, head := range map[bundle.Chain]uint64{col.s.Chain: own, col.s.Chain.Other(): peer} {
		for seq := col.from.Of(c).Seq + 1; seq <= head && n < fillMax; seq++ {
			if got[c][seq] {
				continue
			}
			n++
			e, err := m.Find(c, seq)
			if err != nil {
				return nil // the replay verified the chain: a later one will say what changed
			}
			data, err := m.Read(e)
			if err != nil {
				return nil
			}
			b, err := bundle.Parse(data)
			if err != nil || b.ID() != e.ID {
				return nil
			}
			if c == col.s.Chain {
				col.mine = append(col.mine, b)
			} else {
				col.peer = append(col.peer, b)
			}
		}
	}
	return nil
}
