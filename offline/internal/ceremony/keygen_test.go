package ceremony_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TestPlanKeygen: a keygen is checked against the ledger and the policy in force before the
// token is opened, each refusal of its own kind.
func TestPlanKeygen(t *testing.T) {
	s := newStation(t)
	s.with(ledgerOnly, nil, func(sess *ceremony.Session) {
		// A key the ledger holds, and a keygen that was interrupted.
		if err := sess.Store.PutKey(&store.Key{Ident: "web", State: store.KeyReady, Type: payload.ECP256, Label: "web", Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := sess.Store.StartKey(&store.Key{Ident: "half", State: store.KeyGenerating, Type: payload.RSA3072, Label: "half", Regions: []string{"westeurope"}, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name     string
			req      ceremony.KeygenRequest
			wantKind error
			check    func(t *testing.T, p *ceremony.KeygenPlan)
		}{
			{name: "new key", req: ceremony.KeygenRequest{Ident: "app", Type: payload.RSA3072, Regions: []string{"WestEurope,westeurope"}},
				check: func(t *testing.T, p *ceremony.KeygenPlan) {
					if p.Resuming || p.WeakerKEK || !slices.Equal(p.Regions, []string{"westeurope"}) || p.Station == nil || p.Station.TokenLabel != "station" || p.Policy == nil {
						t.Errorf("plan = %+v, want a new key bound to westeurope", p)
					}
				}},
			{name: "no regions", req: ceremony.KeygenRequest{Ident: "app", Type: payload.ECP256},
				check: func(t *testing.T, p *ceremony.KeygenPlan) {
					if p.Regions != nil {
						t.Errorf("regions = %q, want none", p.Regions)
					}
				}},
			{name: "stronger than any KEK", req: ceremony.KeygenRequest{Ident: "big", Type: payload.ECP384},
				check: func(t *testing.T, p *ceremony.KeygenPlan) {
					if !p.WeakerKEK {
						t.Errorf("an EC-P384 key under a policy without weaker KEKs: WeakerKEK false")
					}
				}},
			{name: "adopting needs no type", req: ceremony.KeygenRequest{Ident: "legacy", Adopt: true},
				check: func(t *testing.T, p *ceremony.KeygenPlan) {
					if p.Resuming || p.WeakerKEK {
						t.Errorf("plan = %+v", p)
					}
				}},
			{name: "finishing an interrupted keygen", req: ceremony.KeygenRequest{Ident: "half", Type: payload.RSA3072, Regions: []string{"westeurope"}},
				check: func(t *testing.T, p *ceremony.KeygenPlan) {
					if !p.Resuming {
						t.Errorf("an interrupted keygen: Resuming false")
					}
				}},
			{name: "key exists", req: ceremony.KeygenRequest{Ident: "web", Type: payload.ECP256}, wantKind: ceremony.ErrKeyExists},
			{name: "adopting exists", req: ceremony.KeygenRequest{Ident: "web", Adopt: true}, wantKind: ceremony.ErrKeyExists},
			{name: "adopting over an interrupted keygen", req: ceremony.KeygenRequest{Ident: "half", Adopt: true}, wantKind: ceremony.ErrKeygenPending},
			{name: "finishing with other regions", req: ceremony.KeygenRequest{Ident: "half", Type: payload.RSA3072}, wantKind: ceremony.ErrResumeRegions},
			{name: "region without a vault", req: ceremony.KeygenRequest{Ident: "app", Type: payload.RSA3072, Regions: []string{"eastus"}}, wantKind: ceremony.ErrNoVaultInRegion},
			{name: "type the vaults cannot take", req: ceremony.KeygenRequest{Ident: "sym", Type: payload.AES256}, wantKind: ceremony.ErrKeyTypeNotAllowed},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, err := sess.PlanKeygen(tt.req)
				if tt.wantKind != nil {
					if p != nil || !errors.Is(err, tt.wantKind) {
						t.Errorf("PlanKeygen = %+v, %v; want kind %v", p, err, tt.wantKind)
					}
					return
				}
				if err != nil {
					t.Fatalf("PlanKeygen: %v", err)
				}
				tt.check(t, p)
			})
		}
		var ce *ceremony.Error
		if _, err := sess.PlanKeygen(ceremony.KeygenRequest{Ident: "app", Type: payload.RSA3072, Regions: []string{"EastUS"}}); !errors.As(err, &ce) || ce.Region != "eastus" ||
			err.Error() != "no vault of the policy in force is in region eastus (its regions are westeurope)" {
			t.Errorf("PlanKeygen(--regions EastUS) = %v, want ErrNoVaultInRegion naming eastus", err)
		}
	})
}

// TestTrialExport: a key marked CKA_WRAP_WITH_TRUSTED wraps with the security officer's PIN
// and not with another.
func TestTrialExport(t *testing.T) {
	s := newStation(t)
	ctx := context.Background()
	tok := s.token()
	s.with(ledgerOnly, nil, func(sess *ceremony.Session) {
		keys := ceremony.Keys{Store: sess.Store, Token: tok, Log: sess.Log, Now: time.Now}
		if _, err := keys.Generate(ctx, "guarded", payload.RSA3072, true, nil, false, func(k *hsm.Key) error {
			if err := keys.TrialExport(ctx, k, secret.New("wrong-so-pin")); !errors.Is(err, ceremony.ErrToken) {
				t.Errorf("TrialExport with a wrong SO PIN = %v, want an HSM error", err)
			}
			return keys.TrialExport(ctx, k, secret.New(initTokens[0].SOPIN))
		}); err != nil {
			t.Fatalf("Generate with the trial export: %v", err)
		}
	})
}
