package ceremony_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/onlinetest"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TestLedgerViews: HasLedger, StationRecord and KnownKeys say what the ledger holds, before
// and after init; Timeline lists every bundle of both chains in order.
func TestLedgerViews(t *testing.T) {
	s := newStation(t)
	empty := filepath.Join(t.TempDir(), "state")
	if ceremony.HasLedger("") || ceremony.HasLedger(empty) || !ceremony.HasLedger(s.state) {
		t.Errorf("HasLedger: \"\" %t, an empty folder %t, the station's %t; want false, false, true",
			ceremony.HasLedger(""), ceremony.HasLedger(empty), ceremony.HasLedger(s.state))
	}
	fresh, err := ceremony.Open(ceremony.Options{StateDir: empty, Create: true, Context: context.Background()})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := fresh.StationRecord(); st != nil || err != nil {
		t.Errorf("StationRecord of a new ledger = %+v, %v; want none", st, err)
	}
	if keys, err := fresh.KnownKeys(); err != nil || len(keys) != 0 {
		t.Errorf("KnownKeys of a new ledger = %d keys, %v; want none", len(keys), err)
	}
	fresh.Close()

	s.offer(onlinetest.OfferOptions{Name: "kek-a"})
	s.with(ledgerOnly, nil, func(sess *ceremony.Session) {
		st, err := sess.StationRecord()
		if err != nil || st == nil || st.TokenLabel != "station" || st.Module != s.module {
			t.Fatalf("StationRecord = %+v, %v; want the station's token and module", st, err)
		}
		keys, err := sess.KnownKeys()
		if err != nil {
			t.Fatal(err)
		}
		on := s.online()
		onKey, err := payload.NewPublicKey(on.C.OnlineKey.Public())
		on.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := []bundle.ID{st.Key.ID(), onKey.ID()}
		custs, err := sess.Store.Custodians()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range custs {
			want = append(want, c.Key.ID())
		}
		if len(keys) != 4 {
			t.Errorf("KnownKeys = %d keys, want 4 (station, online, alice, bob)", len(keys))
		}
		for _, id := range want {
			if keys[id] == nil {
				t.Errorf("KnownKeys lacks %s", id.Short())
			}
		}
	})
	s.with(ceremony.ReadMedium, nil, func(sess *ceremony.Session) {
		var got []string
		res, err := sess.Timeline(context.Background(), func(v *chain.Verified) error {
			got = append(got, v.Bundle.Header.Chain.String()+"/"+v.Bundle.Header.Kind.String())
			return nil
		})
		if err != nil || res == nil || !res.Complete {
			t.Fatalf("Timeline = %+v, %v; want a complete replay", res, err)
		}
		want := []string{"offline/enrollment", "online/enrollment", "offline/policy", "offline/approval", "online/kek_offer"}
		if !slices.Equal(got, want) {
			t.Errorf("Timeline = %q, want %q", got, want)
		}
	})
}
