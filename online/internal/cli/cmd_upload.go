package cli

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/online/internal/upload"
	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/online/internal/verify"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

type uploadOptions struct {
	stationFlags
	azureFlags
	DryRun      bool
	Concurrency int
	Packages    []string
	RateLimits  []string
	RateWindow  time.Duration
	MaxAttempts int
}

// DefaultConcurrency is the upload pool size.
const DefaultConcurrency = 32

func uploadCommand(env *clirun.Env, d deps) *cli.Command {
	var o uploadOptions
	var pkgs, limits cli.StringSlice
	return &cli.Command{
		Name:  "upload",
		Usage: "import every verified, approved key package into Key Vault, exactly once",
		Description: `upload verifies the medium (as verify does) and imports each key package that is approved as
the policy requires for its vault (the policy's threshold, or that of the custodians of the
vault's region), unexpired and wrapped with a KEK this station offered, exactly once, each
into its own vault:
an intent is recorded before each ImportKey call, the import is tagged with the package ID,
and after any ambiguous failure (a 5xx, a reset, a timeout) Key Vault is searched for the tag
before trying again; a "not found" is trusted only once twice --request-timeout has passed
since the failure, so an import that Key Vault commits late is found, not repeated. After an
import that followed such a failure the key's versions are listed again: if more than one
carries the package's tag, every one is recorded in the station's ledger, shown by status
and verify, and upload exits 3 naming them.

Key Vault's answer is checked against the request before anything is signed: the key
identifier's vault and name, the key type, size or curve, key_ops, enabled, not-before,
expiry, tags and a positive creation time. A difference is a hard failure (exit 3): no
receipt is written, the answer is kept in the ledger, and the package is never imported
again. The public key Key Vault returns is compared with the package's manifest, and a
signed receipt is written to the medium for every upload. Packages left half-done by a
crash are reconciled first.

Uploads run concurrently within Key Vault's throttling limits per vault and key type
(--rate-limit rsa-2048=2000,rsa-3072=500,rsa-4096=250,ec=2000,oct=2000 per --rate-window),
and honour Retry-After. --dry-run prints the exact requests and changes nothing in Key Vault
or on the medium (the ledger keeps what it verified, as verify does).

A package that lacks only custodian approvals is waiting, not wrong: upload lists it as
awaiting_approval with the command that approves it (byok-offline approve, on the offline
station) and imports the others; that alone exits 0, unless the package was named with
--package (exit 7: refused until approved).`,
		Flags: append(append(o.stationFlags.flags(true), o.azureFlags.flags()...),
			&cli.BoolFlag{Name: "dry-run", Usage: "print the requests that would be sent; import and write nothing", Destination: &o.DryRun},
			&cli.IntFlag{Name: "concurrency", Usage: "uploads in flight at once", Value: DefaultConcurrency, Destination: &o.Concurrency},
			&cli.StringSliceFlag{Name: "package", Usage: "upload only this key package (ID or fingerprint; repeatable)", Destination: &pkgs},
			&cli.StringSliceFlag{Name: "rate-limit", Usage: "requests per window for a bucket, e.g. rsa-4096=100 (repeatable)", Destination: &limits},
			&cli.DurationFlag{Name: "rate-window", Usage: "the throttling window the rate limits apply to", Value: upload.DefaultWindow, Destination: &o.RateWindow},
			&cli.IntFlag{Name: "max-attempts", Usage: "ImportKey attempts per package after ambiguous failures", Value: 5, Destination: &o.MaxAttempts}),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			o.Packages, o.RateLimits = pkgs.Value(), limits.Value()
			return runUpload(c.Context, o, env, d)
		},
	}
}

// uploadItem is one package in the result.
type uploadItem struct {
	Package    fingerprint     `json:"package"`
	KeyName    string          `json:"key_name"`
	KeyType    payload.KeyType `json:"key_type"`
	Vault      string          `json:"vault"`
	Outcome    string          `json:"outcome"`
	KID        string          `json:"kid,omitempty"`
	Receipt    *fingerprint    `json:"receipt,omitempty"`
	Reconciled bool            `json:"reconciled,omitempty"`
	Imports    int             `json:"imports,omitempty"`
	// Versions: every key version carrying the package's tag, when there are several.
	Versions []string `json:"versions,omitempty"`
	Detail   string   `json:"detail,omitempty"`
	Error    string   `json:"error,omitempty"`
	Reasons  []string `json:"reasons,omitempty"`

	err     error // the failure behind Error, for its exit code
	expired bool  // refused because the package has expired
}

type uploadResult struct {
	DryRun   bool             `json:"dry_run"`
	Packages []uploadItem     `json:"packages"`
	Requests []*vault.Request `json:"requests,omitempty"`
	Counts   map[string]int   `json:"counts"`
	// Unreceipted counts the packages Key Vault answered for (imported, or rejected) whose
	// receipt is not on the medium yet: it could not be written.
	Unreceipted int `json:"unreceipted"`

	selected bool // --package named the packages
}

// Outcomes of packages that were not attempted.
const (
	outcomeRefused   = "refused"           // selected, but not uploadable (reasons)
	outcomeAwaiting  = "awaiting_approval" // lacks only custodian approvals
	outcomeSkipped   = "skipped"           // rejected before; not retried unless selected
	outcomeWouldLook = "would_reconcile"
	outcomeWould     = "would_import"
)

func runUpload(ctx context.Context, o uploadOptions, env *clirun.Env, d deps) error {
	if err := o.check(true); err != nil {
		return err
	}
	if o.Concurrency < 1 || o.Concurrency > 256 {
		return clirun.Usagef("--concurrency %d: want 1 to 256", o.Concurrency)
	}
	if o.MaxAttempts < 1 || o.MaxAttempts > 100 {
		return clirun.Usagef("--max-attempts %d: want 1 to 100", o.MaxAttempts)
	}
	if o.RateWindow <= 0 {
		return clirun.Usagef("--rate-window must be positive")
	}
	var specs []string
	for _, s := range o.RateLimits {
		specs = append(specs, strings.Split(s, ",")...)
	}
	limits, err := upload.ParseLimits(specs)
	if err != nil {
		return clirun.Usagef("--rate-limit: %v", err)
	}
	var key ed25519.PrivateKey
	if !o.DryRun {
		if key, err = loadKey(o.stationFlags); err != nil {
			return err
		}
	}
	sess, err := openSession(env, o.stationFlags, openMode{write: !o.DryRun})
	if err != nil {
		return err
	}
	defer sess.close()
	st, s := sess.st, sess.store
	vaults := &vaultCache{d: d, o: o.azureFlags.options(o.Concurrency), m: map[string]vault.Vault{}}
	if !o.DryRun {
		defer warmUp(ctx, env, vaults, s)()
	}
	rep, err := verify.Run(ctx, verify.Options{Station: st, Store: s, Now: d.now(), Log: env.Log})
	if err != nil {
		return fmt.Errorf("%w (nothing was uploaded)", err)
	}
	if blocking := rep.Blocking(); len(blocking) > 0 {
		for _, f := range blocking {
			env.Log.Error("finding on the medium", "verdict", f.Verdict, "finding", f.Message)
		}
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("%w; nothing was uploaded", rep.Err()), "run byok-online verify for the whole report")
	}
	plan, err := planUpload(rep, o.Packages)
	if err != nil {
		return err
	}
	res := uploadResult{DryRun: o.DryRun, Packages: []uploadItem{}, Counts: map[string]int{}}
	if o.DryRun {
		for _, j := range plan.jobs {
			outcome := outcomeWould
			if j.Reconcile || j.ReconcileOnly {
				outcome = outcomeWouldLook
			}
			res.add(item(j, outcome))
			if j.ReconcileOnly {
				continue
			}
			req, err := vault.DryRunImport(ctx, j.Vault, j.KeyName, upload.ImportParams(j))
			if err != nil {
				return err
			}
			res.Requests = append(res.Requests, req)
		}
	} else if len(plan.jobs) > 0 {
		// A receipt this clock could not sign, or this binary may not write, must not follow
		// an import: check it first.
		if err := st.CheckWrite(d.now(), rep.Policy.ID); err != nil {
			return fmt.Errorf("%w (nothing was uploaded)", err)
		}
		lifetime := time.Duration(rep.Policy.BundleLifetimeSeconds) * time.Second
		prog := newProgress(env, len(plan.jobs))
		eng := &upload.Engine{
			Vault:       vaults.get,
			Ledger:      s,
			Receipts:    &receiptWriter{st: st, key: key, policy: rep.Policy.ID, lifetime: lifetime, now: d.now},
			Limiter:     upload.NewLimiter(o.RateWindow, limits, d.now, d.sleep),
			Concurrency: o.Concurrency,
			MaxAttempts: o.MaxAttempts,
			Now:         d.now,
			Sleep:       d.sleep,
			Log:         env.Log,
			OnResult:    prog.add,
			// A request is given up after --request-timeout; a "not found" is trusted only
			// twice that long after the failure, so that a request Key Vault still
			// processes has landed by then.
			Settle: 2 * o.RequestTimeout,
		}
		env.Log.Info("uploading", "packages", len(plan.jobs), "concurrency", o.Concurrency)
		results := eng.Run(ctx, plan.jobs)
		prog.close()
		for _, r := range results {
			it := item(r.Job, r.Outcome)
			it.KID, it.Reconciled, it.Imports, it.Detail, it.Versions = r.KID, r.Reconciled, r.Imports, r.Detail, r.Versions
			if !r.Receipt.IsZero() {
				f := fp(r.Receipt)
				it.Receipt = &f
			}
			if r.Err != nil {
				it.Error, it.err = r.Err.Error(), r.Err
			}
			res.add(it)
		}
	}
	for _, p := range plan.mismatched {
		it := pkgItem(p, upload.OutcomeVaultMismatch)
		it.KID, it.Detail = p.Upload.KID, p.Upload.Error
		res.add(it)
	}
	for _, p := range plan.refused {
		it := pkgItem(p, outcomeRefused)
		it.Reasons, it.expired = p.Reasons, p.Expired
		res.add(it)
	}
	for _, p := range plan.awaiting {
		it := pkgItem(p, outcomeAwaiting)
		it.Reasons = p.Reasons
		res.add(it)
	}
	res.selected = len(o.Packages) > 0
	for _, p := range plan.skipped {
		it := pkgItem(p, outcomeSkipped)
		it.Reasons = []string{"Key Vault rejected it before; select it with --package to try again"}
		res.add(it)
	}
	if werr := env.Result(res, func(w io.Writer) error { return res.write(w) }); werr != nil {
		return werr
	}
	return res.err(ctx)
}

// plan is what upload will do.
type plan struct {
	jobs       []*upload.Job     // reconciliations first
	refused    []*verify.Package // selected but not uploadable
	awaiting   []*verify.Package // selected, lacking only custodian approvals
	skipped    []*verify.Package // rejected before and not selected
	mismatched []*verify.Package // Key Vault's answer to an earlier import did not match
}

// planUpload selects the packages: the ones named, or every outstanding one; every package
// the ledger holds an intent for is reconciled first, selected or not.
func planUpload(rep *verify.Report, selection []string) (*plan, error) {
	selected := map[bundle.ID]bool{}
	for _, s := range selection {
		p, err := findPackage(rep, s)
		if err != nil {
			return nil, err
		}
		if !p.Outstanding {
			return nil, exitcode.Wrap(exitcode.Refused, fmt.Errorf("key package %s (%s) is uploaded already", p.Fingerprint, p.KeyName), "")
		}
		selected[p.ID] = true
	}
	pl := &plan{}
	var imports []*upload.Job
	for _, p := range rep.Packages {
		if !p.Outstanding {
			continue
		}
		chosen := len(selected) == 0 || selected[p.ID]
		intent := p.Upload != nil && p.Upload.State == store.StateIntent
		wasRejected := p.Upload != nil && p.Upload.State == store.StateRejected
		if p.Upload != nil && p.Upload.State == store.StateVaultMismatch {
			// Final: reported as it was recorded, never imported again.
			if chosen {
				pl.mismatched = append(pl.mismatched, p)
			}
			continue
		}
		if chosen && p.Uploadable {
			if why := tagRoom(p); why != "" {
				p.Reasons = append(p.Reasons, why)
				pl.refused = append(pl.refused, p)
				continue
			}
		}
		switch {
		case chosen && p.Uploadable && wasRejected && len(selected) == 0:
			pl.skipped = append(pl.skipped, p)
		case chosen && p.Uploadable:
			j := job(p)
			j.Reconcile = intent
			if intent {
				pl.jobs = append(pl.jobs, j)
			} else {
				imports = append(imports, j)
			}
			continue
		case chosen && awaitsApproval(p):
			pl.awaiting = append(pl.awaiting, p)
		case chosen:
			pl.refused = append(pl.refused, p)
		}
		if intent {
			j := job(p)
			j.ReconcileOnly = true
			pl.jobs = append(pl.jobs, j)
		}
	}
	pl.jobs = append(pl.jobs, imports...)
	return pl, nil
}

// awaitsApproval reports whether the only thing p lacks to be uploaded is custodian
// approvals.
func awaitsApproval(p *verify.Package) bool {
	return p.Outstanding && !p.Approved && len(p.Reasons) == 1
}

func findPackage(rep *verify.Report, s string) (*verify.Package, error) {
	if id, err := bundle.ParseID(strings.ToLower(s)); err == nil {
		for _, p := range rep.Packages {
			if p.ID == id {
				return p, nil
			}
		}
	} else if short, err := bundle.ParseShort(s); err == nil {
		for _, p := range rep.Packages {
			if p.Fingerprint == short {
				return p, nil
			}
		}
	} else {
		return nil, clirun.Usagef("--package %q: want a bundle ID (64 hex digits) or a fingerprint", s)
	}
	var have []string
	for _, p := range rep.Packages {
		if p.Outstanding {
			have = append(have, fmt.Sprintf("%s (%s)", p.Fingerprint, p.KeyName))
		}
	}
	hint := "the medium holds no key package awaiting upload"
	if len(have) > 0 {
		hint = "the key packages awaiting upload on this medium: " + strings.Join(have, ", ")
	}
	return nil, exitcode.Wrap(exitcode.Bundle, fmt.Errorf("no key package %s on the medium", s), hint)
}

// tagRoom says why a package's tags leave no room for upload's own tag (Key Vault allows
// payload.MaxTags on a key; SPEC.md allows a target as many), or "".
func tagRoom(p *verify.Package) string {
	tags := p.Manifest().Target.Tags
	if _, ok := tags[upload.TagPackage]; ok {
		return fmt.Sprintf("its target has a tag named %s, which upload sets itself", upload.TagPackage)
	}
	if len(tags) >= payload.MaxTags {
		return fmt.Sprintf("its target has %d tags: Key Vault allows %d on a key, and upload adds its own (%s)", len(tags), payload.MaxTags, upload.TagPackage)
	}
	return ""
}

func job(p *verify.Package) *upload.Job {
	m := p.Manifest()
	j := &upload.Job{Package: p.ID, Vault: p.Vault, KeyName: p.KeyName, KeyType: p.KeyType, Target: m.Target, PublicKey: m.PublicKey, BYOK: m.BYOK}
	if p.Upload != nil && p.Upload.State == store.StateIntent {
		j.IntentAt = time.Unix(p.Upload.Updated, 0)
	}
	return j
}

func item(j *upload.Job, outcome string) uploadItem {
	return uploadItem{Package: fp(j.Package), KeyName: j.KeyName, KeyType: j.KeyType, Vault: j.Vault, Outcome: outcome}
}

func pkgItem(p *verify.Package, outcome string) uploadItem {
	return uploadItem{Package: fp(p.ID), KeyName: p.KeyName, KeyType: p.KeyType, Vault: p.Vault, Outcome: outcome}
}

func (r *uploadResult) add(it uploadItem) {
	r.Packages = append(r.Packages, it)
	r.Counts[it.Outcome]++
	if it.unreceipted() {
		r.Unreceipted++
	}
}

// unreceipted reports whether Key Vault answered for the package but its receipt could not
// be written (the medium or the ledger failed).
func (it *uploadItem) unreceipted() bool {
	return it.err != nil && (it.Outcome == upload.OutcomeImported || it.Outcome == upload.OutcomePublicKeyMismatch || it.Outcome == upload.OutcomeRejected)
}

func (r *uploadResult) write(w io.Writer) error {
	var b strings.Builder
	if len(r.Packages) == 0 {
		b.WriteString("nothing to upload\n")
	}
	for _, it := range r.Packages {
		fmt.Fprintf(&b, "%s  %s  %s  %s\n", it.Package.Fingerprint, it.KeyName, it.KeyType, it.Outcome)
		if it.KID != "" {
			fmt.Fprintf(&b, "    key:     %s\n", it.KID)
		}
		for _, kid := range it.Versions {
			fmt.Fprintf(&b, "    DUPLICATE: key vault holds %s carrying this package's tag\n", kid)
		}
		if it.Receipt != nil {
			fmt.Fprintf(&b, "    receipt: %s\n", it.Receipt.Fingerprint)
		}
		if it.Detail != "" {
			fmt.Fprintf(&b, "    detail:  %s\n", it.Detail)
		}
		if it.Error != "" {
			fmt.Fprintf(&b, "    error:   %s\n", it.Error)
		}
		for _, why := range it.Reasons {
			fmt.Fprintf(&b, "    reason:  %s\n", why)
		}
	}
	for _, req := range r.Requests {
		b.WriteString("\n")
		b.WriteString(req.String())
	}
	if len(r.Packages) > 0 {
		var parts []string
		for _, k := range []string{upload.OutcomeImported, upload.OutcomePublicKeyMismatch, upload.OutcomeVaultMismatch, upload.OutcomeRejected, upload.OutcomeFailed,
			upload.OutcomeNotImported, upload.OutcomeInterrupted, outcomeRefused, outcomeAwaiting, outcomeSkipped, outcomeWould, outcomeWouldLook} {
			if n := r.Counts[k]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, k))
			}
		}
		fmt.Fprintf(&b, "%s\n", strings.Join(parts, ", "))
	}
	for _, it := range r.Packages {
		if it.Outcome == outcomeAwaiting {
			fmt.Fprintf(&b, "Next: on the offline station the custodians approve %s: byok-offline approve --package %s\n", it.Package.Fingerprint, it.Package.Fingerprint)
		}
	}
	if r.Unreceipted > 0 {
		fmt.Fprintf(&b, "%d import(s) have no receipt on the medium yet: run byok-online upload again with this stick writable; it finds each import in Key Vault and writes its receipt, importing nothing twice\n", r.Unreceipted)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// err returns the run's error, most severe first: interrupted, an import not receipted, an
// answer of Key Vault that does not match the request, a duplicate import, a public key
// mismatch, refused packages, Key Vault failures and refusals.
func (r *uploadResult) err(ctx context.Context) error {
	first := func(outcome string) *uploadItem {
		for i := range r.Packages {
			if r.Packages[i].Outcome == outcome {
				return &r.Packages[i]
			}
		}
		return nil
	}
	if it := first(upload.OutcomeInterrupted); it != nil || ctx.Err() != nil {
		return fmt.Errorf("%w: the upload stopped; run upload again to finish", exitcode.ErrInterrupted)
	}
	for _, it := range r.Packages {
		// Imported, but the receipt could not be written: the medium or the ledger failed.
		if it.unreceipted() {
			return exitcode.Wrap(exitCode(it.err), fmt.Errorf("key package %s (%s) was %s but not receipted: %w", it.Package.Fingerprint, it.KeyName, it.Outcome, it.err),
				"run upload again with the stick writable: it finds the import and writes the receipt")
		}
	}
	if it := first(upload.OutcomeVaultMismatch); it != nil {
		id := it.KID
		if id == "" {
			id = "<kid>"
		}
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("key package %s (%s): Key Vault's answer to its import does not match the request (%d such): %s; nothing was receipted",
			it.Package.Fingerprint, it.KeyName, r.Counts[upload.OutcomeVaultMismatch], it.Detail),
			fmt.Sprintf("look at the key in the Azure portal or with: az keyvault key show --id %s; the answer is kept in this station's ledger (byok-online status) and the package is never imported again", id))
	}
	for _, it := range r.Packages {
		if len(it.Versions) > 1 {
			return exitcode.Wrap(exitcode.Verify, fmt.Errorf("key package %s (%s) was imported %d times: Key Vault holds %s, each carrying its tag; the receipt names %s",
				it.Package.Fingerprint, it.KeyName, len(it.Versions), strings.Join(it.Versions, ", "), it.KID),
				"every version is recorded in this station's ledger (byok-online status); check which one applications use and disable the others (az keyvault key set-attributes --enabled false --id <kid>)")
		}
	}
	if it := first(upload.OutcomePublicKeyMismatch); it != nil {
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("public key mismatch: Key Vault holds %s with another public key than key package %s describes (%d such)",
			it.KID, it.Package.Fingerprint, r.Counts[upload.OutcomePublicKeyMismatch]), "the receipt records it; do not use this key until the difference is understood")
	}
	if it := first(outcomeRefused); it != nil {
		hint := ""
		if it.expired {
			hint = "an expired key package is never uploaded: the offline station packages the key again (byok-offline package) and its custodians approve the new one (byok-offline approve)"
		}
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("key package %s (%s) cannot be uploaded: %s", it.Package.Fingerprint, it.KeyName, strings.Join(it.Reasons, "; ")), hint)
	}
	if it := first(outcomeAwaiting); it != nil && r.selected {
		return exitcode.Wrap(exitcode.Refused, fmt.Errorf("key package %s (%s) awaits approval: %s", it.Package.Fingerprint, it.KeyName, strings.Join(it.Reasons, "; ")),
			"on the offline station the custodians approve it: byok-offline approve --package "+it.Package.Fingerprint)
	}
	if it := first(upload.OutcomeFailed); it != nil {
		if it.err != nil {
			return fmt.Errorf("key package %s (%s) failed: %w", it.Package.Fingerprint, it.KeyName, it.err)
		}
		return exitcode.Wrap(exitcode.Vault, fmt.Errorf("key package %s (%s) failed", it.Package.Fingerprint, it.KeyName), "")
	}
	if it := first(upload.OutcomeRejected); it != nil {
		return exitcode.Wrap(exitcode.Vault, fmt.Errorf("key vault rejected key package %s (%s): %s", it.Package.Fingerprint, it.KeyName, it.Detail), "")
	}
	return nil
}

// receiptWriter appends receipts to the online chain one at a time.
type receiptWriter struct {
	st       *station.Station
	key      ed25519.PrivateKey
	policy   bundle.ID
	lifetime time.Duration
	now      func() time.Time
	mu       sync.Mutex
}

// Write implements upload.Receipts.
func (w *receiptWriter) Write(ctx context.Context, r *payload.Receipt) (bundle.ID, error) {
	if err := r.Validate(); err != nil {
		return bundle.ID{}, fmt.Errorf("receipt for %s: %w", r.Package.Short(), err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	b, err := appendOwn(ctx, w.st, w.policy, r, w.key, w.now(), w.lifetime)
	if err != nil {
		return bundle.ID{}, err
	}
	return b.ID(), nil
}

// WriteBatch implements upload.BatchReceipts: the receipts go to the online chain in one
// journal cycle (station.AppendBatch), each ending its upload in the ledger.
func (w *receiptWriter) WriteBatch(ctx context.Context, rs []*payload.Receipt) ([]bundle.ID, error) {
	items := make([]station.Item, len(rs))
	for i, r := range rs {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("receipt for %s: %w", r.Package.Short(), err)
		}
		items[i] = station.Item{Payload: r, Apply: store.ApplyOwn}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	pos, err := w.st.Position(w.policy)
	if err != nil {
		return nil, err
	}
	now := w.now()
	if head := time.Unix(pos.Head.Created, 0); now.Before(head) {
		now = head
	}
	bs, err := w.st.AppendBatch(ctx, pos, items, w.key, now, w.lifetime)
	if err != nil {
		return nil, err
	}
	ids := make([]bundle.ID, len(bs))
	for i, b := range bs {
		ids[i] = b.ID()
	}
	return ids, nil
}

// vaultCache holds one client per vault URL.
type vaultCache struct {
	d  deps
	o  vault.Options
	mu sync.Mutex
	m  map[string]vault.Vault
}

func (c *vaultCache) get(url string) (vault.Vault, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[url]
	if !ok {
		v = c.d.newVault(url, c.o)
		c.m[url] = v
	}
	return v, nil
}

// warmUp reads, in the background, the latest KEK this station offered in each vault: the
// sign-in (Key Vault's authentication challenge) and a connection are then done while the
// medium is verified, not by the uploads' first requests. What the read returns does not
// matter. The returned function cancels it and waits for it.
func warmUp(ctx context.Context, env *clirun.Env, vaults *vaultCache, s *store.Store) (stop func()) {
	keks, err := s.KEKs()
	if err != nil || len(keks) == 0 {
		return func() {}
	}
	latest := map[string]store.KEK{}
	for _, k := range keks {
		if l, ok := latest[k.Vault]; !ok || k.Seq > l.Seq {
			latest[k.Vault] = k
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for url, k := range latest {
		kid, err := byok.ParseKeyID(k.KID)
		if err != nil {
			continue
		}
		wg.Go(func() {
			v, _ := vaults.get(url)
			if _, err := v.GetKey(ctx, kid.Name, kid.Version); err != nil && ctx.Err() == nil {
				env.Log.Debug("warming up the connection to key vault", "vault", url, "err", err)
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// progress shows the uploads: a bar on a terminal, a log line per package otherwise.
type progress struct {
	env   *clirun.Env
	tty   bool
	total int
	mu    sync.Mutex
	done  int
	bad   int
}

func newProgress(env *clirun.Env, total int) *progress {
	p := &progress{env: env, total: total}
	if f, ok := env.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *progress) add(r upload.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if r.Outcome != upload.OutcomeImported && r.Outcome != upload.OutcomeNotImported {
		p.bad++
	}
	if !p.tty {
		p.env.Log.Info("upload progress", "done", p.done, "total", p.total, "package", r.Job.Package.Short(), "outcome", r.Outcome)
		return
	}
	const width = 30
	n := width * p.done / max(p.total, 1)
	fmt.Fprintf(p.env.Stderr, "\r[%s%s] %d/%d uploaded", strings.Repeat("=", n), strings.Repeat(" ", width-n), p.done, p.total)
	if p.bad > 0 {
		fmt.Fprintf(p.env.Stderr, ", %d not imported", p.bad)
	}
}

func (p *progress) close() {
	if p.tty && p.done > 0 {
		fmt.Fprintln(p.env.Stderr)
	}
}
