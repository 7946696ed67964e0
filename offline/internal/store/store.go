package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// SchemaName is the name the ledger records in meta/schema.
const SchemaName = "byok-offline"

var (
	bucketV1         = []byte("v1")
	bucketConfig     = []byte("config")
	bucketCustodians = []byte("custodians")
	bucketIntents    = []byte("intents")
	bucketKeys       = []byte("keys")
	bucketKEKs       = []byte("keks")
	bucketPackages   = []byte("packages")
	bucketPolicies   = []byte("policies")
	bucketPkgIndex   = []byte("package-index")

	keyStation    = []byte("station")
	keyOnline     = []byte("online")
	keyEnrollment = []byte("enrollment")
	keyInit       = []byte("init")
)

// v1Buckets are the sub-buckets of v1, in the order migration 2 creates them.
var v1Buckets = [][]byte{bucketConfig, bucketCustodians, bucketIntents, bucketKeys, bucketKEKs, bucketPackages, bucketPolicies}

// Migrations are the schema's migrations, in order. Their count is the schema version.
var Migrations = []ledger.Migration{
	{Name: "station buckets", Apply: station.Migration},
	{Name: "offline v1 buckets", Apply: func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		for _, b := range v1Buckets {
			if _, err := v1.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create v1/%s: %w", b, err)
			}
		}
		return nil
	}},
	{Name: "package index by key and vault", Apply: func(tx *bolt.Tx) error {
		idx, err := tx.Bucket(bucketV1).CreateBucketIfNotExists(bucketPkgIndex)
		if err != nil {
			return err
		}
		pb := tx.Bucket(bucketV1).Bucket(bucketPackages)
		return pb.ForEach(func(k, v []byte) error {
			var p Package
			if err := get(pb, k, &p); err != nil {
				return err
			}
			return idx.Put(pkgIndexKey(p.Ident, p.Vault, p.Seq), p.ID[:])
		})
	}},
}

// pkgIndexKey is the key of a package in v1/package-index: ident, vault and sequence number,
// so that the packages of one key for one vault are one prefix, in chain order.
func pkgIndexKey(ident, vault string, seq uint64) []byte {
	k := pkgIndexPrefix(ident, vault)
	return append(k, ledger.PutU64(seq)...)
}

func pkgIndexPrefix(ident, vault string) []byte {
	k := make([]byte, 0, len(ident)+len(vault)+10)
	k = append(k, ident...)
	k = append(k, 0)
	k = append(k, vault...)
	return append(k, 0)
}

// Schema returns the ledger schema of byok-offline.
func Schema() ledger.Schema { return ledger.Schema{Name: SchemaName, Migrations: Migrations} }

// ErrNotFound means the ledger has no such record.
var ErrNotFound = errors.New("not in the ledger")

// Store is the offline station's ledger.
type Store struct {
	db *bolt.DB
}

// New returns the store of an open ledger (see shared/station.Open with Schema).
func New(db *bolt.DB) *Store { return &Store{db: db} }

// DB returns the underlying database, for shared/station.
func (s *Store) DB() *bolt.DB { return s.db }

func sub(tx *bolt.Tx, name []byte) *bolt.Bucket {
	v1 := tx.Bucket(bucketV1)
	if v1 == nil {
		return nil
	}
	return v1.Bucket(name)
}

func put(b *bolt.Bucket, k []byte, v any) error {
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, j)
}

// get decodes the value at k into v; it returns ErrNotFound if there is none.
func get(b *bolt.Bucket, k []byte, v any) error {
	data := b.Get(k)
	if data == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("ledger record %q: %w", k, err)
	}
	return nil
}

func (s *Store) view(name []byte, f func(b *bolt.Bucket) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := sub(tx, name)
		if b == nil {
			return fmt.Errorf("ledger has no v1/%s bucket", name)
		}
		return f(b)
	})
}

func (s *Store) update(name []byte, f func(b *bolt.Bucket) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := sub(tx, name)
		if b == nil {
			return fmt.Errorf("ledger has no v1/%s bucket", name)
		}
		return f(b)
	})
}

// Station returns the station record, or ErrNotFound before init created the key.
func (s *Store) Station() (*Station, error) {
	var st Station
	err := s.view(bucketConfig, func(b *bolt.Bucket) error { return get(b, keyStation, &st) })
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// PutStation records the station key.
func (s *Store) PutStation(st *Station) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := put(sub(tx, bucketConfig), keyStation, st); err != nil {
			return err
		}
		return sub(tx, bucketIntents).Delete(intentKey(st.TokenLabel, st.KeyLabel))
	})
}

// Online returns the confirmed online station, or ErrNotFound.
func (s *Store) Online() (*Online, error) {
	var o Online
	err := s.view(bucketConfig, func(b *bolt.Bucket) error { return get(b, keyOnline, &o) })
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// PutOnline records the online station the operator confirmed. It refuses to replace a
// different one.
func (s *Store) PutOnline(o *Online) error {
	return s.update(bucketConfig, func(b *bolt.Bucket) error {
		var cur Online
		switch err := get(b, keyOnline, &cur); {
		case err == nil && (cur.Enrollment != o.Enrollment || !bytes.Equal(cur.Key.SPKI, o.Key.SPKI)):
			return fmt.Errorf("%w %s", ErrOtherOnline, cur.Key.ID().Short())
		case err == nil:
			return nil
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return put(b, keyOnline, o)
	})
}

// Enrollment returns the ID of this station's enrollment bundle, or ErrNotFound.
func (s *Store) Enrollment() (bundle.ID, error) {
	var id bundle.ID
	err := s.view(bucketConfig, func(b *bolt.Bucket) error {
		v := b.Get(keyEnrollment)
		if len(v) != len(id) {
			return ErrNotFound
		}
		copy(id[:], v)
		return nil
	})
	return id, err
}

// InitDone returns the init record, or ErrNotFound if init has not finished.
func (s *Store) InitDone() (*InitDone, error) {
	var d InitDone
	err := s.view(bucketConfig, func(b *bolt.Bucket) error { return get(b, keyInit, &d) })
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// Custodians returns the custodian records, sorted by name.
func (s *Store) Custodians() ([]Custodian, error) {
	var out []Custodian
	err := s.view(bucketCustodians, func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			var c Custodian
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("ledger custodian %q: %w", k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// Custodian returns the custodian called name, or ErrNotFound.
func (s *Store) Custodian(name string) (*Custodian, error) {
	var c Custodian
	err := s.view(bucketCustodians, func(b *bolt.Bucket) error { return get(b, []byte(name), &c) })
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// PutCustodian records a custodian and clears the intent for their key.
func (s *Store) PutCustodian(c *Custodian) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := put(sub(tx, bucketCustodians), []byte(c.Name), c); err != nil {
			return err
		}
		return sub(tx, bucketIntents).Delete(intentKey(c.TokenLabel, c.KeyLabel))
	})
}

func intentKey(token, label string) []byte {
	k := make([]byte, 0, len(token)+1+len(label))
	k = append(k, token...)
	k = append(k, 0)
	return append(k, label...)
}

// PutIntent records that an object labelled label is about to be created on token.
func (s *Store) PutIntent(in *Intent) error {
	return s.update(bucketIntents, func(b *bolt.Bucket) error { return put(b, intentKey(in.Token, in.Label), in) })
}

// Intent returns the intent for label on token, or ErrNotFound.
func (s *Store) Intent(token, label string) (*Intent, error) {
	var in Intent
	err := s.view(bucketIntents, func(b *bolt.Bucket) error { return get(b, intentKey(token, label), &in) })
	if err != nil {
		return nil, err
	}
	return &in, nil
}

// Key returns the target key called ident, or ErrNotFound.
func (s *Store) Key(ident string) (*Key, error) {
	var k Key
	err := s.view(bucketKeys, func(b *bolt.Bucket) error { return get(b, []byte(ident), &k) })
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// Keys returns every target key, sorted by ident.
func (s *Store) Keys() ([]Key, error) {
	var out []Key
	err := s.view(bucketKeys, func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			var key Key
			if err := json.Unmarshal(v, &key); err != nil {
				return fmt.Errorf("ledger key %q: %w", k, err)
			}
			out = append(out, key)
			return nil
		})
	})
	return out, err
}

// PutKey records a target key.
func (s *Store) PutKey(k *Key) error {
	return s.update(bucketKeys, func(b *bolt.Bucket) error { return put(b, []byte(k.Ident), k) })
}

// ErrOtherOnline reports an attempt to pair with a second online station: a station pairs
// with one online station for its life.
var ErrOtherOnline = errors.New("this ledger already trusts online station")

// KeyConflictError reports an ident that is taken: by a ready key, or (Interrupted) by an
// interrupted keygen of another type.
type KeyConflictError struct {
	Err         error
	Interrupted bool
}

func (e *KeyConflictError) Error() string { return e.Err.Error() }
func (e *KeyConflictError) Unwrap() error { return e.Err }

// StartKey records the intent to generate a target key: the key record in state
// KeyGenerating. It refuses with a *KeyConflictError if the ident is taken by a ready key,
// or by a generating one of another type.
func (s *Store) StartKey(k *Key) error {
	return s.update(bucketKeys, func(b *bolt.Bucket) error {
		var cur Key
		switch err := get(b, []byte(k.Ident), &cur); {
		case err == nil && cur.State == KeyReady:
			return &KeyConflictError{Err: fmt.Errorf("key %q exists already (%s, label %q)", k.Ident, cur.Type, cur.Label)}
		case err == nil && (cur.Type != k.Type || cur.Label != k.Label || cur.WrapWithTrusted != k.WrapWithTrusted):
			return &KeyConflictError{Err: fmt.Errorf("an interrupted keygen of %q was for a %s key (wrap with trusted %t)", k.Ident, cur.Type, cur.WrapWithTrusted), Interrupted: true}
		case err == nil:
			return nil
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return put(b, []byte(k.Ident), k)
	})
}

// KEK returns the KEK record of an offer, or ErrNotFound.
func (s *Store) KEK(offer bundle.ID) (*KEK, error) {
	var k KEK
	err := s.view(bucketKEKs, func(b *bolt.Bucket) error { return get(b, offer[:], &k) })
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// KEKs returns every KEK record, in online chain order.
func (s *Store) KEKs() ([]KEK, error) {
	var out []KEK
	err := s.view(bucketKEKs, func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			var kek KEK
			if err := json.Unmarshal(v, &kek); err != nil {
				return fmt.Errorf("ledger kek %x: %w", k, err)
			}
			out = append(out, kek)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b KEK) int { return cmpU64(a.Seq, b.Seq) })
	return out, err
}

// PutKEKs records KEK decisions in one transaction.
func (s *Store) PutKEKs(ks []KEK) error {
	return s.update(bucketKEKs, func(b *bolt.Bucket) error {
		for i := range ks {
			if err := put(b, ks[i].Offer[:], &ks[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Package returns a key package record, or ErrNotFound.
func (s *Store) Package(id bundle.ID) (*Package, error) {
	var p Package
	err := s.view(bucketPackages, func(b *bolt.Bucket) error { return get(b, id[:], &p) })
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// Packages returns every key package record, in offline chain order.
func (s *Store) Packages() ([]Package, error) {
	var out []Package
	err := s.view(bucketPackages, func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			var p Package
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("ledger package %x: %w", k, err)
			}
			out = append(out, p)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b Package) int { return cmpU64(a.Seq, b.Seq) })
	return out, err
}

// UpdatePackages applies f to each package record in one transaction and stores the ones
// for which f returns true.
func (s *Store) UpdatePackages(f func(p *Package) (bool, error)) error {
	return s.update(bucketPackages, func(b *bolt.Bucket) error {
		var changed []*Package
		err := b.ForEach(func(k, v []byte) error {
			var p Package
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("ledger package %x: %w", k, err)
			}
			ok, err := f(&p)
			if ok {
				changed = append(changed, &p)
			}
			return err
		})
		if err != nil {
			return err
		}
		for _, p := range changed {
			if err := put(b, p.ID[:], p); err != nil {
				return err
			}
		}
		return nil
	})
}

// PackagesOf returns the packages of the key ident for vault, in chain order.
func (s *Store) PackagesOf(ident, vault string) ([]Package, error) {
	var out []Package
	err := s.db.View(func(tx *bolt.Tx) error {
		idx, pb := sub(tx, bucketPkgIndex), sub(tx, bucketPackages)
		prefix := pkgIndexPrefix(ident, vault)
		c := idx.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var p Package
			if err := get(pb, v, &p); err != nil {
				return fmt.Errorf("package index %x: %w", v, err)
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// Policies returns every policy version, in version order.
func (s *Store) Policies() ([]Policy, error) {
	var out []Policy
	err := s.view(bucketPolicies, func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			var p Policy
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("ledger policy %x: %w", k, err)
			}
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

// CurrentPolicy returns the newest policy version in force, or ErrNotFound.
func (s *Store) CurrentPolicy() (*Policy, error) {
	ps, err := s.Policies()
	if err != nil {
		return nil, err
	}
	in := InForceAll(ps)
	for i := len(ps) - 1; i >= 0; i-- {
		if in[i] {
			return &ps[i], nil
		}
	}
	return nil, ErrNotFound
}

// LatestPolicy returns the newest policy version, in force or not, or ErrNotFound.
func (s *Store) LatestPolicy() (*Policy, error) {
	ps, err := s.Policies()
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, ErrNotFound
	}
	return &ps[len(ps)-1], nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// DeleteKeyIntent removes the record of a key that is still being generated. It refuses to
// remove a ready key.
func (s *Store) DeleteKeyIntent(ident string) error {
	return s.update(bucketKeys, func(b *bolt.Bucket) error {
		var k Key
		switch err := get(b, []byte(ident), &k); {
		case errors.Is(err, ErrNotFound):
			return nil
		case err != nil:
			return err
		case k.State != KeyGenerating:
			return fmt.Errorf("key %q is %s, not generating", ident, k.State)
		}
		return b.Delete([]byte(ident))
	})
}
