// Package audit is the compliance auditor's replay of a transfer medium: both chains from
// genesis (or from an earlier audit's checkpoint), every signature, link, policy version,
// approval threshold and expiry, each key package matched to its receipt, and a verdict, PASS
// or FAIL, for people (text, and an HTML report they open in a browser) and machines (JSON).
//
// The checks themselves are the transfer format's ([chain.Replay]); this package collects what
// a person needs to judge them: who signed and who approved each step, which key landed in
// which vault with which public key, and every finding with the bundle it concerns.
//
// # Guarantees
//
//   - Read-only: the audit needs neither an HSM nor a network and never writes to the medium.
//     It takes the medium's shared lock (so no station writes while it reads); on a read-only
//     medium that is a no-op.
//   - Constant memory: the timeline of the HTML report is streamed to a temporary file as the
//     replay goes, and the key inventory and the paths of the verified files are spooled to
//     others, so memory depends on the number of policy versions, key packages awaiting
//     upload and findings, not on the length of the chains; only the inventory's order takes
//     24 bytes per key, and the residency view one entry per key bound to regions (with one
//     line per package of such a key).
//   - Evidence: the report names the medium's absolute path, the program that audited (its
//     version and its file's SHA-256), the file of each chain's head with its SHA-256, and the
//     set digest of every bundle file the audit verified ([Evidence]).
//   - Reproducible: the HTML report holds no time of its own and puts every table in a fixed
//     order, so two audits of the same medium by the same program write the same bytes.
//   - Atomic outputs: the HTML report and the checkpoint are written to a temporary file in
//     the target folder, synced and renamed into place; a failed audit leaves no partial file.
//   - Incremental: a checkpoint holds the replay's state, the trust anchor, the heads and the
//     findings so far, so an audit --since it replays only newer bundles and reaches the same
//     verdict as a full replay (a failure stays a failure). A checkpoint made for another
//     anchor, or for a medium that no longer extends it (rolled back or forked), is refused
//     with a finding. A checkpoint is the auditor's own record, trusted as such: keep it where
//     those who carry the medium cannot change it.
//
// # Exit codes
//
// [Command] exits 0 on PASS, 3 on any finding ([ErrFailed]), 4 when the replay was stopped by
// a malformed or unreadable bundle ([MalformedError]) or the medium or checkpoint cannot be
// read ([ErrUnreadable]), and 2 on usage errors ([ErrOptions], [HTMLError]). Only the
// command file (command.go) maps these errors to exit codes.
package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/airgap-byok/airgap-byok/shared/buildinfo"
	"github.com/airgap-byok/airgap-byok/shared/logsetup"
	"github.com/airgap-byok/airgap-byok/shared/medialock"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Verdicts.
const (
	Pass = "PASS"
	Fail = "FAIL"
)

// Key statuses in the inventory.
const (
	StatusImported    = payload.OutcomeImported          // uploaded; the receipt's public key is the packaged key
	StatusMismatch    = payload.OutcomePublicKeyMismatch // uploaded, but Key Vault returned another public key
	StatusNotUploaded = "not_uploaded"                   // no receipt that imported it (yet)
	StatusUnmatched   = "unmatched_receipt"              // a receipt for no key package awaiting upload
	// StatusReceiptMissing: no receipt on this medium, but the online station's ledger
	// (Options.Imported) says the package was imported: the receipt is on a newer stick, or
	// in the station's copy (byok-online media restore).
	StatusReceiptMissing = "imported_receipt_missing"
)

// Options configure an audit.
type Options struct {
	Media      string           // medium folder (required)
	Policy     string           // expected policy v1: short fingerprint or 64-hex ID; empty = trust on first use, reported
	Since      string           // checkpoint file of an earlier audit: replay only what is newer
	Checkpoint string           // write a checkpoint here at the end
	HTML       string           // write the HTML report here
	Now        func() time.Time // clock for the report's time stamp; default time.Now
	// Workers is the number of bundles verified in parallel; 0 means GOMAXPROCS.
	Workers int
	// Imported, if set, says whether the online station's ledger knows key package pkg as
	// imported: an audit run with the station's state folder tells a
	// package whose receipt is missing from the medium from one never uploaded.
	Imported func(pkg bundle.ID) (bool, error)
	// Wait is how long to wait for a writer that holds the medium (the --wait flag); 0 fails
	// at once (exit 8).
	Wait time.Duration
}

// Report is the outcome of an audit. Its key inventory lives in a temporary file: read it
// with Keys, and call Close when done.
type Report struct {
	Verdict           string      `json:"verdict"` // Pass or Fail
	Medium            string      `json:"medium"`
	Generated         time.Time   `json:"generated"`
	Anchor            string      `json:"anchor,omitempty"` // ID of policy v1, hex
	AnchorFingerprint string      `json:"anchor_fingerprint,omitempty"`
	Pinned            bool        `json:"pinned"`               // the anchor was given (--policy), now or by the checkpoint's audit
	TrustedOnFirstUse bool        `json:"trusted_on_first_use"` // no anchor was given: the first policy was taken as found
	Since             *Since      `json:"since,omitempty"`
	Complete          bool        `json:"complete"` // both chains were replayed to their end
	Heads             chain.Heads `json:"heads"`
	Counts            Counts      `json:"counts"`
	Findings          []Finding   `json:"findings"`
	Policies          []Policy    `json:"policies"`
	Toolsets          []Toolset   `json:"toolsets"` // which programs wrote which bundles, per chain
	// Regions is the per-region view of the policy in force; Residency, per key bound to
	// regions, every vault and region it was packaged for and where it landed.
	Regions      []RegionView   `json:"regions"`
	Residency    []KeyResidency `json:"residency"`
	Warnings     []string       `json:"warnings"`
	WarningCount int            `json:"warning_count"`
	HTML         string         `json:"html,omitempty"`       // the HTML report written
	Checkpoint   string         `json:"checkpoint,omitempty"` // the checkpoint written
	Tool         Tool           `json:"tool"`                 // the program that audited
	Evidence     Evidence       `json:"evidence"`             // the files it verified

	keys *spool
}

// Tool is the program that ran the audit.
type Tool struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256,omitempty"` // of the running binary's file, lowercase hex
	Error   string `json:"error,omitempty"`  // why the binary's file could not be hashed
}

func self() Tool {
	t, err := buildinfo.Self()
	if err != nil {
		return Tool{Version: buildinfo.Version(), Error: err.Error()}
	}
	return Tool{Version: t.Version, SHA256: t.SHA256}
}

// Since describes the checkpoint an audit continued from.
type Since struct {
	File    string      `json:"file"`
	Heads   chain.Heads `json:"heads"`
	Resumed bool        `json:"resumed"` // false: the checkpoint had no policy in force, so the chains were replayed from genesis against its heads
}

// Counts are the totals of the medium up to the heads (cumulative across checkpoints).
type Counts struct {
	Offline     uint64 `json:"offline"`     // verified bundles of the offline chain
	Online      uint64 `json:"online"`      // verified bundles of the online chain
	Replayed    uint64 `json:"replayed"`    // bundles verified by this run
	Policies    int    `json:"policies"`    // policy versions in force
	Offers      uint64 `json:"offers"`      // KEK offers
	Packages    uint64 `json:"packages"`    // key packages
	Approvals   uint64 `json:"approvals"`   // approval bundles
	Receipts    uint64 `json:"receipts"`    // upload receipts
	Imported    uint64 `json:"imported"`    // receipts that consumed a package
	Outstanding int    `json:"outstanding"` // key packages not uploaded
	Keys        int    `json:"keys"`        // rows in this report's key inventory
	Findings    int    `json:"findings"`
}

// Finding is one verdict about one bundle.
type Finding struct {
	Verdict     string `json:"verdict"` // class, as chain.Verdict names it: "bad signature", "missing approval", ...
	Chain       string `json:"chain"`
	Seq         uint64 `json:"seq,omitempty"`
	ID          string `json:"id,omitempty"` // bundle ID, hex
	Fingerprint string `json:"fingerprint,omitempty"`
	Kind        string `json:"kind,omitempty"`
	Path        string `json:"path,omitempty"`
	Message     string `json:"message"`
	Stopped     bool   `json:"stopped"`                   // the replay could not go past this bundle
	Earlier     bool   `json:"from_checkpoint,omitempty"` // found by the audit that wrote the checkpoint
	// Err is the typed error (wrapping a chain or bundle sentinel); nil for findings read
	// from a checkpoint.
	Err error `json:"-"`
}

// Malformed reports whether the finding is about input that could not be read or parsed,
// rather than input that was read and failed verification.
func (f Finding) Malformed() bool {
	switch f.Verdict {
	case "malformed", "too large", "unsupported version", "error":
		return true
	}
	return false
}

// Policy is a policy version found on the medium.
type Policy struct {
	ID             string     `json:"id"`
	Fingerprint    string     `json:"fingerprint"`
	Version        uint64     `json:"version"`
	Seq            uint64     `json:"seq"`                 // offline seq of the policy bundle
	Effective      uint64     `json:"effective,omitempty"` // offline seq of the approval that put it in force; 0 if awaiting approval
	Threshold      int        `json:"threshold"`
	Custodians     []Approver `json:"custodians"`
	Vaults         []Vault    `json:"vaults"`
	OfflineStation string     `json:"offline_station"` // key fingerprint
	OnlineStation  string     `json:"online_station"`  // key fingerprint
	MinKEKBits     int        `json:"min_kek_bits"`
	KeyTypes       []string   `json:"key_types"`
	AllowWeakerKEK bool       `json:"allow_weaker_kek"`
	Lifetime       int64      `json:"bundle_lifetime_seconds"`
	MaxClockSkew   int64      `json:"max_clock_skew_seconds"`
	ApprovedBy     []Approver `json:"approved_by"` // custodians whose approval of this version counted
}

// Vault is a vault a policy allows.
type Vault struct {
	URL    string `json:"url"`
	Kind   string `json:"kind"`
	Region string `json:"region"`
}

// Approver is a custodian, named by the policy that lists its key.
type Approver struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"` // short form of the key ID
	Key         string `json:"key"`         // key ID, hex
}

// Key is one row of the key inventory: a key package and the receipt that uploaded it.
type Key struct {
	Package            string     `json:"package"` // key package bundle ID, hex; for an unmatched receipt, the ID it names
	PackageFingerprint string     `json:"package_fingerprint"`
	PackageSeq         uint64     `json:"package_seq,omitempty"`
	Name               string     `json:"name,omitempty"`
	KeyType            string     `json:"key_type,omitempty"`
	Vault              string     `json:"vault,omitempty"`
	Region             string     `json:"region,omitempty"`
	PublicKeySHA256    string     `json:"public_key_sha256,omitempty"` // SHA-256 of the packaged DER SubjectPublicKeyInfo (RSA, EC)
	KCV                string     `json:"kcv,omitempty"`               // AES key check value, hex
	Approvals          []Approver `json:"approvals"`
	Status             string     `json:"status"`             // StatusImported, StatusMismatch, StatusNotUploaded, StatusReceiptMissing, StatusUnmatched
	Rejected           int        `json:"rejected,omitempty"` // uploads Key Vault refused before
	Receipt            *Receipt   `json:"receipt,omitempty"`
	Residency          []string   `json:"residency,omitempty"` // the regions the package binds the key to
}

// Receipt is the upload receipt of a key.
type Receipt struct {
	ID              string `json:"id"`
	Fingerprint     string `json:"fingerprint"`
	Seq             uint64 `json:"seq"`
	Outcome         string `json:"outcome"`
	Vault           string `json:"vault"`
	KID             string `json:"kid,omitempty"`
	Version         string `json:"version,omitempty"`
	PublicKeySHA256 string `json:"public_key_sha256,omitempty"` // of what Key Vault returned
	// PublicKeyMatch says whether Key Vault returned the packaged public key; absent for
	// oct-HSM keys, for which Key Vault returns no key material.
	PublicKeyMatch *bool  `json:"public_key_match,omitempty"`
	Error          string `json:"error,omitempty"` // Key Vault's error (the last refusal)
	// Versions, from a version 2 receipt, are the key versions carrying the package's tag
	// when Key Vault holds more than one: a duplicate import.
	Versions []string `json:"versions,omitempty"`
}

// Keys yields the key inventory: the keys uploaded during the replayed part of the chains
// and the packages not uploaded, in the order of their key packages on the offline chain,
// then the receipts that match no key package, in the order of the online chain.
func (r *Report) Keys() iter.Seq2[Key, error] {
	if r.keys == nil {
		return func(func(Key, error) bool) {}
	}
	return r.keys.all()
}

// Close removes the report's temporary files.
func (r *Report) Close() error {
	if r.keys == nil {
		return nil
	}
	return r.keys.close()
}

// Failed reports whether the verdict is FAIL.
func (r *Report) Failed() bool { return r.Verdict != Pass }

// Errors of Run and Report.Err.
var (
	// ErrOptions reports options the audit cannot run with.
	ErrOptions = errors.New("usage")
	// ErrUnreadable reports a medium or checkpoint that cannot be read or parsed.
	ErrUnreadable = errors.New("bad bundle")
	// ErrOutput reports a report or checkpoint that cannot be written.
	ErrOutput = errors.New("media")
	// ErrInterrupted reports a replay stopped by the context.
	ErrInterrupted = errors.New("interrupted")
	// ErrFailed reports the verdict FAIL.
	ErrFailed = errors.New("verification failed")
)

// MalformedError is a FAIL whose replay was stopped by input it could not read or parse.
type MalformedError struct{ Err error }

func (e *MalformedError) Error() string { return e.Err.Error() }
func (e *MalformedError) Unwrap() error { return e.Err }

// HTMLError reports an --html path where no report can be created.
type HTMLError struct{ Err error }

func (e *HTMLError) Error() string { return "html report: " + e.Err.Error() }
func (e *HTMLError) Unwrap() error { return e.Err }

// Err returns nil on PASS, else an error wrapping ErrFailed: a *MalformedError if the replay
// was stopped by input it could not read or parse.
func (r *Report) Err() error {
	if !r.Failed() {
		return nil
	}
	classes := []string{}
	malformed := false
	for _, f := range r.Findings {
		if !slices.Contains(classes, f.Verdict) {
			classes = append(classes, f.Verdict)
		}
		malformed = malformed || (f.Stopped && f.Malformed())
	}
	err := fmt.Errorf("%w: audit FAIL: %d finding(s): %s", ErrFailed, len(r.Findings), strings.Join(classes, ", "))
	if malformed {
		return &MalformedError{Err: err}
	}
	return err
}

// Run audits the medium. It returns an error only if the audit could not be carried out
// (bad options, an unreadable medium or checkpoint, an output that cannot be written); a
// medium that fails verification is a Report with the verdict Fail. log may be nil.
func Run(ctx context.Context, opts Options, log *slog.Logger) (_ *Report, err error) {
	if log == nil {
		log = logsetup.Discard()
	}
	if opts.Media == "" {
		return nil, fmt.Errorf("%w: --media is required", ErrOptions)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	for _, out := range []struct{ flag, path string }{{"--html", opts.HTML}, {"--checkpoint", opts.Checkpoint}} {
		if out.path != "" && onMedium(opts.Media, out.path) {
			return nil, fmt.Errorf("%w: %s %s is on the medium, and the audit never writes there", ErrOptions, out.flag, out.path)
		}
	}
	// The audit reads: it creates, changes and deletes nothing on the medium (SPEC.md §8.3).
	m, err := media.Open(opts.Media)
	if err != nil {
		if errors.Is(err, media.ErrNotMedia) {
			return nil, err // 4, "is the stick mounted?"
		}
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	defer m.Close()
	lock, err := medialock.SharedWith(ctx, opts.Media, station.LockOptions(log, opts.Wait))
	if err != nil {
		return nil, err
	}
	defer lock.Release()

	var cp *checkpoint
	if opts.Since != "" {
		if cp, err = readCheckpoint(opts.Since); err != nil {
			return nil, err
		}
	}
	pin, err := parsePin(opts.Policy)
	if err != nil {
		return nil, err
	}

	a := &auditor{
		log:        log,
		stations:   map[bundle.Chain]string{},
		custodians: map[bundle.ID]string{},
		regions:    map[string]string{},
		pending:    map[bundle.ID]*pkgInfo{},
		polApprove: map[bundle.ID][]bundle.ID{},
		named:      map[string]bool{},
	}
	if a.keys, err = newSpool(); err != nil {
		return nil, err
	}
	if a.files, err = newFileSet(); err != nil {
		a.keys.close()
		return nil, err
	}
	defer a.files.close()
	medium, err := filepath.Abs(opts.Media)
	if err != nil {
		medium = opts.Media
	}
	report := &Report{Medium: medium, Generated: now().UTC(), keys: a.keys, Findings: []Finding{}, Policies: []Policy{}, Toolsets: []Toolset{}, Warnings: []string{},
		Tool: self(), Regions: []RegionView{}, Residency: []KeyResidency{}}
	defer func() {
		if err != nil {
			report.Close()
		}
	}()
	rep := report
	if opts.HTML != "" {
		if a.html, err = newHTMLWriter(opts.HTML); err != nil {
			return nil, &HTMLError{Err: err}
		}
		defer a.html.abort()
	}

	if err := a.run(ctx, m, opts, pin, cp, rep); err != nil {
		return nil, err
	}
	if rep.Evidence, err = a.files.finish(m, rep.Heads); err != nil {
		return nil, err
	}
	if opts.Checkpoint != "" && a.refused {
		log.Warn("no checkpoint written: the audit was refused before the replay", "checkpoint", opts.Checkpoint)
	} else if opts.Checkpoint != "" {
		if err := writeCheckpoint(opts.Checkpoint, a.checkpoint(rep)); err != nil {
			return nil, fmt.Errorf("%w: write checkpoint: %w", ErrOutput, err)
		}
		rep.Checkpoint = opts.Checkpoint
	}
	if a.html != nil {
		if err := a.html.finish(rep); err != nil {
			return nil, fmt.Errorf("%w: write html report: %w", ErrOutput, err)
		}
		rep.HTML = opts.HTML
	}
	log.Info("audit done", "verdict", rep.Verdict, "findings", len(rep.Findings), "replayed", rep.Counts.Replayed)
	return rep, nil
}

// progressEvery is how many bundles pass between progress log lines.
const progressEvery = 10_000

// auditor collects what the report needs while the replay goes.
type auditor struct {
	log          *slog.Logger
	html         *htmlWriter
	keys         *spool
	files        *fileSet
	stations     map[bundle.Chain]string // station names from the enrollments
	custodians   map[bundle.ID]string    // custodian names from every policy seen
	regions      map[string]string       // vault URL → region label, from every policy seen
	lastPolicy   *payload.Policy         // the latest policy version seen (in force or awaiting approval)
	lastPolicyID bundle.ID
	pending      map[bundle.ID]*pkgInfo    // key packages awaiting upload, as chain.State.Packages
	polApprove   map[bundle.ID][]bundle.ID // policy ID → custodians whose approval counted, sorted
	state        *chain.State              // the final state
	replayed     uint64
	order        uint64      // timeline position, across checkpoints
	err          error       // a failure of the audit itself inside OnBundle
	refused      bool        // the audit ended before the replay
	remembered   chain.Heads // from the checkpoint: the furthest each chain was seen
	m            *media.Media
	copies       []Finding       // plain .byok copies that are not their package's .byok
	named        map[string]bool // the plain copies' names of the key packages replayed
	toolsets     []Toolset       // which toolset wrote which bundles (toolsets.go)
	imported     func(bundle.ID) (bool, error)
	regionKeys   map[string]*[2]int       // region → key packages, imported ones (regions.go)
	bound        map[string]bool          // identities of keys a package binds to regions
	residency    map[string]*KeyResidency // per bound key, from residencyPass (and the checkpoint)
	resFindings  []Finding                // residency disagreements found by this audit
}

// pkgInfo is what the inventory needs of a key package until its receipt.
type pkgInfo struct {
	Seq       uint64      `json:"seq"`
	Name      string      `json:"name"`
	KeyType   string      `json:"key_type"`
	Vault     string      `json:"vault"`
	PubSHA    string      `json:"public_key_sha256,omitempty"`
	KCV       string      `json:"kcv,omitempty"`
	Approvals []bundle.ID `json:"approvals"`
	Rejected  int         `json:"rejected"`
	LastRcpt  *Receipt    `json:"last_receipt,omitempty"` // the last refusal
	Regions   []string    `json:"regions,omitempty"`      // the residency the package states
}

func (a *auditor) run(ctx context.Context, m *media.Media, opts Options, pin pin, cp *checkpoint, rep *Report) error {
	a.m, a.imported = m, opts.Imported
	ropts := chain.Options{Workers: opts.Workers, OnBundle: a.onBundle}
	var earlier []Finding
	ropts.Warn = func(w media.Warning) {
		a.log.Warn("ignoring a file on the medium", "path", w.Path, "reason", w.Reason)
	}

	// The trust anchor: from --policy, then from the checkpoint.
	anchor := pin.id
	if !pin.isZero() && pin.id.IsZero() {
		id, f := resolveShort(m, pin.short)
		if f != nil {
			return a.refuse(rep, *f, cp, opts.Since)
		}
		anchor = id
	}
	rep.Pinned = !pin.isZero()
	if cp != nil {
		rep.Since = &Since{File: opts.Since, Heads: cp.Heads}
		if !pin.isZero() && !cp.Anchor.IsZero() && !pin.matches(cp.Anchor) {
			err := &CheckpointAnchorError{Checkpoint: cp.Anchor, Want: pin.String(), What: "is pinned"}
			return a.refuse(rep, Finding{Verdict: chain.Verdict(err), Chain: "offline", Message: err.Error(), Err: err}, cp, opts.Since)
		}
		if id, e, ok := firstPolicy(m); ok && !cp.Anchor.IsZero() && id != cp.Anchor {
			err := &CheckpointAnchorError{Checkpoint: cp.Anchor, Want: id.Short(), What: "is the medium's first policy"}
			return a.refuse(rep, *untrustedFinding(err, id, e), cp, opts.Since)
		}
		anchor = cp.Anchor
		rep.Pinned = rep.Pinned || cp.Pinned
		a.remembered = cp.Remembered
		for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
			if h := *cp.Heads.Of(c); h.Seq > a.remembered.Of(c).Seq {
				*a.remembered.Of(c) = h
			}
		}
		ropts.Remembered = a.remembered
		if cp.State != nil && cp.State.Current() != nil {
			if f := checkHeads(m, cp.Heads); f != nil {
				return a.refuse(rep, *f, cp, opts.Since)
			}
			ropts.Resume = cp.State
			rep.Since.Resumed = true
			earlier = cp.Findings
			a.resume(cp)
		}
	}
	ropts.Anchor = anchor

	a.log.Info("audit", "medium", opts.Media, "anchor", shortOrNone(anchor), "since", opts.Since)
	res, stopErr := chain.Replay(ctx, m, ropts)
	if a.err != nil {
		return a.err
	}
	if stopErr != nil && ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrInterrupted, stopErr)
	}
	findings := append([]Finding{}, earlier...)
	for i := range findings {
		findings[i].Earlier = true
	}
	for i, f := range res.Findings {
		nf := newFinding(f)
		nf.Stopped = stopErr != nil && i == len(res.Findings)-1
		// A replay resumed before the bundle that stopped the earlier one stops there again:
		// one finding, found by this audit too.
		if j := slices.IndexFunc(findings[:len(earlier)], nf.same); j >= 0 {
			findings[j] = nf
			continue
		}
		findings = append(findings, nf)
	}
	if stopErr == nil && res.Complete && (rep.Since == nil || !rep.Since.Resumed) {
		// A copy that names no key package on the medium: nothing checked it. (A resumed
		// audit saw only the packages after its checkpoint, and does not look.)
		for _, err := range station.UnnamedByokCopies(m, a.named) {
			var ce *station.ByokCopyError
			errors.As(err, &ce)
			a.copies = append(a.copies, Finding{Verdict: "byok copy unknown", Chain: bundle.ChainOffline.String(), Path: ce.Path, Message: err.Error(), Err: err})
		}
	}
	findings = append(findings, a.copies...)
	var rf chain.Finding
	if stopErr != nil && !errors.As(stopErr, &rf) {
		// Replay refused to start (a resume it cannot take): not one of its findings.
		findings = append(findings, Finding{Verdict: chain.Verdict(stopErr), Chain: "offline", Message: stopErr.Error(), Stopped: true, Err: stopErr})
	}
	st := res.State
	a.state = st
	if st != nil && !st.Anchor.IsZero() && !pin.isZero() && !pin.matches(st.Anchor) {
		// Only when the first policy was not where resolveShort looked.
		findings = append(findings, Finding{Verdict: "untrusted", Chain: "offline", Message: (&FingerprintError{Pinned: pin.String(), Found: st.Anchor}).Error(), Err: &FingerprintError{Pinned: pin.String(), Found: st.Anchor}})
	}
	if (st == nil || st.Anchor.IsZero()) && !pin.isZero() && stopErr == nil {
		e := &FingerprintError{Pinned: pin.String()}
		findings = append(findings, Finding{Verdict: "untrusted", Chain: "offline", Message: e.Error(), Err: e})
	}

	// Packages never uploaded close the inventory.
	if err := a.flushPending(); err != nil {
		return err
	}
	if err := a.residencyPass(); err != nil {
		return err
	}
	var resFindings []Finding
	rep.Residency, resFindings = a.residencyFindings()
	findings = append(findings, resFindings...)
	if a.html != nil {
		for _, f := range findings {
			if f.Stopped && f.ID != "" && !f.Earlier {
				if err := a.html.failed(a, f); err != nil {
					return err
				}
			}
		}
	}

	rep.Findings = findings
	rep.Toolsets = a.toolsetsReport()
	rep.Complete = res.Complete
	rep.WarningCount = res.WarningCount
	for _, w := range res.Warnings {
		rep.Warnings = append(rep.Warnings, w.String())
	}
	if st != nil {
		rep.Heads = st.Heads
		if !st.Anchor.IsZero() {
			rep.Anchor, rep.AnchorFingerprint = st.Anchor.String(), st.Anchor.Short()
		}
		rep.Counts = Counts{
			Offline: st.Counts.Offline, Online: st.Counts.Online, Policies: len(st.Policies),
			Offers: st.Counts.Offers, Packages: st.Counts.Packages, Approvals: st.Counts.Approvals,
			Receipts: st.Counts.Receipts, Imported: st.Counts.Imported, Outstanding: len(st.Packages),
		}
		rep.Policies = policies(st, func(id bundle.ID) []Approver { return a.approvers(a.polApprove[id]) })
		if cur := st.Current(); cur != nil {
			rep.Regions = a.regionViews(cur.Policy)
		}
	}
	if rep.Regions == nil {
		rep.Regions = []RegionView{}
	}
	// Trust taken on first use by the audit that wrote the checkpoint is still that.
	rep.TrustedOnFirstUse = res.TrustedOnFirstUse || (cp != nil && cp.TrustedOnFirstUse)
	if rep.Pinned {
		rep.TrustedOnFirstUse = false
	}
	rep.Counts.Replayed = a.replayed
	rep.Counts.Keys = a.keys.n
	rep.Counts.Findings = len(findings)
	rep.Verdict = Pass
	if len(findings) > 0 {
		rep.Verdict = Fail
	}
	return a.keys.flush()
}

// refuse ends an audit before the replay with a single finding.
func (a *auditor) refuse(rep *Report, f Finding, cp *checkpoint, since string) error {
	a.refused = true
	f.Stopped = true
	rep.Findings = append(rep.Findings, f)
	if cp != nil && rep.Since == nil {
		rep.Since = &Since{File: since, Heads: cp.Heads}
	}
	rep.Counts.Findings = len(rep.Findings)
	rep.Verdict = Fail
	if a.html != nil && f.ID != "" {
		if err := a.html.failed(a, f); err != nil {
			return err
		}
	}
	return a.keys.flush()
}

// resume restores what the auditor remembers from a checkpoint.
func (a *auditor) resume(cp *checkpoint) {
	for c, n := range cp.Stations {
		if ch, ok := parseChain(c); ok {
			a.stations[ch] = n
		}
	}
	for _, p := range cp.State.Policies {
		a.learnPolicy(p.Policy)
	}
	if cp.State.Pending != nil {
		a.learnPolicy(cp.State.Pending.Policy)
	}
	a.order = cp.Order
	a.toolsets = slices.Clone(cp.Toolsets)
	for id, l := range cp.PolicyApprovals {
		a.polApprove[id] = l
	}
	if pend := cp.State.Pending; pend != nil {
		a.lastPolicyID = pend.ID
	}
	for id, p := range cp.Pending {
		a.pending[id] = p
	}
	a.regionKeys, a.bound, a.residency = cp.RegionKeys, cp.Bound, cp.Residency
	// Packages the checkpoint's replay knows but its auditor did not record (an older
	// checkpoint): rebuild them from the replay state.
	for id, p := range cp.State.Packages {
		if _, ok := a.pending[id]; ok {
			continue
		}
		info := &pkgInfo{Seq: p.Seq, Name: p.KeyName, KeyType: string(p.KeyType), Vault: p.Vault, Approvals: slices.Clone(p.Approvals), Rejected: p.Rejected, Regions: p.Regions}
		if len(p.PublicKey) > 0 {
			info.PubSHA = sha256Hex(p.PublicKey)
		}
		if len(p.KCV) > 0 {
			info.KCV = hex.EncodeToString(p.KCV)
		}
		a.pending[id] = info
	}
}

func (a *auditor) learnPolicy(p *payload.Policy) {
	for _, c := range p.Custodians {
		a.custodians[c.Key.ID()] = c.Name
	}
	for _, v := range p.Vaults {
		a.regions[v.URL] = v.Region
	}
	a.lastPolicy = p
}

// onBundle sees every verified bundle in replay order.
func (a *auditor) onBundle(v *chain.Verified) error {
	a.replayed++
	a.order++
	if a.replayed%progressEvery == 0 {
		a.log.Info("audit progress", "verified", a.replayed, "chain", v.Entry.Chain.String(), "seq", v.Entry.Seq)
	}
	h := &v.Bundle.Header
	a.noteToolset(v)
	var si stepInfo
	data, err := fileBytes(a.m, v)
	if err != nil {
		a.err = fmt.Errorf("%w: read %s again for its SHA-256: %w", ErrUnreadable, v.Entry.Path, err)
		return a.err
	}
	if err := a.files.add(v.Entry, v.Bundle.ID(), data); err != nil {
		a.err = err
		return err
	}
	switch p := v.Payload.(type) {
	case *payload.Enrollment:
		a.stations[h.Chain] = p.Name
	case *payload.Policy:
		a.learnPolicy(p)
		a.lastPolicyID = v.Bundle.ID()
	case *payload.KeyPackage:
		kt, _ := p.Target.KeyType()
		info := &pkgInfo{Seq: h.Seq, Name: p.KeyName, KeyType: string(kt), Vault: p.Vault, Approvals: []bundle.ID{}, Regions: p.Regions}
		if len(p.PublicKey) > 0 {
			info.PubSHA = sha256Hex(p.PublicKey)
		}
		if len(p.KCV) > 0 {
			info.KCV = hex.EncodeToString(p.KCV)
		}
		a.pending[v.Bundle.ID()] = info
		si.pubSHA = info.PubSHA
		a.named[station.ByokCopyName(p.KeyName, v.Bundle.ID())] = true
		if err := station.CheckByokCopy(a.m, p.KeyName, v.Bundle.ID(), p.BYOK); err != nil {
			// A check of the tools, not a verdict of the format (SPEC.md §8.1).
			a.copies = append(a.copies, Finding{Verdict: "byok copy mismatch", Chain: h.Chain.String(), Seq: h.Seq, ID: v.Bundle.ID().String(),
				Fingerprint: v.Bundle.ID().Short(), Kind: h.Kind.String(), Path: path.Join(media.ByokDir, station.ByokCopyName(p.KeyName, v.Bundle.ID())),
				Message: err.Error(), Err: err})
		}
	case *payload.Approval:
		si.counted = a.counted(v, p)
		var have *[]bundle.ID
		if info, ok := a.pending[p.Target]; ok {
			have = &info.Approvals
		} else if p.TargetKind == bundle.KindPolicy.String() && a.lastPolicyID == p.Target && !misdirected(v) {
			l := a.polApprove[p.Target]
			have = &l
			defer func() { a.polApprove[p.Target] = l }()
		}
		if have != nil {
			for i, s := range p.Signatures {
				if !si.counted[i] {
					continue
				}
				if j, found := slices.BinarySearchFunc(*have, s.Custodian, cmpID); !found {
					*have = slices.Insert(*have, j, s.Custodian)
				}
			}
		}
	case *payload.Receipt:
		r, err := a.receipt(v, p)
		if err != nil {
			a.err = err
			return err
		}
		si.receipt = r
	}
	if a.html != nil {
		if err := a.html.step(a, v, si); err != nil {
			a.err = fmt.Errorf("%w: write html report: %w", ErrOutput, err)
			return a.err
		}
	}
	return nil
}

// counted reports which signatures of an approval the replay counted. Without findings on
// the approval bundle, every one did (each rejected signature is a finding); otherwise the
// signatures are checked again here, as the replay did.
func (a *auditor) counted(v *chain.Verified, ap *payload.Approval) []bool {
	ok := make([]bool, len(ap.Signatures))
	if len(v.Findings) == 0 {
		for i := range ok {
			ok[i] = true
		}
		return ok
	}
	for _, f := range v.Findings {
		if errors.Is(f, chain.ErrExpired) {
			return ok
		}
	}
	info := a.pending[ap.Target]
	for i, s := range ap.Signatures {
		var key payload.PublicKey
		found := false
		if info != nil && v.Policy != nil {
			if c, in := v.Policy.Policy.Custodian(s.Custodian); in {
				key, found = c.Key, true
			}
		} else {
			key, found = a.custodianKey(s.Custodian, v)
		}
		if !found {
			continue
		}
		pub, err := key.Parse()
		if err != nil || bundle.VerifyApproval(pub, v.Bundle.Header.Version, ap.Target, [bundle.SignatureSize]byte(s.Sig)) != nil {
			continue
		}
		if info != nil {
			if _, dup := slices.BinarySearchFunc(info.Approvals, s.Custodian, cmpID); dup {
				continue
			}
		}
		ok[i] = true
	}
	return ok
}

// misdirected reports whether the replay found that an approval's target awaits no approval
// (a policy already in force, say), so that none of its signatures counted.
func misdirected(v *chain.Verified) bool {
	for _, f := range v.Findings {
		var pe *chain.PolicyError
		if errors.As(f, &pe) && pe.Rule == "approval-target" {
			return true
		}
	}
	return false
}

// custodianKey finds a custodian's key in the policy the bundle was checked against or in
// the policy it approves.
func (a *auditor) custodianKey(id bundle.ID, v *chain.Verified) (payload.PublicKey, bool) {
	if v.Policy != nil {
		if c, ok := v.Policy.Policy.Custodian(id); ok {
			return c.Key, true
		}
	}
	if a.lastPolicy != nil {
		if c, ok := a.lastPolicy.Custodian(id); ok {
			return c.Key, true
		}
	}
	return payload.PublicKey{}, false
}

// receipt turns an upload receipt into an inventory row.
func (a *auditor) receipt(v *chain.Verified, rc *payload.Receipt) (*Receipt, error) {
	rr := &Receipt{ID: v.Bundle.ID().String(), Fingerprint: v.Bundle.ID().Short(), Seq: v.Bundle.Header.Seq,
		Outcome: rc.Outcome, Vault: rc.Vault, KID: rc.KID, Error: rc.Error, Versions: rc.Versions}
	if kid, err := byok.ParseKeyID(rc.KID); err == nil {
		rr.Version = kid.Version
	}
	if len(rc.PublicKey) > 0 {
		rr.PublicKeySHA256 = sha256Hex(rc.PublicKey)
	}
	info, ok := a.pending[rc.Package]
	if !ok {
		return rr, a.addKey(Key{Package: rc.Package.String(), PackageFingerprint: rc.Package.Short(), Approvals: []Approver{}, Status: StatusUnmatched, Receipt: rr})
	}
	if rc.Outcome == payload.OutcomeRejected {
		info.Rejected++
		info.LastRcpt = rr
		return rr, nil
	}
	delete(a.pending, rc.Package)
	if info.PubSHA != "" {
		match := rr.PublicKeySHA256 == info.PubSHA && rc.Outcome == payload.OutcomeImported
		rr.PublicKeyMatch = &match
	}
	k := a.key(rc.Package, info)
	k.Status = rc.Outcome
	k.Receipt = rr
	return rr, a.addKey(k)
}

// addKey adds a row to the key inventory.
func (a *auditor) addKey(k Key) error {
	a.noteKey(&k)
	return a.keys.add(k)
}

func (a *auditor) key(id bundle.ID, info *pkgInfo) Key {
	k := Key{Package: id.String(), PackageFingerprint: id.Short(), PackageSeq: info.Seq, Name: info.Name, KeyType: info.KeyType,
		Vault: info.Vault, PublicKeySHA256: info.PubSHA, KCV: info.KCV, Approvals: a.approvers(info.Approvals), Rejected: info.Rejected,
		Status: StatusNotUploaded, Region: a.regions[info.Vault], Residency: info.Regions}
	return k
}

// approvers names custodians by their key IDs, in the order of their names (then keys).
func (a *auditor) approvers(ids []bundle.ID) []Approver {
	out := make([]Approver, 0, len(ids))
	for _, id := range ids {
		out = append(out, Approver{Name: a.custodians[id], Fingerprint: id.Short(), Key: id.String()})
	}
	slices.SortFunc(out, func(x, y Approver) int { return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Key, y.Key)) })
	return out
}

// flushPending adds the packages never uploaded to the inventory, in chain order.
func (a *auditor) flushPending() error {
	ids := make([]bundle.ID, 0, len(a.pending))
	for id := range a.pending {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y bundle.ID) int { return cmp.Compare(a.pending[x].Seq, a.pending[y].Seq) })
	for _, id := range ids {
		info := a.pending[id]
		k := a.key(id, info)
		if info.LastRcpt != nil {
			r := *info.LastRcpt
			k.Receipt = &r
		}
		if a.imported != nil {
			ok, err := a.imported(id)
			if err != nil {
				return err
			}
			if ok {
				k.Status = StatusReceiptMissing
			}
		}
		if err := a.addKey(k); err != nil {
			return err
		}
	}
	return nil
}

func newFinding(f chain.Finding) Finding {
	nf := Finding{Verdict: chain.Verdict(f.Err), Chain: f.Chain.String(), Seq: f.Seq, Path: f.Path, Message: f.Err.Error(), Err: f}
	if !f.ID.IsZero() {
		nf.ID, nf.Fingerprint = f.ID.String(), f.ID.Short()
	}
	if f.Kind != 0 {
		nf.Kind = f.Kind.String()
	}
	return nf
}

// same reports whether two findings say the same thing about the same bundle: a replay
// resumed before a bundle that stopped the earlier one stops there again.
func (f Finding) same(g Finding) bool {
	return f.Verdict == g.Verdict && f.Chain == g.Chain && f.Seq == g.Seq && f.ID == g.ID && f.Message == g.Message
}

func policies(st *chain.State, approvers func(bundle.ID) []Approver) []Policy {
	out := []Policy{}
	add := func(r chain.PolicyRecord) {
		p := r.Policy
		pp := Policy{ID: r.ID.String(), Fingerprint: r.ID.Short(), Version: p.Version, Seq: r.Seq, Effective: r.Effective,
			Threshold: p.Threshold, OfflineStation: p.OfflineStation.ID().Short(), OnlineStation: p.OnlineStation.ID().Short(),
			MinKEKBits: p.MinKEKBits, AllowWeakerKEK: p.AllowWeakerKEK, Lifetime: p.BundleLifetimeSeconds, MaxClockSkew: p.MaxClockSkewSeconds,
			Custodians: []Approver{}, Vaults: []Vault{}, KeyTypes: []string{}, ApprovedBy: approvers(r.ID)}
		for _, c := range p.Custodians {
			pp.Custodians = append(pp.Custodians, Approver{Name: c.Name, Fingerprint: c.Key.ID().Short(), Key: c.Key.ID().String()})
		}
		for _, v := range p.Vaults {
			pp.Vaults = append(pp.Vaults, Vault{URL: v.URL, Kind: v.Kind, Region: v.Region})
		}
		for _, t := range p.KeyTypes {
			pp.KeyTypes = append(pp.KeyTypes, string(t))
		}
		out = append(out, pp)
	}
	for _, r := range st.Policies {
		add(r)
	}
	if st.Pending != nil {
		add(st.Pending.PolicyRecord)
	}
	return out
}

// onMedium reports whether file p would be written inside the medium folder.
func onMedium(medium, p string) bool {
	real := func(q string) string {
		q, err := filepath.Abs(q)
		if err != nil {
			return q
		}
		if r, err := filepath.EvalSymlinks(q); err == nil {
			return r
		}
		return q
	}
	rel, err := filepath.Rel(real(medium), real(filepath.Dir(p)))
	return err == nil && (rel == "." || !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != "..")
}

func cmpID(x, y bundle.ID) int { return bytes.Compare(x[:], y[:]) }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func shortOrNone(id bundle.ID) string {
	if id.IsZero() {
		return "none"
	}
	return id.Short()
}

func parseChain(s string) (bundle.Chain, bool) {
	switch s {
	case "offline":
		return bundle.ChainOffline, true
	case "online":
		return bundle.ChainOnline, true
	}
	return 0, false
}
