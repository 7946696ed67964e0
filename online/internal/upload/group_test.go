package upload

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// batchWriter records the batches it is given. Its first batch waits for release, so that
// the test can queue receipts behind it; batch failOn fails.
type batchWriter struct {
	mu      sync.Mutex
	batches [][]bundle.ID // packages of each batch
	release chan struct{}
	failOn  int
}

var errWrite = errors.New("the medium is gone")

func idOf(r *payload.Receipt) bundle.ID { return sha256.Sum256(r.Package[:]) }

func (w *batchWriter) Write(ctx context.Context, r *payload.Receipt) (bundle.ID, error) {
	ids, err := w.WriteBatch(ctx, []*payload.Receipt{r})
	if err != nil {
		return bundle.ID{}, err
	}
	return ids[0], nil
}

func (w *batchWriter) WriteBatch(_ context.Context, rs []*payload.Receipt) ([]bundle.ID, error) {
	w.mu.Lock()
	n := len(w.batches)
	var pkgs []bundle.ID
	for _, r := range rs {
		pkgs = append(pkgs, r.Package)
	}
	w.batches = append(w.batches, pkgs)
	w.mu.Unlock()
	if n == 0 {
		<-w.release
	}
	if n == w.failOn {
		return nil, errWrite
	}
	var ids []bundle.ID
	for _, r := range rs {
		ids = append(ids, idOf(r))
	}
	return ids, nil
}

func receipt(i int) *payload.Receipt {
	return &payload.Receipt{Package: bundle.ID{byte(i + 1)}, Vault: "https://v.vault.azure.net", Outcome: payload.OutcomeRejected, Error: fmt.Sprint("refused ", i)}
}

// groupRun writes receipt 0, then receipts 1 to 5 while receipt 0's batch is being written,
// and returns each Write's result.
func groupRun(t *testing.T, w *batchWriter) ([]bundle.ID, []error) {
	t.Helper()
	g := &group{w: w}
	ids := make([]bundle.ID, 6)
	errs := make([]error, 6)
	var wg sync.WaitGroup
	write := func(i int) {
		defer wg.Done()
		ids[i], errs[i] = g.Write(context.Background(), receipt(i))
	}
	wg.Add(1)
	go write(0)
	waitFor(func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.batches) == 1 })
	for i := 1; i < 6; i++ {
		wg.Add(1)
		go write(i)
	}
	waitFor(func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.queue) == 5 })
	close(w.release)
	wg.Wait()
	return ids, errs
}

// waitFor yields until cond holds.
func waitFor(cond func() bool) {
	for !cond() {
		runtime.Gosched()
	}
}

// The receipts that finish while a batch is written go together in the next batch, and
// every Write returns its own receipt's ID.
func TestGroupWritesWaitingReceiptsTogether(t *testing.T) {
	w := &batchWriter{release: make(chan struct{}), failOn: -1}
	ids, errs := groupRun(t, w)
	if len(w.batches) != 2 || len(w.batches[0]) != 1 || len(w.batches[1]) != 5 {
		t.Fatalf("batches = %v, want receipt 0 alone, then the other five together", w.batches)
	}
	var all []bundle.ID
	for _, b := range w.batches {
		all = append(all, b...)
	}
	slices.SortFunc(all, func(a, b bundle.ID) int { return int(a[0]) - int(b[0]) })
	for i := range 6 {
		if errs[i] != nil || ids[i] != idOf(receipt(i)) {
			t.Errorf("Write(receipt %d) = %s, %v; want its own ID", i, ids[i].Short(), errs[i])
		}
		if all[i] != receipt(i).Package {
			t.Errorf("receipt %d written %v times", i, all)
		}
	}
}

// A batch that fails fails its own receipts only.
func TestGroupFailureStaysInItsBatch(t *testing.T) {
	w := &batchWriter{release: make(chan struct{}), failOn: 1}
	ids, errs := groupRun(t, w)
	if errs[0] != nil || ids[0] != idOf(receipt(0)) {
		t.Errorf("Write(receipt 0) = %v, want success: its batch was written", errs[0])
	}
	for i := 1; i < 6; i++ {
		if !errors.Is(errs[i], errWrite) {
			t.Errorf("Write(receipt %d) = %v, want the failure of its batch", i, errs[i])
		}
	}
}

// An invalid receipt is refused before it can join, and fail, a batch.
func TestGroupRefusesInvalidReceipts(t *testing.T) {
	w := &batchWriter{failOn: -1}
	g := &group{w: w}
	bad := receipt(0)
	bad.Outcome = "lost"
	if _, err := g.Write(context.Background(), bad); err == nil {
		t.Fatal("Write(invalid receipt) succeeded")
	}
	if len(w.batches) != 0 {
		t.Errorf("batches = %v, want none", w.batches)
	}
}

// After a batch fails, the station holds it as an interrupted write: the later receipts of
// the run fail with that batch's error, without another write.
func TestGroupFailureEndsTheRunsWrites(t *testing.T) {
	w := &batchWriter{release: make(chan struct{}), failOn: 0}
	_, errs := groupRun(t, w)
	for i := range 6 {
		if !errors.Is(errs[i], errWrite) {
			t.Errorf("Write(receipt %d) = %v, want the first batch's failure", i, errs[i])
		}
	}
	if len(w.batches) != 1 {
		t.Errorf("batches = %v, want only the one that failed", w.batches)
	}
	g := &group{w: w, failed: errWrite}
	if _, err := g.Write(context.Background(), receipt(7)); !errors.Is(err, errWrite) || len(w.batches) != 1 {
		t.Errorf("Write after a failure = %v with %d batches, want the failure and no write", err, len(w.batches))
	}
}
