package upload_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/online/internal/store/storetest"
	"github.com/airgap-byok/airgap-byok/online/internal/upload"
	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/online/internal/vault/vaultfake"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// clock is a virtual clock: Sleep advances it instead of waiting.
type clock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.slept = append(c.slept, d)
	return nil
}

func (c *clock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.slept...)
}

// receipts seals receipts with the ceremony's online key and applies them to the ledger,
// as station.Append does.
type receipts struct {
	s   *store.Store
	key ed25519.PrivateKey
	mu  sync.Mutex
	got []*payload.Receipt
	err error
}

// testToolset is what the receipts of these tests record as the binary that wrote them.
var testToolset = payload.Toolset{Version: "test", SHA256: "7e57000000000000000000000000000000000000000000000000000000000000"}

func (r *receipts) Write(_ context.Context, rc *payload.Receipt) (bundle.ID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return bundle.ID{}, r.err
	}
	if err := rc.Validate(); err != nil {
		return bundle.ID{}, err
	}
	seq := uint64(len(r.got) + 2)
	d, err := chain.Draft(chain.Position{Chain: bundle.ChainOnline, Head: chain.Head{Seq: seq - 1, ID: bundle.ID{byte(seq)}}, Policy: bundle.ID{1}, Toolset: &testToolset},
		rc, time.Unix(1_800_000_000, 0), time.Hour)
	if err != nil {
		return bundle.ID{}, err
	}
	b, err := bundle.Seal(d, r.key, nil)
	if err != nil {
		return bundle.ID{}, err
	}
	if err := r.s.DB.Update(func(tx *bolt.Tx) error { return store.ApplyOwn(tx, b) }); err != nil {
		return bundle.ID{}, err
	}
	r.got = append(r.got, rc)
	return b.ID(), nil
}

func (r *receipts) all() []*payload.Receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*payload.Receipt(nil), r.got...)
}

// fixture is a ceremony with a KEK in a fake vault, a ledger and an engine.
type fixture struct {
	c        *chaintest.Ceremony
	v        *vaultfake.Vault
	s        *store.Store
	rc       *receipts
	clk      *clock
	offer    bundle.ID
	engine   *upload.Engine
	packages map[bundle.ID]*payload.KeyPackage
}

func newFixture(t *testing.T, kind string) *fixture {
	t.Helper()
	c, err := chaintest.New(chaintest.Config{Dir: t.TempDir(), FastWrite: true, VaultKind: kind, AllowWeakerKEK: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Setup(); err != nil {
		t.Fatal(err)
	}
	off, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{c: c, clk: newClock(), offer: off.ID(), packages: map[bundle.ID]*payload.KeyPackage{}}
	f.v = vaultfake.New(c.Policy.Vaults[0].URL)
	f.v.NewRSA = func(int) *rsa.PrivateKey { return c.KEK }
	kek, err := f.v.CreateKey(context.Background(), "kek", vault.CreateParams{Kty: "RSA-HSM", Size: 3072, KeyOps: []string{"import"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := c.OfferPayload(""); kek.KID[:len(kek.KID)-32] != want.KID {
		t.Fatalf("fake KEK %s does not match the offer's", kek.KID)
	}
	f.s = storetest.Open(t)
	f.rc = &receipts{s: f.s, key: c.OnlineKey}
	f.engine = &upload.Engine{
		Vault:       func(string) (vault.Vault, error) { return f.v, nil },
		Ledger:      f.s,
		Receipts:    f.rc,
		Concurrency: 4,
		Now:         f.clk.Now,
		Sleep:       f.clk.Sleep,
		Limiter:     upload.NewLimiter(0, nil, f.clk.Now, f.clk.Sleep),
	}
	return f
}

// job packages a software key of type kt and returns its upload job.
func (f *fixture) job(t *testing.T, kt payload.KeyType, name string) *upload.Job {
	t.Helper()
	b, err := f.c.Package(f.offer, kt, name)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	var k payload.KeyPackage
	if err := payload.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	f.packages[b.ID()] = &k
	return &upload.Job{Package: b.ID(), Vault: k.Vault, KeyName: k.KeyName, KeyType: kt, Target: k.Target, PublicKey: k.PublicKey, BYOK: k.BYOK}
}

func (f *fixture) upload(t *testing.T, jobs ...*upload.Job) []upload.Result {
	t.Helper()
	return f.engine.Run(context.Background(), jobs)
}

func (f *fixture) state(t *testing.T, pkg bundle.ID) string {
	t.Helper()
	u, err := f.s.Upload(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if u == nil {
		return ""
	}
	return u.State
}

// batchReceipts is receipts that also writes batches, recording their sizes.
type batchReceipts struct {
	*receipts
	mu      sync.Mutex
	batches []int
	singles int
}

func (b *batchReceipts) Write(ctx context.Context, rc *payload.Receipt) (bundle.ID, error) {
	b.mu.Lock()
	b.singles++
	b.mu.Unlock()
	return b.receipts.Write(ctx, rc)
}

func (b *batchReceipts) WriteBatch(ctx context.Context, rs []*payload.Receipt) ([]bundle.ID, error) {
	b.mu.Lock()
	b.batches = append(b.batches, len(rs))
	b.mu.Unlock()
	var ids []bundle.ID
	for _, rc := range rs {
		id, err := b.receipts.Write(ctx, rc)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}
