package kvemu

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The state file is a bbolt database:
//
//	v1/
//	  meta/         schema_version = "1", kind = "premium"|"managedhsm",
//	                addr = last vault listen address, seq = 8-byte big-endian counter
//	  certs/        tls_ca, tls_server, attestation_root, attestation_device
//	                (PEM certificate + PKCS#8 key)
//	  keys/
//	    <name>/     one bucket per key, named by the lowercased key name
//	      <version> = JSON keyVersion (with private key material)
//	  deleted/
//	    <name>      = JSON deletedInfo: the key is soft-deleted (its versions stay in keys/)
//
// Every write is one transaction, committed before the HTTP response is written, so a
// response the client received always describes durable state.

var (
	bucketV1      = []byte("v1")
	bucketMeta    = []byte("meta")
	bucketCerts   = []byte("certs")
	bucketKeys    = []byte("keys")
	bucketDeleted = []byte("deleted")

	keySchemaVersion = []byte("schema_version")
	keyKind          = []byte("kind")
	keyAddr          = []byte("addr")
	keySeq           = []byte("seq")
)

const schemaVersion = "1"

// stateDB persists the vault. A nil *stateDB is the in-memory mode: writes are no-ops.
type stateDB struct {
	db *bolt.DB
}

// deletedInfo records a soft-deleted key.
type deletedInfo struct {
	DeletedDate        int64 `json:"deleted_date"`
	ScheduledPurgeDate int64 `json:"scheduled_purge_date"`
}

// openState opens or creates the state file for a vault of the given kind.
func openState(path string, kind Kind) (*stateDB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open state %s: %w", path, ErrStateLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bucketMeta, bucketCerts, bucketKeys, bucketDeleted} {
			if _, err := root.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := root.Bucket(bucketMeta)
		if v := meta.Get(keySchemaVersion); v == nil {
			if err := meta.Put(keySchemaVersion, []byte(schemaVersion)); err != nil {
				return err
			}
		} else if string(v) != schemaVersion {
			return fmt.Errorf("unsupported state schema version %q (want %s)", v, schemaVersion)
		}
		if v := meta.Get(keyKind); v == nil {
			return meta.Put(keyKind, []byte(kind))
		} else if Kind(v) != kind {
			return fmt.Errorf("state belongs to a %s vault, not %s", v, kind)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init state %s: %w", path, err)
	}
	return &stateDB{db: db}, nil
}

func (d *stateDB) close() error {
	if d == nil {
		return nil
	}
	return d.db.Close()
}

func (d *stateDB) update(fn func(root *bolt.Bucket) error) error {
	if d == nil {
		return nil
	}
	return d.db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket(bucketV1)) })
}

// get returns a copy of a value of a bucket under v1, or nil.
func (d *stateDB) get(bucket, key []byte) []byte {
	if d == nil {
		return nil
	}
	var out []byte
	_ = d.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketV1).Bucket(bucket).Get(key); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out
}

func (d *stateDB) put(bucket, key, value []byte) error {
	return d.update(func(root *bolt.Bucket) error { return root.Bucket(bucket).Put(key, value) })
}

// loadAll returns every stored key version and the soft-deleted key names, and the sequence
// counter.
func (d *stateDB) loadAll() (versions []*keyVersion, deleted map[string]deletedInfo, seq uint64, err error) {
	deleted = map[string]deletedInfo{}
	if d == nil {
		return nil, deleted, 0, nil
	}
	err = d.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketV1)
		if v := root.Bucket(bucketMeta).Get(keySeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		err := root.Bucket(bucketKeys).ForEachBucket(func(name []byte) error {
			return root.Bucket(bucketKeys).Bucket(name).ForEach(func(ver, raw []byte) error {
				var v keyVersion
				if err := json.Unmarshal(raw, &v); err != nil {
					return fmt.Errorf("decode key %s/%s: %w", name, ver, err)
				}
				versions = append(versions, &v)
				return nil
			})
		})
		if err != nil {
			return err
		}
		return root.Bucket(bucketDeleted).ForEach(func(name, raw []byte) error {
			var di deletedInfo
			if err := json.Unmarshal(raw, &di); err != nil {
				return fmt.Errorf("decode deleted key %s: %w", name, err)
			}
			deleted[string(name)] = di
			return nil
		})
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("load state: %w", err)
	}
	return versions, deleted, seq, nil
}

// putVersion stores a key version and the sequence counter in one transaction.
func (d *stateDB) putVersion(lname string, v *keyVersion, seq uint64) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode key %s/%s: %w", v.Name, v.Version, err)
	}
	return d.update(func(root *bolt.Bucket) error {
		kb, err := root.Bucket(bucketKeys).CreateBucketIfNotExists([]byte(lname))
		if err != nil {
			return err
		}
		if err := kb.Put([]byte(v.Version), raw); err != nil {
			return err
		}
		return root.Bucket(bucketMeta).Put(keySeq, binary.BigEndian.AppendUint64(nil, seq))
	})
}

// setDeleted marks a key soft-deleted, or recovers it when di is nil.
func (d *stateDB) setDeleted(lname string, di *deletedInfo) error {
	if di == nil {
		return d.update(func(root *bolt.Bucket) error { return root.Bucket(bucketDeleted).Delete([]byte(lname)) })
	}
	raw, err := json.Marshal(di)
	if err != nil {
		return err
	}
	return d.put(bucketDeleted, []byte(lname), raw)
}

// purge removes a key and all its versions.
func (d *stateDB) purge(lname string) error {
	return d.update(func(root *bolt.Bucket) error {
		if err := root.Bucket(bucketDeleted).Delete([]byte(lname)); err != nil {
			return err
		}
		err := root.Bucket(bucketKeys).DeleteBucket([]byte(lname))
		if errors.Is(err, bolterrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}
