// Package upload imports key packages into Key Vault exactly once, and receipts each import
// on the online chain.
//
// # The protocol
//
// For each key package (a Job), one worker of a pool:
//
//  1. waits for the throttling limiter of the package's vault and key type;
//  2. commits an intent to the ledger (package, vault, key name, attempt number): for first
//     attempts, a pool's worth at a time in one transaction (see Run);
//  3. calls ImportKey once, with the SDK's retries off, tagging the new key version with
//     TagPackage = the package bundle ID;
//  4. on 429 waits Retry-After (the limiter holds the whole bucket back) and goes to 1: a
//     throttled request did nothing. On a 5xx or no response, which leave it unknown
//     whether the import happened, it waits, then reconciles: it lists the key's versions
//     and looks for the tag. Found: the import happened, go to 5. Not found: a request that
//     Key Vault is still processing may land later, so one look is no proof. It looks again
//     once Settle (twice the request timeout) has passed since the failure, and only if that look
//     finds nothing too does it go to 1, up to MaxAttempts imports. On any other refusal
//     (400, 403, 409...) it writes a rejected receipt: Key Vault created nothing;
//  5. checks Key Vault's answer against the request (Check): the kid names the package's
//     vault and key, the key type, size or curve, key_ops, enabled, nbf, exp and tags are
//     the ones sent, and the creation time is positive. Any difference is a hard failure:
//     no receipt is signed (one would vouch for a key nobody asked for), the ledger records
//     the answer as final (store.StateVaultMismatch), the result says what the vault holds,
//     and no later run imports the package again;
//  6. after an import that followed an ambiguous failure, lists the key's versions again:
//     more than one version carrying the package's tag is a duplicate import, recorded in
//     the ledger (every such kid, store.Upload.Versions) and reported in the result;
//  7. compares the public key Key Vault returned with the manifest's (RSA and EC; Key Vault
//     returns no material for oct-HSM): equal is "imported", different is
//     "public_key_mismatch", a hard failure the receipt records;
//  8. writes the receipt bundle through the station journal, whose ledger change ends the
//     upload in the same transaction (Receipts); the receipts of uploads that finish while
//     one is being written go together in the next journal cycle (BatchReceipts), so that a
//     pool's uploads share its fsyncs.
//
// A package whose ledger record is still an intent (a crash, a kill, a pulled cable between 2
// and 8) starts at the reconciliation of step 4 instead of step 1, and trusts a "not found"
// only once Settle has passed since the intent was recorded, so a rerun never imports it a
// second time. Killing the process at any point therefore leaves one key version and,
// after the rerun, one receipt per package.
//
// # What exactly once means
//
// Reconciliation relies on the tag, so it cannot tell an import that Key Vault is still
// processing from one that never arrived; Azure gives no way to close that window. The
// engine narrows it to requests that Key Vault holds for longer than Settle after the client
// gave up on them: it never imports again before a look made Settle after the ambiguous
// failure found nothing. If even that is beaten (a request held longer still), step 6 sees
// the second version, or, when the late one lands after that list too, the next audit of
// the vault does: a duplicate is never silent within the run that caused it as long as the
// vault has committed both versions by the time of its list.
package upload

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/shared/logsetup"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// TagPackage is the tag that carries the key package bundle ID (64 hex digits) on every
// imported key version.
const TagPackage = "byok-package"

// Outcomes of a Job, in Result.Outcome.
const (
	OutcomeImported          = payload.OutcomeImported
	OutcomePublicKeyMismatch = payload.OutcomePublicKeyMismatch
	OutcomeRejected          = payload.OutcomeRejected
	// OutcomeFailed: not imported, or not known to be, after every attempt; no receipt.
	// The ledger says which: failed (known not imported) or intent (unknown).
	OutcomeFailed = "failed"
	// OutcomeNotImported: a reconcile-only job found no import.
	OutcomeNotImported = "not_imported"
	// OutcomeInterrupted: the run was interrupted before the job finished.
	OutcomeInterrupted = "interrupted"
)

// Job is one key package to upload.
type Job struct {
	Package   bundle.ID
	Vault     string // canonical vault URL
	KeyName   string
	KeyType   payload.KeyType
	Target    payload.Target
	PublicKey []byte // the manifest's DER SubjectPublicKeyInfo; RSA and EC
	BYOK      []byte
	// Reconcile: the ledger holds an intent for this package: look in Key Vault first.
	Reconcile bool
	// ReconcileOnly: look, and receipt what is found, but never import.
	ReconcileOnly bool
	// IntentAt is when that intent was recorded: a "not found" is trusted only Settle
	// after it (its request may still be in flight).
	IntentAt time.Time
}

// Result is what happened to a Job.
type Result struct {
	Job        *Job
	Outcome    string
	KID        string
	Receipt    bundle.ID
	Imports    int  // ImportKey calls made in this run
	Reconciled bool // the import was found by reconciliation
	// Versions lists every key version carrying the package's tag when there is more than
	// one (a duplicate import; recorded in the ledger); nil otherwise.
	Versions []string
	Detail   string
	Err      error

	// write, when set, writes the job's receipt and returns the final result: Run calls it
	// off the worker, which goes on to its next job meanwhile.
	write func() Result
}

// Ledger is where intents are committed (store.Store).
type Ledger interface {
	RecordIntent(pkg bundle.ID, vault, keyName string, now time.Time) (int, error)
	RecordIntents(now time.Time, intents ...store.Intent) ([]int, error)
	MarkFailed(pkg bundle.ID, reason string, now time.Time) error
	MarkMismatch(pkg bundle.ID, kid, detail string, now time.Time) error
	RecordVersions(pkg bundle.ID, kids []string, now time.Time) error
}

// Receipts writes a receipt bundle and ends the upload in the ledger in the same step. The
// caller serialises: one Write at a time reaches the station. If it is also a
// BatchReceipts, the engine writes the receipts of uploads that finish together in one
// step (group commit; see BatchReceipts).
type Receipts interface {
	Write(ctx context.Context, r *payload.Receipt) (bundle.ID, error)
}

// Engine uploads jobs. Fields with a zero value take the default named in their comment.
type Engine struct {
	Vault    func(url string) (vault.Vault, error)
	Ledger   Ledger
	Receipts Receipts
	Limiter  *Limiter // nil: DefaultLimits, DefaultWindow
	// Concurrency is the number of workers; zero means 1.
	Concurrency int
	// MaxAttempts bounds ImportKey calls per job after ambiguous failures, and
	// reconciliations that fail; zero means 5.
	MaxAttempts int
	// MaxThrottled bounds the 429 answers a job waits out; zero means 50.
	MaxThrottled int
	// Backoff is the wait before the n-th retry (n from 1) after an ambiguous failure when
	// Key Vault sent no Retry-After; nil means 250 ms doubling up to 8 s.
	Backoff func(n int) time.Duration
	// Settle is how long after an ambiguous failure (or an intent left by an earlier run)
	// a "not found" becomes proof that the import did not happen: at least the request
	// timeout, after which the client stopped waiting for its answer (byok-online passes
	// twice that). Zero means twice vault.DefaultRequestTimeout.
	Settle time.Duration
	Now    func() time.Time                           // nil: time.Now
	Sleep  func(context.Context, time.Duration) error // nil: Sleep
	Log    *slog.Logger                               // nil: discard
	// OnResult, if set, is called for every finished job, from the workers.
	OnResult func(Result)

	receipts Receipts // Receipts, grouped if it writes batches
}

func (e *Engine) defaults() {
	if e.Concurrency < 1 {
		e.Concurrency = 1
	}
	if e.MaxAttempts < 1 {
		e.MaxAttempts = 5
	}
	if e.MaxThrottled < 1 {
		e.MaxThrottled = 50
	}
	if e.Backoff == nil {
		e.Backoff = func(n int) time.Duration {
			return min(250*time.Millisecond<<min(n-1, 6), 8*time.Second)
		}
	}
	if e.Settle <= 0 {
		e.Settle = 2 * vault.DefaultRequestTimeout
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Sleep == nil {
		e.Sleep = Sleep
	}
	if e.Log == nil {
		e.Log = logsetup.Discard()
	}
	if e.Limiter == nil {
		e.Limiter = NewLimiter(0, nil, e.Now, e.Sleep)
	}
	e.receipts = e.Receipts
	if b, ok := e.Receipts.(BatchReceipts); ok {
		e.receipts = &group{w: b}
	}
}

// Run uploads jobs with a pool of Concurrency workers, in order of the slice (put
// reconciliations first), and returns one Result per job in the same order. A failure that
// concerns every job (Key Vault refused the credential, the medium cannot take a receipt)
// stops the run: the jobs not started end as failed with that error.
//
// The intents of first attempts are committed a pool's worth at a time, in one transaction,
// just before those jobs are handed to the workers: every intent still precedes its call,
// and a run of n packages pays for n/Concurrency ledger commits instead of n. A crash leaves
// at most two pools' worth of intents whose call was never made; the next run looks for
// them in Key Vault, finds nothing, and imports them.
func (e *Engine) Run(ctx context.Context, jobs []*Job) []Result {
	e.defaults()
	results := make([]Result, len(jobs))
	pre := make([]int, len(jobs)) // attempt numbers of intents committed by the dispatcher
	var fatal atomic.Pointer[error]
	done := func(i int, r Result) {
		if r.Err != nil && isFatal(r.Err) {
			fatal.CompareAndSwap(nil, &r.Err)
		}
		results[i] = r
		if e.OnResult != nil {
			e.OnResult(r)
		}
	}
	// A worker whose import succeeded hands the receipt to a writer and takes its next job:
	// receipts then go to the medium in groups (see group) while the next imports are in
	// flight. At most Concurrency receipts wait at a time. A job stays in intent in the
	// ledger until its receipt is written, so a crash meanwhile is reconciled as before.
	writing := make(chan struct{}, max(e.Concurrency, 1))
	var writers sync.WaitGroup
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(e.Concurrency, max(len(jobs), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if f := fatal.Load(); f != nil {
					r := Result{Job: jobs[i], Outcome: OutcomeFailed, Err: fmt.Errorf("not attempted: %w", *f)}
					e.unannounce(jobs[i], pre[i], r.Err)
					done(i, r)
					continue
				}
				r := e.one(ctx, jobs[i], pre[i])
				if r.write == nil {
					done(i, r)
					continue
				}
				writing <- struct{}{}
				writers.Go(func() {
					defer func() { <-writing }()
					done(i, r.write())
				})
			}
		}()
	}
	i := 0
feed:
	for i < len(jobs) {
		end := min(i+e.Concurrency, len(jobs))
		e.announce(jobs[i:end], pre[i:end])
		for ; i < end; i++ {
			select {
			case next <- i:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(next)
	wg.Wait()
	writers.Wait()
	for ; i < len(jobs); i++ {
		results[i] = Result{Job: jobs[i], Outcome: OutcomeInterrupted, Err: ctx.Err()}
		e.unannounce(jobs[i], pre[i], ctx.Err())
		if e.OnResult != nil {
			e.OnResult(results[i])
		}
	}
	return results
}

// announce commits, in one transaction, the intents of the jobs that start with an import,
// and stores their attempt numbers in attempts. If that fails, each job records its own
// intent later (and reports the failure there).
func (e *Engine) announce(jobs []*Job, attempts []int) {
	var intents []store.Intent
	var idx []int
	for k, j := range jobs {
		if !j.Reconcile && !j.ReconcileOnly {
			intents = append(intents, store.Intent{Package: j.Package, Vault: j.Vault, KeyName: j.KeyName})
			idx = append(idx, k)
		}
	}
	if len(intents) == 0 {
		return
	}
	got, err := e.Ledger.RecordIntents(e.Now(), intents...)
	if err != nil {
		e.Log.Warn("could not record intents together; recording them one by one", "err", err)
		return
	}
	for n, k := range idx {
		attempts[k] = got[n]
	}
}

// unannounce marks a job whose intent the dispatcher committed but which never ran.
func (e *Engine) unannounce(j *Job, attempt int, why error) {
	if attempt == 0 {
		return
	}
	if err := e.Ledger.MarkFailed(j.Package, fmt.Sprintf("not attempted: %v", why), e.Now()); err != nil {
		e.Log.Warn("could not mark an upload that did not start", "package", j.Package.Short(), "err", err)
	}
}

// errReceipt marks a failure to write a receipt: the medium or the ledger is gone, and no
// further upload can be recorded.
type errReceipt struct{ err error }

func (e *errReceipt) Error() string { return "write receipt: " + e.err.Error() }
func (e *errReceipt) Unwrap() error { return e.err }

func isFatal(err error) bool {
	var re *errReceipt
	return vault.NothingDone(err) || errors.As(err, &re)
}

// one runs the protocol of the package doc for one job. attempt is the number of an intent
// already committed for its first import, or 0.
func (e *Engine) one(ctx context.Context, j *Job, attempt int) Result {
	r := Result{Job: j}
	fail := func(outcome string, err error) Result {
		r.Outcome, r.Err = outcome, err
		return r
	}
	interrupted := func() Result { return fail(OutcomeInterrupted, ctx.Err()) }
	v, err := e.Vault(j.Vault)
	if err != nil {
		return fail(OutcomeFailed, err)
	}
	bucket := BucketOf(j.KeyType)
	log := e.Log.With("package", j.Package.Short(), "key", j.KeyName)
	look := j.Reconcile || j.ReconcileOnly
	// A look before settleAt that finds nothing proves nothing: an import sent before (by
	// this run, or by the run that left the intent) may still land.
	var settleAt time.Time
	if look && !j.IntentAt.IsZero() {
		settleAt = j.IntentAt.Add(e.Settle)
	}
	ambiguous := false // an import of this run failed ambiguously
	throttled, lookFailures := 0, 0
	var lastErr error
	for {
		if ctx.Err() != nil {
			return interrupted()
		}
		if look {
			got, err := e.find(ctx, v, j, bucket)
			var mm *MismatchError
			switch {
			case err == nil && got.key != nil:
				r.Reconciled = true
				log.Info("import found in key vault", "kid", Printable(got.key.KID))
				return e.finish(ctx, j, got.key, got.kids, r)
			case err == nil:
				if wait := settleAt.Sub(e.Now()); wait > 0 {
					log.Info("no import found yet; looking again when an earlier request can no longer land", "wait", wait)
					if err := e.Sleep(ctx, wait); err != nil {
						return interrupted()
					}
					continue
				}
				look = false
				if j.ReconcileOnly || r.Imports >= e.MaxAttempts {
					reason := "reconciled: no key version carries the package's tag"
					if lastErr != nil {
						reason = fmt.Sprintf("gave up after %d attempts: %v", r.Imports, lastErr)
					}
					if err := e.Ledger.MarkFailed(j.Package, reason, e.Now()); err != nil {
						return fail(OutcomeFailed, err)
					}
					if j.ReconcileOnly {
						return fail(OutcomeNotImported, nil)
					}
					return fail(OutcomeFailed, lastErr)
				}
				continue
			case errors.As(err, &mm):
				return e.mismatch(j, mm, r)
			case ctx.Err() != nil:
				return interrupted()
			case errors.Is(err, vault.ErrThrottled):
				if throttled++; throttled > e.MaxThrottled {
					return fail(OutcomeFailed, err)
				}
				e.pause(v, bucket, err)
				continue
			case vault.NothingDone(err):
				return fail(OutcomeFailed, err)
			default:
				if lookFailures++; lookFailures >= e.MaxAttempts {
					return fail(OutcomeFailed, fmt.Errorf("look for an earlier import: %w", err))
				}
				log.Warn("could not look for an earlier import; retrying", "err", err)
				if err := e.Sleep(ctx, e.wait(err, lookFailures)); err != nil {
					return interrupted()
				}
				continue
			}
		}
		if err := e.Limiter.Wait(ctx, v.URL(), bucket); err != nil {
			// A committed intent without its call stays: the next run looks, finds
			// nothing and imports.
			return interrupted()
		}
		call := attempt
		if call == 0 {
			if call, err = e.Ledger.RecordIntent(j.Package, j.Vault, j.KeyName, e.Now()); err != nil {
				return fail(OutcomeFailed, fmt.Errorf("record intent: %w", err))
			}
		}
		attempt = 0 // a retry commits a new intent
		crashpoint.Hit("upload-before-import")
		r.Imports++
		log.Debug("importing", "attempt", call)
		key, err := v.ImportKey(ctx, j.KeyName, importParams(j))
		if err == nil {
			crashpoint.Hit("upload-after-import")
			var kids []string
			if ambiguous {
				kids = e.recount(ctx, v, j, bucket, key, log)
			}
			return e.finish(ctx, j, key, kids, r)
		}
		lastErr = err
		switch {
		case ctx.Err() != nil:
			// The intent stays: the next run looks before it imports.
			return interrupted()
		case errors.Is(err, vault.ErrThrottled):
			// Nothing was imported; the intent stays harmlessly until the retry.
			if throttled++; throttled > e.MaxThrottled {
				if merr := e.Ledger.MarkFailed(j.Package, err.Error(), e.Now()); merr != nil {
					return fail(OutcomeFailed, merr)
				}
				return fail(OutcomeFailed, err)
			}
			log.Debug("import throttled", "retry_after", vault.RetryAfter(err))
			r.Imports-- // a throttled call is not an attempt
			e.pause(v, bucket, err)
		case vault.NothingDone(err):
			if merr := e.Ledger.MarkFailed(j.Package, err.Error(), e.Now()); merr != nil {
				return fail(OutcomeFailed, merr)
			}
			return fail(OutcomeFailed, err)
		case errors.Is(err, vault.ErrRefused), errors.Is(err, vault.ErrConflict), errors.Is(err, vault.ErrNotFound):
			log.Warn("key vault refused the import", "err", err)
			return e.reject(ctx, j, err, r)
		default:
			// 5xx, reset, timeout, or an answer that did not parse: it may have happened,
			// now or later.
			log.Warn("import failed ambiguously; looking before retrying", "err", err, "attempt", call)
			look, ambiguous = true, true
			settleAt = e.Now().Add(e.Settle)
			if err := e.Sleep(ctx, e.wait(err, r.Imports)); err != nil {
				return interrupted()
			}
		}
	}
}

// wait returns how long to wait after err, the n-th failure.
func (e *Engine) wait(err error, n int) time.Duration {
	if d := vault.RetryAfter(err); d > 0 {
		return d
	}
	return e.Backoff(n)
}

// pause holds the bucket back for Key Vault's Retry-After (1 s when it sent none).
func (e *Engine) pause(v vault.Vault, bucket string, err error) {
	d := vault.RetryAfter(err)
	if d <= 0 {
		d = time.Second
	}
	e.Limiter.Pause(v.URL(), bucket, d)
}

// found is what find saw: the key version it fetched (nil if no version carries the tag)
// and the kids of every version carrying the tag.
type found struct {
	key  *vault.Key
	kids []string
}

// find looks for the key versions that carry the job's tag, and fetches the earliest. A
// version carrying the tag whose kid is not one of the job's key (another vault or name, or
// no kid at all), or a fetch answered with another version, is a *MismatchError.
func (e *Engine) find(ctx context.Context, v vault.Vault, j *Job, bucket string) (found, error) {
	if err := e.Limiter.Wait(ctx, v.URL(), bucket); err != nil {
		return found{}, err
	}
	vs, err := v.KeyVersions(ctx, j.KeyName)
	if errors.Is(err, vault.ErrNotFound) {
		return found{}, nil
	}
	if err != nil {
		return found{}, err
	}
	want := j.Package.String()
	var first *vault.Version
	var out found
	for i := range vs {
		ver := &vs[i]
		if ver.Tags[TagPackage] != want {
			continue
		}
		if problem := checkKID(j, ver.KID); problem != "" {
			k := &vault.Key{KID: ver.KID, Enabled: ver.Enabled, Created: ver.Created, Tags: ver.Tags}
			return found{}, newMismatch(j, k, []string{"a version carrying the package's tag has a " + problem})
		}
		out.kids = append(out.kids, ver.KID)
		if first == nil || ver.Created.Before(first.Created) {
			first = ver
		}
	}
	if first == nil {
		return found{}, nil
	}
	id, _ := byok.ParseKeyID(first.KID) // checked by checkKID
	if err := e.Limiter.Wait(ctx, v.URL(), bucket); err != nil {
		return found{}, err
	}
	key, err := v.GetKey(ctx, j.KeyName, id.Version)
	if err != nil {
		return found{}, err
	}
	if key.KID != first.KID {
		return found{}, newMismatch(j, key, []string{fmt.Sprintf("asked for version %s, it answered with kid %s", id.Version, Printable(key.KID))})
	}
	out.key = key
	return out, nil
}

// recount lists the key's versions again after an import that followed an ambiguous
// failure, and returns the kids of every version carrying the job's tag (with the one just
// imported). If the list cannot be read it logs that no duplicate could be looked for and
// returns nil.
func (e *Engine) recount(ctx context.Context, v vault.Vault, j *Job, bucket string, imported *vault.Key, log *slog.Logger) []string {
	want := j.Package.String()
	for n := 1; ; n++ {
		err := e.Limiter.Wait(ctx, v.URL(), bucket)
		var vs []vault.Version
		if err == nil {
			vs, err = v.KeyVersions(ctx, j.KeyName)
		}
		if err == nil {
			kids := []string{imported.KID}
			for _, ver := range vs {
				if ver.Tags[TagPackage] == want && !slices.Contains(kids, ver.KID) {
					kids = append(kids, ver.KID)
				}
			}
			return kids
		}
		if ctx.Err() != nil || n >= e.MaxAttempts {
			log.Warn("could not list the key's versions to look for a duplicate import after an ambiguous failure", "err", err)
			return nil
		}
		if errors.Is(err, vault.ErrThrottled) {
			e.pause(v, bucket, err)
			continue
		}
		if e.Sleep(ctx, e.wait(err, n)) != nil {
			return nil
		}
	}
}

func importParams(j *Job) vault.ImportParams {
	t := j.Target
	p := vault.ImportParams{Kty: t.Kty, Curve: t.Curve, KeyOps: t.KeyOps, BYOK: j.BYOK, Enabled: t.Enabled, Tags: map[string]string{}}
	if t.NotBefore != 0 {
		p.NotBefore = time.Unix(t.NotBefore, 0)
	}
	if t.Expires != 0 {
		p.Expires = time.Unix(t.Expires, 0)
	}
	for k, v := range t.Tags {
		p.Tags[k] = v
	}
	p.Tags[TagPackage] = j.Package.String()
	return p
}

// ImportParams returns the ImportKey parameters of a job, as sent (for dry runs).
func ImportParams(j *Job) vault.ImportParams { return importParams(j) }

// Compare returns the receipt outcome for the key Key Vault holds after importing j: the
// public key it returned against the manifest's, and the key type. spki is the returned
// public key (the manifest's bytes when the keys are equal), nil for oct-HSM.
func Compare(j *Job, k *vault.Key) (outcome string, spki []byte, reason string) {
	if k.Kty != j.Target.Kty {
		return OutcomePublicKeyMismatch, nil, fmt.Sprintf("key vault holds a %s key, the package a %s key", k.Kty, j.Target.Kty)
	}
	if j.KeyType.IsSymmetric() {
		return OutcomeImported, nil, "" // Key Vault returns no key material for oct-HSM
	}
	if k.Public == nil {
		return OutcomePublicKeyMismatch, nil, "key vault returned no public key"
	}
	got, err := x509.MarshalPKIXPublicKey(k.Public)
	if err != nil {
		return OutcomePublicKeyMismatch, nil, fmt.Sprintf("key vault returned a public key that does not encode: %v", err)
	}
	want, err := x509.ParsePKIXPublicKey(j.PublicKey)
	if err != nil {
		return OutcomePublicKeyMismatch, got, fmt.Sprintf("the manifest's public key does not parse: %v", err)
	}
	if eq, ok := want.(interface{ Equal(crypto.PublicKey) bool }); ok && eq.Equal(k.Public) {
		return OutcomeImported, j.PublicKey, ""
	}
	return OutcomePublicKeyMismatch, got, "key vault returned another public key than the manifest's"
}

// receiptVersions returns what a receipt lists of kids, the versions carrying the job's tag,
// when there is more than one (a duplicate import, SPEC.md §7.6): those that are versions of
// the job's key, sorted, with kid, the receipted one, among them; at most
// payload.MaxVersions. A kid that is not a version of the key stays in the ledger and the
// log only.
func receiptVersions(j *Job, kid string, kids []string) []string {
	vs := []string{kid}
	for _, k := range kids {
		if k != kid && checkKID(j, k) == "" && !slices.Contains(vs, k) && len(vs) < payload.MaxVersions {
			vs = append(vs, k)
		}
	}
	if len(vs) < 2 {
		return nil
	}
	slices.Sort(vs)
	return vs
}

// finish receipts an import that happened, after checking Key Vault's answer k against the
// request. kids are the versions carrying the job's tag, when they were listed.
func (e *Engine) finish(ctx context.Context, j *Job, k *vault.Key, kids []string, r Result) Result {
	problems := Check(j, k)
	outcome, spki, reason := Compare(j, k)
	rc := &payload.Receipt{Package: j.Package, Vault: j.Vault, Outcome: outcome, KID: k.KID, PublicKey: spki,
		Created: k.Created.Unix(), Tags: k.Tags, Versions: receiptVersions(j, k.KID, kids)}
	if len(problems) == 0 {
		// Check covers every rule of a receipt; this is the last word if it ever does not.
		if err := rc.Validate(); err != nil {
			problems = append(problems, fmt.Sprintf("no valid receipt can record it: %v", err))
		}
	}
	if len(problems) > 0 {
		return e.mismatch(j, newMismatch(j, k, problems), r)
	}
	if len(kids) > 1 {
		clean := make([]string, len(kids))
		for i, kid := range kids {
			clean[i] = Printable(kid)
		}
		e.Log.Error("duplicate import: key vault holds more than one version carrying the package's tag", "package", j.Package.Short(),
			"key", j.KeyName, "versions", strings.Join(clean, " "), "receipted", k.KID)
		if err := e.Ledger.RecordVersions(j.Package, clean, e.Now()); err != nil {
			r.Outcome, r.Err = OutcomeFailed, fmt.Errorf("record the duplicate versions in the ledger: %w", err)
			return r
		}
		r.Versions = clean
	}
	r.Outcome, r.KID, r.Detail = outcome, k.KID, reason
	if outcome == OutcomePublicKeyMismatch {
		e.Log.Error("public key mismatch: key vault holds another key than the package's manifest", "package", j.Package.Short(), "kid", k.KID, "reason", reason)
	}
	// The import happened: record it even if the run is being interrupted.
	return e.receipt(ctx, rc, r, func(id bundle.ID) {
		e.Log.Info("key imported", "package", j.Package.Short(), "key", j.KeyName, "kid", k.KID, "outcome", outcome, "receipt", id.Short())
	})
}

// receipt returns r with the writing of its receipt rc attached (Result.write); written
// runs once it is written.
func (e *Engine) receipt(ctx context.Context, rc *payload.Receipt, r Result, written func(bundle.ID)) Result {
	r.write = func() Result {
		r.write = nil
		id, err := e.receipts.Write(context.WithoutCancel(ctx), rc)
		if err != nil {
			r.Err = &errReceipt{err}
			return r
		}
		r.Receipt = id
		if written != nil {
			written(id)
		}
		return r
	}
	return r
}

// reject receipts a definitive refusal.
func (e *Engine) reject(ctx context.Context, j *Job, cause error, r Result) Result {
	msg := cause.Error()
	var ve *vault.Error
	if errors.As(cause, &ve) {
		msg = fmt.Sprintf("%d %s: %s", ve.Status, ve.Code, ve.Message)
	}
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	rc := &payload.Receipt{Package: j.Package, Vault: j.Vault, Outcome: payload.OutcomeRejected, Error: msg}
	r.Outcome, r.Detail = OutcomeRejected, msg
	return e.receipt(ctx, rc, r, nil)
}
