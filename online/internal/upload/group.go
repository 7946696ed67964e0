package upload

import (
	"context"
	"fmt"
	"sync"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// BatchReceipts is a Receipts that can also write several receipts in one step: one journal
// cycle of the station (station.AppendBatch), whose fsyncs then serve them all. WriteBatch
// writes all of rs or none, and returns their IDs in order.
type BatchReceipts interface {
	Receipts
	WriteBatch(ctx context.Context, rs []*payload.Receipt) ([]bundle.ID, error)
}

// group commits receipts: the receipts of the uploads that finish while a batch is being
// written go together in the next batch. A receipt that finds nothing being written is
// written at once, alone; under load, batches grow to the number of uploads that finish
// during one journal cycle, at most the number of workers. Each Write still returns only
// once its receipt is on the medium and in the ledger.
type group struct {
	w     BatchReceipts
	mu    sync.Mutex
	queue []*queued
	busy  bool // a batch is being written
	// failed is the error of the first batch that could not be written. The station then
	// holds that batch as an interrupted write, which only the next run finishes, so every
	// later receipt of this run fails with the same error (and its exit code) at once.
	failed error
}

// queued is a receipt waiting in the group.
type queued struct {
	r    *payload.Receipt
	id   bundle.ID
	err  error
	wake chan bool // true: lead the next batch; false: written (see id and err)
}

// Write implements Receipts.
func (g *group) Write(ctx context.Context, r *payload.Receipt) (bundle.ID, error) {
	// A receipt that cannot be written must not fail the others of its batch.
	if err := r.Validate(); err != nil {
		return bundle.ID{}, fmt.Errorf("receipt for %s: %w", r.Package.Short(), err)
	}
	q := &queued{r: r, wake: make(chan bool, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, q)
	if g.busy {
		g.mu.Unlock()
		if lead := <-q.wake; !lead {
			return q.id, q.err
		}
		g.mu.Lock()
	}
	g.busy = true
	batch := g.queue
	g.queue = nil
	failed := g.failed
	g.mu.Unlock()

	rs := make([]*payload.Receipt, len(batch))
	for i, b := range batch {
		rs[i] = b.r
	}
	var ids []bundle.ID
	err := failed
	if err == nil {
		ids, err = g.w.WriteBatch(ctx, rs)
		if err == nil && len(ids) != len(rs) {
			err = fmt.Errorf("wrote %d receipts of %d", len(ids), len(rs))
		}
	}
	for i, b := range batch {
		if err != nil {
			b.err = err
		} else {
			b.id = ids[i]
		}
		if b != q {
			b.wake <- false
		}
	}

	// Hand the next batch to the first receipt that arrived meanwhile.
	g.mu.Lock()
	if err != nil && g.failed == nil {
		g.failed = err
	}
	if len(g.queue) > 0 {
		g.queue[0].wake <- true
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	return q.id, q.err
}
