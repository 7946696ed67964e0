package ceremony

import (
	"errors"

	"github.com/airgap-byok/airgap-byok/offline/internal/store"
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
