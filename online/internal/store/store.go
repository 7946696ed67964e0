// Package store is byok-online's state ledger: one bbolt file, ledger.db, in the state
// folder, next to the station key.
//
// # Buckets
//
//	meta/                        shared/ledger: schema "byok-online", migrations applied
//	station/                     shared/station: own head, peer head, trust anchor, pending bundle
//	online/
//	  identity                   JSON Identity: the station's name, key and enrollment
//	  policy                     JSON PinnedPolicy: policy version 1 as pinned by trust
//	  kek-intent                 JSON KEKIntent: a kek create in progress (absent otherwise)
//	  keks/
//	    <offer ID, 32 bytes>     JSON KEK: a Key Exchange Key this station created and offered
//	  uploads/
//	    <package ID, 32 bytes>   JSON Upload: where the upload of one key package stands
//
// Keys are raw bundle IDs, so a bucket iterates in ID order.
//
// # Upload states
//
//	(none) ──intent──▶ intent ──receipt──▶ imported | public_key_mismatch | rejected
//	                     │
//	                     ├──reconciled, not in Key Vault──▶ failed ──intent──▶ intent …
//	                     │
//	                     └──Key Vault's answer does not match the request──▶ vault_mismatch
//
// vault_mismatch is final: Key Vault said it imported the package but described another key
// (vault, name, type, operations, attributes, tags or creation time) than was asked for, so
// no receipt can be signed for it and no upload tries again ([Store.MarkMismatch]; the
// record keeps what the vault returned). An upload that finds more than one key version
// carrying the package's tag records every one in Upload.Versions ([Store.RecordVersions])
// before its receipt, which can name only one.
//
// The intent is committed before the ImportKey call that it announces. The terminal states
// are written by [ApplyOwn] in the same transaction that records the receipt bundle on the
// online chain (station.Append), so the ledger and the medium never disagree about whether a
// package was uploaded. A package left in intent after a crash is reconciled against Key
// Vault before anything else happens to it.
//
// # KEK creation
//
// kek create records a KEKIntent, with a random tag, before the CreateKey call that puts the
// tag on the new KEK. [ApplyOwn] marks the intent done in the transaction that records the
// KEK's offer; the command clears it once it has reported the offer. A rerun after a crash
// finds either the finished offer (and reports it) or the KEK version carrying the tag (and
// offers it), so one kek create makes one KEK and one offer however often it is interrupted.
//
// # Rules
//
// Every access runs in one db.View or db.Update (or db.Batch); no transaction or value slice
// escapes; network calls and medium writes happen outside transactions.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

var (
	bucketOnline  = []byte("online")
	bucketKEKs    = []byte("keks")
	bucketUploads = []byte("uploads")
	keyIdentity   = []byte("identity")
	keyPolicy     = []byte("policy")
	keyKEKIntent  = []byte("kek-intent")
)

// Schema is the ledger schema of byok-online. Migrations run in order and are never edited
// once released; a change adds one.
var Schema = ledger.Schema{
	Name: "byok-online",
	Migrations: []ledger.Migration{
		{Name: "station bucket", Apply: station.Migration},
		{Name: "online buckets", Apply: migrateOnline},
	},
}

func migrateOnline(tx *bolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(bucketOnline)
	if err != nil {
		return err
	}
	if _, err := b.CreateBucketIfNotExists(bucketKEKs); err != nil {
		return err
	}
	_, err = b.CreateBucketIfNotExists(bucketUploads)
	return err
}

// Upload states (see the package doc).
const (
	StateIntent            = "intent"
	StateImported          = payload.OutcomeImported
	StatePublicKeyMismatch = payload.OutcomePublicKeyMismatch
	StateRejected          = payload.OutcomeRejected
	StateFailed            = "failed"
	StateVaultMismatch     = "vault_mismatch"
)

// ErrUploaded means the package was imported already: its receipt is on the online chain.
var ErrUploaded = errors.New("the key package was uploaded already")

// ErrVaultMismatch means Key Vault's answer to an import of the package did not match the
// request: the ledger holds what it returned, and the package is never imported again.
var ErrVaultMismatch = errors.New("key vault's answer to an import of the key package did not match the request")

// Identity is the station's own enrollment.
type Identity struct {
	Name       string    `json:"name"`
	KeyID      bundle.ID `json:"key_id"`
	Enrollment bundle.ID `json:"enrollment"`
	Created    int64     `json:"created"`
}

// PinnedPolicy is policy version 1, recorded when trust pinned it.
type PinnedPolicy struct {
	ID     bundle.ID       `json:"id"`
	Pinned int64           `json:"pinned"`
	Policy *payload.Policy `json:"policy"`
}

// KEK is a Key Exchange Key this station created and offered.
type KEK struct {
	Offer    bundle.ID `json:"offer"`
	Seq      uint64    `json:"seq"`
	Vault    string    `json:"vault"`
	Name     string    `json:"name"`
	KID      string    `json:"kid"`
	KeySize  int       `json:"key_size"`
	Expires  int64     `json:"expires"` // the KEK's expiry in Key Vault
	Created  int64     `json:"created"` // the offer bundle's creation time
	Attested bool      `json:"attested"`
	// OfferExpires is the offer bundle's expiry: package refuses the KEK after it. Zero in
	// records written before it was kept.
	OfferExpires int64 `json:"offer_expires,omitempty"`
}

// KEKIntent is a kek create in progress, recorded before its CreateKey call.
type KEKIntent struct {
	Vault   string    `json:"vault"`
	Name    string    `json:"name"`
	Size    int       `json:"size"`
	Expires int64     `json:"expires"` // the expiry asked of Key Vault
	Tag     string    `json:"tag"`     // the value of the KEK's TagKEKIntent tag
	Started int64     `json:"started"`
	Offer   bundle.ID `json:"offer"` // zero until the offer is recorded
}

// TagKEKIntent is the Key Vault tag that carries a KEKIntent's tag on the KEK it created.
const TagKEKIntent = "byok-kek-intent"

// Done says whether the intent's offer is recorded.
func (in *KEKIntent) Done() bool { return !in.Offer.IsZero() }

// KEKIntent returns the kek create in progress, or nil.
func (s *Store) KEKIntent() (*KEKIntent, error) {
	var in *KEKIntent
	err := s.DB.View(func(tx *bolt.Tx) error {
		b, err := online(tx)
		if err != nil {
			return err
		}
		in, err = getJSON[KEKIntent](b, keyKEKIntent)
		return err
	})
	return in, err
}

// SetKEKIntent records in as the kek create in progress; nil clears it.
func (s *Store) SetKEKIntent(in *KEKIntent) error {
	return s.DB.Update(func(tx *bolt.Tx) error {
		b, err := online(tx)
		if err != nil {
			return err
		}
		if in == nil {
			return b.Delete(keyKEKIntent)
		}
		return putJSON(b, keyKEKIntent, in)
	})
}

// Upload is where the upload of one key package stands.
type Upload struct {
	Package  bundle.ID  `json:"package"`
	Vault    string     `json:"vault"`
	KeyName  string     `json:"key_name"`
	State    string     `json:"state"`
	Attempts int        `json:"attempts"` // ImportKey calls announced by an intent
	Started  int64      `json:"started"`  // the first intent
	Updated  int64      `json:"updated"`
	KID      string     `json:"kid,omitempty"`
	Receipt  *bundle.ID `json:"receipt,omitempty"`
	Error    string     `json:"error,omitempty"`
	// Versions lists every key version (kid) that carried the package's tag when an upload
	// found more than one: a duplicate import. The receipt names one of them.
	Versions []string `json:"versions,omitempty"`
}

// Duplicate reports whether Key Vault holds more than one version of the package.
func (u *Upload) Duplicate() bool { return len(u.Versions) > 1 }

// Terminal reports whether the package was imported (whatever key Key Vault returned).
func (u *Upload) Terminal() bool {
	return u.State == StateImported || u.State == StatePublicKeyMismatch
}

// Store is the ledger of a byok-online state folder.
type Store struct {
	DB *bolt.DB
}

// intentBatchDelay is how long RecordIntent waits for concurrent intents to share its
// transaction: long enough for a pool's first burst to coalesce, short enough that a single
// upload does not wait for company that never comes (bbolt's default is 10 ms).
const intentBatchDelay = time.Millisecond

// New returns the store of db, which must be at Schema's version (station.Open with Schema).
// It sets db's batch delay for RecordIntent.
func New(db *bolt.DB) *Store {
	db.MaxBatchDelay = intentBatchDelay
	return &Store{DB: db}
}

func online(tx *bolt.Tx) (*bolt.Bucket, error) {
	b := tx.Bucket(bucketOnline)
	if b == nil {
		return nil, errors.New("ledger has no online bucket")
	}
	return b, nil
}

func getJSON[T any](b *bolt.Bucket, k []byte) (*T, error) {
	v := b.Get(k)
	if v == nil {
		return nil, nil
	}
	var out T
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, fmt.Errorf("ledger %s: %w", k, err)
	}
	return &out, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, j)
}

// Identity returns the station's identity, or nil before init wrote the enrollment.
func (s *Store) Identity() (*Identity, error) {
	var id *Identity
	err := s.DB.View(func(tx *bolt.Tx) error {
		b, err := online(tx)
		if err != nil {
			return err
		}
		id, err = getJSON[Identity](b, keyIdentity)
		return err
	})
	return id, err
}

// SetPolicy records the pinned policy. The caller pins its ID with station.SetAnchor in the
// same transaction.
func SetPolicy(tx *bolt.Tx, p *PinnedPolicy) error {
	b, err := online(tx)
	if err != nil {
		return err
	}
	return putJSON(b, keyPolicy, p)
}

// Policy returns the pinned policy, or nil before trust.
func (s *Store) Policy() (*PinnedPolicy, error) {
	var p *PinnedPolicy
	err := s.DB.View(func(tx *bolt.Tx) error {
		b, err := online(tx)
		if err != nil {
			return err
		}
		p, err = getJSON[PinnedPolicy](b, keyPolicy)
		return err
	})
	return p, err
}

// KEKs returns the offered KEKs in offer ID order.
func (s *Store) KEKs() ([]KEK, error) {
	var out []KEK
	err := s.DB.View(func(tx *bolt.Tx) error {
		b, err := online(tx)
		if err != nil {
			return err
		}
		return b.Bucket(bucketKEKs).ForEach(func(k, v []byte) error {
			var r KEK
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("ledger keks/%x: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// KEK returns the KEK offered by the offer bundle with the given ID, or nil.
func (s *Store) KEK(offer bundle.ID) (*KEK, error) {
	var r *KEK
	err := s.DB.View(func(tx *bolt.Tx) error {
		b, err := online(tx)
		if err != nil {
			return err
		}
		r, err = getJSON[KEK](b.Bucket(bucketKEKs), offer[:])
		return err
	})
	return r, err
}

// Uploads returns every upload record in package ID order.
func (s *Store) Uploads() ([]Upload, error) {
	var out []Upload
	err := s.DB.View(func(tx *bolt.Tx) error {
		b, err := online(tx)
		if err != nil {
			return err
		}
		return b.Bucket(bucketUploads).ForEach(func(k, v []byte) error {
			var r Upload
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("ledger uploads/%x: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Upload returns the upload record of a package, or nil.
func (s *Store) Upload(pkg bundle.ID) (*Upload, error) {
	var r *Upload
	err := s.DB.View(func(tx *bolt.Tx) error {
		b, err := online(tx)
		if err != nil {
			return err
		}
		r, err = getJSON[Upload](b.Bucket(bucketUploads), pkg[:])
		return err
	})
	return r, err
}

// Intent announces an ImportKey call for a package.
type Intent struct {
	Package bundle.ID
	Vault   string
	KeyName string
}

// RecordIntents commits intents for several packages in one transaction and returns their
// attempt numbers, in order. If any package was imported already it records none and
// returns an error wrapping ErrUploaded.
func (s *Store) RecordIntents(now time.Time, intents ...Intent) ([]int, error) {
	attempts := make([]int, len(intents))
	err := s.DB.Update(func(tx *bolt.Tx) error {
		b, err := online(tx)
		if err != nil {
			return err
		}
		for i, in := range intents {
			if attempts[i], err = recordIntent(b.Bucket(bucketUploads), in, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return attempts, nil
}

func recordIntent(ub *bolt.Bucket, in Intent, now time.Time) (int, error) {
	u, err := getJSON[Upload](ub, in.Package[:])
	if err != nil {
		return 0, err
	}
	if u == nil {
		u = &Upload{Package: in.Package, Vault: in.Vault, KeyName: in.KeyName, Started: now.Unix()}
	}
	if u.Terminal() {
		return 0, fmt.Errorf("%s: %w", in.Package.Short(), ErrUploaded)
	}
	if u.State == StateVaultMismatch {
		return 0, fmt.Errorf("%s: %w", in.Package.Short(), ErrVaultMismatch)
	}
	u.State = StateIntent
	u.Attempts++
	u.Updated = now.Unix()
	u.Error = ""
	return u.Attempts, putJSON(ub, in.Package[:], u)
}

// RecordIntent commits that an ImportKey call for pkg is about to be made, and returns the
// attempt number. It refuses with ErrUploaded a package already imported. Concurrent calls
// are coalesced into one transaction (bbolt's Batch), so a pool of uploads pays for one
// fsync, not one each.
func (s *Store) RecordIntent(pkg bundle.ID, vault, keyName string, now time.Time) (int, error) {
	var attempt int
	err := s.DB.Batch(func(tx *bolt.Tx) error {
		b, err := online(tx)
		if err != nil {
			return err
		}
		attempt, err = recordIntent(b.Bucket(bucketUploads), Intent{Package: pkg, Vault: vault, KeyName: keyName}, now)
		return err
	})
	return attempt, err
}

// MarkFailed records that the import of pkg is known not to have happened (reconciled
// against Key Vault), with the reason. A later upload may try again.
func (s *Store) MarkFailed(pkg bundle.ID, reason string, now time.Time) error {
	return s.update(pkg, func(u *Upload) bool {
		if u.State != StateIntent {
			return false
		}
		u.State, u.Error, u.Updated = StateFailed, reason, now.Unix()
		return true
	})
}

// MarkMismatch records that Key Vault answered an import of pkg with a key that does not
// match the request: kid is the identifier it returned, detail what differs and what it
// holds. The state is final (see the package doc). It changes nothing unless the package is
// in intent.
func (s *Store) MarkMismatch(pkg bundle.ID, kid, detail string, now time.Time) error {
	return s.update(pkg, func(u *Upload) bool {
		if u.State != StateIntent {
			return false
		}
		u.State, u.KID, u.Error, u.Updated = StateVaultMismatch, kid, detail, now.Unix()
		return true
	})
}

// RecordVersions records the key versions that carry pkg's tag, when there are several (a
// duplicate import), before the receipt that names one of them. Versions already recorded
// are kept.
func (s *Store) RecordVersions(pkg bundle.ID, kids []string, now time.Time) error {
	return s.update(pkg, func(u *Upload) bool {
		for _, k := range kids {
			if !slices.Contains(u.Versions, k) {
				u.Versions = append(u.Versions, k)
			}
		}
		u.Updated = now.Unix()
		return true
	})
}

// update changes the upload record of pkg, if there is one, in one transaction; change
// returns whether to store it.
func (s *Store) update(pkg bundle.ID, change func(*Upload) bool) error {
	return s.DB.Update(func(tx *bolt.Tx) error {
		b, err := online(tx)
		if err != nil {
			return err
		}
		ub := b.Bucket(bucketUploads)
		u, err := getJSON[Upload](ub, pkg[:])
		if err != nil || u == nil || !change(u) {
			return err
		}
		return putJSON(ub, pkg[:], u)
	})
}

// ApplyOwn records what a bundle of this station's own chain means for the ledger: an
// enrollment sets the identity, a KEK offer adds a KEK, a receipt ends an upload. It derives
// everything from the bundle alone, so it serves both station.Append and station.Recover
// (a crash between writing the bundle and recording it replays exactly this).
func ApplyOwn(tx *bolt.Tx, b *bundle.Bundle) error {
	raw, err := b.Open()
	if err != nil {
		return fmt.Errorf("open own bundle %s: %w", b.ID().Short(), err)
	}
	v, err := payload.Decode(b.Header.Kind, raw)
	if err != nil {
		return fmt.Errorf("decode own bundle %s: %w", b.ID().Short(), err)
	}
	ob, err := online(tx)
	if err != nil {
		return err
	}
	switch p := v.(type) {
	case *payload.Enrollment:
		return putJSON(ob, keyIdentity, &Identity{Name: p.Name, KeyID: p.Key.ID(), Enrollment: b.ID(), Created: b.Header.Created})
	case *payload.KEKOffer:
		kid, err := byok.ParseKeyID(p.KID)
		if err != nil {
			return err
		}
		id := b.ID()
		in, err := getJSON[KEKIntent](ob, keyKEKIntent)
		if err != nil {
			return err
		}
		if in != nil && !in.Done() && in.Vault == p.Vault && in.Name == kid.Name {
			in.Offer = id
			if err := putJSON(ob, keyKEKIntent, in); err != nil {
				return err
			}
		}
		return putJSON(ob.Bucket(bucketKEKs), id[:], &KEK{Offer: id, Seq: b.Header.Seq, Vault: p.Vault, Name: kid.Name,
			KID: p.KID, KeySize: p.KeySize, Expires: p.Expires, Created: b.Header.Created, Attested: p.Attestation != nil, OfferExpires: b.Header.Expires})
	case *payload.Receipt:
		ub := ob.Bucket(bucketUploads)
		u, err := getJSON[Upload](ub, p.Package[:])
		if err != nil {
			return err
		}
		if u == nil {
			u = &Upload{Package: p.Package, Vault: p.Vault, Started: b.Header.Created}
		}
		if kid, err := byok.ParseKeyID(p.KID); err == nil {
			u.KeyName = kid.Name
		}
		id := b.ID()
		u.State, u.KID, u.Receipt, u.Error, u.Updated = p.Outcome, p.KID, &id, p.Error, b.Header.Created
		return putJSON(ub, p.Package[:], u)
	}
	return fmt.Errorf("a %s does not belong on the online chain", b.Header.Kind)
}
