package ceremony

import (
	"context"
	"errors"
	"fmt"

	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// ReceiptOf is the ledger's record of the receipt r, the payload of the verified bundle v:
// the key version its key ID names, and the replay's finding on it (a key mismatch first).
func ReceiptOf(v *chain.Verified, r *payload.Receipt) store.Receipt {
	rec := store.Receipt{Bundle: v.Bundle.ID(), Seq: v.Bundle.Header.Seq, Outcome: r.Outcome, KID: r.KID, Error: r.Error, Created: r.Created}
	if kid, err := byok.ParseKeyID(r.KID); err == nil {
		rec.Version = kid.Version
	}
	for _, f := range v.Findings {
		mismatch := errors.Is(f, chain.ErrKeyMismatch)
		if mismatch || rec.Finding == "" {
			rec.Finding = chain.Verdict(f) + ": " + f.Error()
		}
		rec.KeyMismatch = rec.KeyMismatch || mismatch
	}
	return rec
}

// PackageState derives a package's state from its receipts, in chain order: a
// rejection leaves it awaiting upload (it may be uploaded again), an import settles it.
func PackageState(rs []store.Receipt) string {
	state := store.PackageOutstanding
	for _, r := range rs {
		switch {
		case r.Outcome == payload.OutcomeRejected:
			if state == store.PackageOutstanding {
				state = store.PackageRejected
			}
		case r.Outcome == payload.OutcomePublicKeyMismatch || r.KeyMismatch:
			state = store.PackageMismatch
		default:
			state = store.PackageImported
		}
	}
	return state
}

// Landed returns the last of rs that is not a rejection: where the package's key landed,
// as which version, and the replay's finding on it (nil if none).
func Landed(rs []store.Receipt) *store.Receipt {
	var last *store.Receipt
	for i := range rs {
		if rs[i].Outcome != payload.OutcomeRejected {
			last = &rs[i]
		}
	}
	return last
}

// SyncReport is what a sync read on the medium and recorded in the ledger.
type SyncReport struct {
	// Receipts counts the receipts on the medium, New those the ledger did not hold.
	Receipts, New int
	// Packages are the ledger's key packages after the sync.
	Packages []store.Package
	// Mismatches counts the packages whose key in Key Vault is not the packaged one;
	// Findings the others whose upload the replay found against the policy.
	Mismatches, Findings int
	// BadCopies say which plain .byok copies are not their package's .byok, or name no
	// key package on the medium.
	BadCopies []string
	// OnlineHead is the sequence number of the online chain's head.
	OnlineHead uint64
}

// Sync replays the medium (the session opened with LedgerOnly or WriteMedium), records in
// the ledger the online station's receipts and each key package's state that they give,
// checks the plain .byok copies, and finishes those an interrupted package did not write.
// Mismatches and findings are in the report, and Err makes them an error.
func (s *Session) Sync(ctx context.Context) (*SyncReport, error) {
	if _, _, err := s.RequireInit(); err != nil {
		return nil, err
	}
	receipts := map[bundle.ID][]store.Receipt{}
	out := &SyncReport{}
	named := map[string]bool{} // the plain copies' names of the packages on the medium
	res, err := s.ReplayAndFinish(ctx, func(v *chain.Verified) error {
		if k, ok := v.Payload.(*payload.KeyPackage); ok {
			named[station.ByokCopyName(k.KeyName, v.Bundle.ID())] = true
			if err := station.CheckByokCopy(s.Station.Media, k.KeyName, v.Bundle.ID(), k.BYOK); err != nil {
				s.Log.Warn("a plain .byok copy is not its package's .byok", "err", err)
				out.BadCopies = append(out.BadCopies, err.Error())
			}
		}
		r, ok := v.Payload.(*payload.Receipt)
		if !ok {
			return nil
		}
		out.Receipts++
		receipts[r.Package] = append(receipts[r.Package], ReceiptOf(v, r))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if res.Complete {
		for _, err := range station.UnnamedByokCopies(s.Station.Media, named) {
			s.Log.Warn("a plain .byok copy names no key package on the medium", "err", err)
			out.BadCopies = append(out.BadCopies, err.Error())
		}
	}
	err = s.Store.UpdatePackages(func(p *store.Package) (bool, error) {
		rs := receipts[p.ID]
		if len(rs) == 0 {
			return false, nil
		}
		state := PackageState(rs)
		changed := state != p.State || len(rs) != len(p.Receipts)
		if changed {
			out.New += len(rs) - len(p.Receipts)
			s.Log.Info("receipt", "package", p.ID.Short(), "key_name", p.KeyName, "vault", p.Vault, "state", state)
		}
		p.Receipts, p.State = rs, state
		return changed, nil
	})
	if err != nil {
		return nil, err
	}
	if out.Packages, err = s.Store.Packages(); err != nil {
		return nil, err
	}
	for _, p := range out.Packages {
		switch l := Landed(p.Receipts); {
		case p.State == store.PackageMismatch:
			out.Mismatches++
		case l != nil && l.Finding != "":
			out.Findings++
		}
	}
	out.OnlineHead = res.State.Heads.Online.Seq
	s.Log.Info("synced with the medium", "receipts", out.Receipts, "online_head", out.OnlineHead)
	return out, nil
}

// Err returns the mismatches (ErrKeyMismatch, wrapping chain.ErrKeyMismatch) or else the
// findings (ErrPolicyFindings) of the sync as an error, or nil.
func (r *SyncReport) Err() error {
	switch {
	case r.Mismatches > 0:
		return errorOf(ErrKeyMismatch, fmt.Errorf("%w: %d key(s) in Key Vault are not the keys this station packaged", chain.ErrKeyMismatch, r.Mismatches))
	case r.Findings > 0:
		return errorf(ErrPolicyFindings, "%d upload(s) broke the policy (see the findings)", r.Findings)
	}
	return nil
}
