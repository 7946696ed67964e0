// Package verify replays a transfer medium for the online station: both chains against the
// pinned policy and the heads the ledger remembers (package chain does the cryptography and
// the rules), plus what only this station knows: that every key package is wrapped with a
// KEK this station offered for the package's vault. It reports every bundle, every finding
// with its verdict class, and every key package with what stands between it and an upload.
//
// A replay that had to stop (a malformed, tampered, forked or rolled-back medium) is an
// error; findings about authentic bundles are in the report, and Report.Err turns them into
// one.
package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Report is the outcome of a replay, for people and, as JSON, for tools. Its field set only
// grows.
type Report struct {
	Policy   *Policy      `json:"policy,omitempty"` // the policy in force at the end
	Heads    chain.Heads  `json:"heads"`
	Counts   chain.Counts `json:"counts"`
	Complete bool         `json:"complete"` // both chains were replayed to their end
	Bundles  []Bundle     `json:"bundles"`
	Findings []Finding    `json:"findings"`
	Packages []*Package   `json:"packages"`
	Warnings []string     `json:"warnings,omitempty"`
}

// Policy names a policy version.
type Policy struct {
	ID          bundle.ID `json:"id"`
	Fingerprint string    `json:"fingerprint"`
	Version     uint64    `json:"version"`
	Threshold   int       `json:"threshold"`
	// BundleLifetimeSeconds is the longest lifetime the policy allows a bundle.
	BundleLifetimeSeconds int64 `json:"bundle_lifetime_seconds"`
}

// Bundle is one verified bundle.
type Bundle struct {
	Chain       string    `json:"chain"`
	Seq         uint64    `json:"seq"`
	Kind        string    `json:"kind"`
	ID          bundle.ID `json:"id"`
	Fingerprint string    `json:"fingerprint"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	Path        string    `json:"path"`
}

// Finding is a rule a bundle breaks, or the reason the replay stopped.
type Finding struct {
	Chain   string    `json:"chain"`
	Seq     uint64    `json:"seq,omitempty"`
	Kind    string    `json:"kind,omitempty"`
	ID      bundle.ID `json:"id"`
	Path    string    `json:"path,omitempty"`
	Verdict string    `json:"verdict"` // chain.Verdict's class, e.g. "missing approval"
	Message string    `json:"message"`
	// Blocking findings stop every upload. Findings about receipts record the past (a
	// public-key mismatch this station receipted) and block nothing.
	Blocking bool  `json:"blocking"`
	Err      error `json:"-"`
}

// Package is a key package on the medium.
type Package struct {
	ID          bundle.ID       `json:"id"`
	Fingerprint string          `json:"fingerprint"`
	Seq         uint64          `json:"seq"`
	Vault       string          `json:"vault"`
	KeyName     string          `json:"key_name"`
	KeyType     payload.KeyType `json:"key_type"`
	Created     time.Time       `json:"created"`
	Expires     time.Time       `json:"expires"`
	KEKOffer    bundle.ID       `json:"kek_offer"`
	KID         string          `json:"kek_kid"`
	// Outstanding: no receipt has consumed it (a rejected receipt does not).
	Outstanding bool `json:"outstanding"`
	Approvals   int  `json:"approvals"` // by custodians of the policy in force (outstanding packages)
	Threshold   int  `json:"threshold"`
	// Quorum names whose approvals Approvals and Threshold count: the policy's custodians,
	// or those of the vault's region (SPEC.md §9.7); the first quorum not met, if any.
	Quorum   string `json:"quorum"`
	Approved bool   `json:"approved"`
	Expired  bool   `json:"expired"`
	// KEKOffered: the package's KEK is one this station created and offered for its vault.
	KEKOffered bool `json:"kek_offered"`
	KEKExpired bool `json:"kek_expired"`
	Rejected   int  `json:"rejected"` // receipts saying Key Vault refused it
	// Upload is the ledger's record of its upload, if any.
	Upload *store.Upload `json:"upload,omitempty"`
	// Uploadable says whether upload would import it now; Reasons says why not.
	Uploadable bool     `json:"uploadable"`
	Reasons    []string `json:"reasons,omitempty"`
	Findings   []string `json:"findings,omitempty"`

	manifest *payload.KeyPackage
}

// Manifest returns the key package payload.
func (p *Package) Manifest() *payload.KeyPackage { return p.manifest }

// Options configure Run.
type Options struct {
	Station *station.Station
	Store   *store.Store
	Now     time.Time
	Log     *slog.Logger
}

// Run replays the medium of o.Station. It returns the report and, if the replay had to stop
// or the medium does not end where the ledger says, an error (a *station.ReplayError, a
// *station.DisagreeError); the report is then partial. Without a pinned policy it fails with
// station.ErrNoAnchor.
func Run(ctx context.Context, o Options) (*Report, error) {
	st, err := o.Station.Load()
	if err != nil {
		return nil, err
	}
	if st.Anchor.IsZero() {
		return nil, station.ErrNoAnchor
	}
	rep := &Report{Bundles: []Bundle{}, Findings: []Finding{}, Packages: []*Package{}}
	byID := map[bundle.ID]*Package{}
	var copies []Finding       // plain .byok copies that are not their package's
	named := map[string]bool{} // the plain copies' names of the packages on the medium
	onBundle := func(v *chain.Verified) error {
		h := v.Bundle.Header
		rep.Bundles = append(rep.Bundles, Bundle{Chain: h.Chain.String(), Seq: h.Seq, Kind: h.Kind.String(), ID: v.Bundle.ID(),
			Fingerprint: v.Bundle.ID().Short(), Created: h.CreatedTime(), Expires: h.ExpiresTime(), Path: v.Entry.Path})
		if k, ok := v.Payload.(*payload.KeyPackage); ok {
			kt, _ := k.Target.KeyType()
			p := &Package{ID: v.Bundle.ID(), Fingerprint: v.Bundle.ID().Short(), Seq: h.Seq, Vault: k.Vault, KeyName: k.KeyName,
				KeyType: kt, Created: h.CreatedTime(), Expires: h.ExpiresTime(), KEKOffer: k.KEK.Offer, KID: k.KEK.KID, manifest: k}
			for _, f := range v.Findings {
				p.Findings = append(p.Findings, f.Error())
			}
			rep.Packages = append(rep.Packages, p)
			byID[p.ID] = p
			named[station.ByokCopyName(k.KeyName, p.ID)] = true
			if err := station.CheckByokCopy(o.Station.Media, k.KeyName, p.ID, k.BYOK); err != nil {
				// Not a verdict of the format (SPEC.md §8.1): upload imports the package's
				// own .byok, so this stops verify, not upload.
				copies = append(copies, Finding{Chain: bundle.ChainOffline.String(), Seq: h.Seq, Kind: bundle.KindKeyPackage.String(), ID: p.ID,
					Path: path.Join(media.ByokDir, station.ByokCopyName(k.KeyName, p.ID)), Verdict: "byok copy mismatch", Message: err.Error(), Err: err})
			}
		}
		return nil
	}
	// Every command that verifies records what it verified (the other chain's head and its
	// bundles), so that a later command refuses an older or forked copy (SPEC.md §11).
	res, err := o.Station.Replay(ctx, onBundle)
	if res != nil {
		rep.fill(res)
	}
	if err == nil && res.Complete {
		// Copies that name no package here: nothing checked them.
		for _, e := range station.UnnamedByokCopies(o.Station.Media, named) {
			var ce *station.ByokCopyError
			errors.As(e, &ce)
			copies = append(copies, Finding{Chain: bundle.ChainOffline.String(), Path: ce.Path, Verdict: "byok copy unknown", Message: e.Error(), Err: e})
		}
	}
	rep.Findings = append(rep.Findings, copies...)
	if err != nil {
		return rep, err
	}
	if err := rep.judge(o, res, byID); err != nil {
		return rep, err
	}
	return rep, nil
}

func (rep *Report) fill(res *chain.Result) {
	rep.Complete = res.Complete
	if res.State != nil {
		rep.Heads, rep.Counts = res.State.Heads, res.State.Counts
		if cur := res.State.Current(); cur != nil {
			rep.Policy = &Policy{ID: cur.ID, Fingerprint: cur.ID.Short(), Version: cur.Policy.Version, Threshold: cur.Policy.Threshold,
				BundleLifetimeSeconds: cur.Policy.BundleLifetimeSeconds}
		}
	}
	for _, f := range res.Findings {
		rep.Findings = append(rep.Findings, Finding{Chain: f.Chain.String(), Seq: f.Seq, Kind: kindName(f.Kind), ID: f.ID, Path: f.Path,
			Verdict: chain.Verdict(f.Err), Message: f.Err.Error(), Blocking: f.Kind != bundle.KindReceipt, Err: f.Err})
	}
	for _, w := range res.Warnings {
		rep.Warnings = append(rep.Warnings, w.String())
	}
}

func kindName(k bundle.Kind) string {
	if k == 0 {
		return ""
	}
	return k.String()
}

// judge adds what the ledger knows and decides, per package, whether it can be uploaded.
func (rep *Report) judge(o Options, res *chain.Result, byID map[bundle.ID]*Package) error {
	cur := res.State.Current()
	if cur == nil {
		return ErrNoPolicy
	}
	p := cur.Policy
	for _, pkg := range rep.Packages {
		rec, out := res.State.Packages[pkg.ID]
		pkg.Outstanding = out
		qs := p.VaultQuorums(pkg.Vault)
		pkg.Threshold, pkg.Quorum = qs[0].Threshold, qs[0].String()
		pkg.Expired = !o.Now.Before(pkg.Expires)
		if out {
			// The receipt will reference the offline head, so every approval on the medium counts.
			seq := res.State.Heads.Offline.Seq
			q, have, ok := rec.Quorum(p, seq)
			if ok {
				q, have = qs[0], qs[0].Count(rec.ApproversUpTo(seq))
			}
			pkg.Approvals, pkg.Threshold, pkg.Quorum, pkg.Approved = have, q.Threshold, q.String(), ok
			pkg.Rejected = rec.Rejected
		}
		kek, err := o.Store.KEK(pkg.KEKOffer)
		if err != nil {
			return err
		}
		pkg.KEKOffered = kek != nil && kek.KID == pkg.KID && kek.Vault == pkg.Vault
		pkg.KEKExpired = kek != nil && !o.Now.Before(time.Unix(kek.Expires, 0))
		if pkg.Upload, err = o.Store.Upload(pkg.ID); err != nil {
			return err
		}
		if u := pkg.Upload; u != nil && u.Duplicate() {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("key package %s (%s) was imported %d times: Key Vault holds %s, each carrying its tag (recorded in this station's ledger)",
				pkg.Fingerprint, pkg.KeyName, len(u.Versions), strings.Join(u.Versions, ", ")))
		}
		if !pkg.KEKOffered {
			rep.Findings = append(rep.Findings, Finding{Chain: bundle.ChainOffline.String(), Seq: pkg.Seq, Kind: bundle.KindKeyPackage.String(), ID: pkg.ID,
				Verdict: "policy violation", Blocking: true,
				Message: fmt.Sprintf("key package %s is wrapped with KEK %s, which this station did not offer for %s", pkg.Fingerprint, pkg.KID, pkg.Vault),
				Err:     &chain.PolicyError{Rule: "kek-offered", Detail: fmt.Sprintf("KEK %s was not offered by this station for %s", pkg.KID, pkg.Vault)}})
		}
		pkg.reasons(p)
	}
	return nil
}

func (pkg *Package) reasons(p *payload.Policy) {
	var why []string
	if !pkg.Outstanding {
		why = append(why, "uploaded: a receipt is on the online chain")
	}
	if len(pkg.Findings) > 0 {
		why = append(why, "the key package breaks a rule (see findings)")
	}
	if pkg.Upload != nil && pkg.Upload.State == store.StateVaultMismatch {
		why = append(why, "Key Vault's answer to its import did not match the request (see the ledger); it is never imported again")
	}
	if pkg.Outstanding && !pkg.Approved {
		why = append(why, fmt.Sprintf("approved by %d of the %d custodians required (%s)", pkg.Approvals, pkg.Threshold, pkg.Quorum))
	}
	if pkg.Expired {
		why = append(why, "the key package expired at "+pkg.Expires.UTC().Format(time.RFC3339))
	}
	if !pkg.KEKOffered {
		why = append(why, "its KEK was not offered by this station for its vault")
	} else if pkg.KEKExpired {
		why = append(why, "its KEK has expired in Key Vault")
	}
	if _, ok := p.Vault(pkg.Vault); !ok {
		why = append(why, "the policy in force does not allow vault "+pkg.Vault)
	}
	pkg.Reasons = why
	pkg.Uploadable = len(why) == 0
}

// Blocking returns the findings that stop every upload.
func (rep *Report) Blocking() []Finding {
	var out []Finding
	for _, f := range rep.Findings {
		if f.Blocking {
			out = append(out, f)
		}
	}
	return out
}

// ErrNoPolicy reports a medium on which no policy is in force.
var ErrNoPolicy = errors.New("no policy is in force on the medium")

// FindingError reports the findings of a verification: Err names the first one.
type FindingError struct{ Err error }

func (e *FindingError) Error() string { return e.Err.Error() }
func (e *FindingError) Unwrap() error { return e.Err }

// Err returns nil if the report has no finding, else a *FindingError for the first one.
func (rep *Report) Err() error {
	if len(rep.Findings) == 0 {
		return nil
	}
	f := rep.Findings[0]
	more := ""
	if n := len(rep.Findings) - 1; n > 0 {
		more = fmt.Sprintf(" (and %d more finding", n)
		if n > 1 {
			more += "s"
		}
		more += ")"
	}
	return &FindingError{Err: fmt.Errorf("%s: %w%s", f.Verdict, f.Err, more)}
}
