package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/shared/ledger"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// RecordOwn records one of this station's own bundles in the ledger, from the bundle alone:
// it is the recover function of station.Open (Appends use Record).
// It runs inside the caller's transaction and must not fail for a bundle this station
// wrote: the payload's digests are checked (the bundle was sealed by this station, so its
// signature is not checked again).
func RecordOwn(tx *bolt.Tx, b *bundle.Bundle) error {
	data, err := b.Open()
	if err != nil {
		return fmt.Errorf("open own bundle %s: %w", b.ID().Short(), err)
	}
	v, err := payload.Decode(b.Header.Kind, data)
	if err != nil {
		return fmt.Errorf("decode own bundle %s: %w", b.ID().Short(), err)
	}
	return Record(tx, b, v)
}

// Record is RecordOwn for a bundle whose payload v the caller has at hand because it just
// sealed it: the same changes, without decoding the payload again.
func Record(tx *bolt.Tx, b *bundle.Bundle, v any) error {
	id := b.ID()
	switch p := v.(type) {
	case *payload.Enrollment:
		return sub(tx, bucketConfig).Put(keyEnrollment, id[:])
	case *payload.Policy:
		return recordPolicy(tx, b, p)
	case *payload.KeyPackage:
		return recordPackage(tx, b, p)
	case *payload.Approval:
		return recordApproval(tx, b, p)
	}
	return fmt.Errorf("a %s bundle does not belong on the offline chain", b.Header.Kind)
}

var _ station.Apply = RecordOwn

func recordPolicy(tx *bolt.Tx, b *bundle.Bundle, p *payload.Policy) error {
	if p.Version == 1 {
		if err := station.SetAnchor(tx, b.ID()); err != nil {
			return err
		}
	}
	rec := Policy{ID: b.ID(), Seq: b.Header.Seq, Version: p.Version, Created: b.Header.Created, Approvals: []Approval{}, Policy: p}
	if err := put(sub(tx, bucketPolicies), ledger.PutU64(p.Version), &rec); err != nil {
		return err
	}
	if p.Version > 1 {
		// The custodians a later version drops still approve it, with the others of the
		// policy in force: their records stay.
		return nil
	}
	// Custodian records of people the policy does not name are left over from an init that
	// was interrupted and rerun with other custodians.
	cb := sub(tx, bucketCustodians)
	var stale [][]byte
	err := cb.ForEach(func(k, v []byte) error {
		var c Custodian
		if err := get(cb, k, &c); err != nil {
			return err
		}
		if _, ok := p.Custodian(c.Key.ID()); !ok {
			stale = append(stale, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := cb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func recordPackage(tx *bolt.Tx, b *bundle.Bundle, k *payload.KeyPackage) error {
	kt, err := k.Target.KeyType()
	if err != nil {
		return err
	}
	ident, err := identOf(tx, k.Provenance.Key.Label, k.Provenance.Key.ID)
	if err != nil {
		return err
	}
	rec := Package{
		ID: b.ID(), Seq: b.Header.Seq, Ident: ident, KeyName: k.KeyName, Vault: k.Vault, KeyType: kt,
		Offer: k.KEK.Offer, KID: k.KEK.KID, Created: b.Header.Created, Expires: b.Header.Expires,
		State: PackageOutstanding, Approvals: []Approval{},
	}
	rec.ByokCopy = path.Join(media.ByokDir, rec.ByokName())
	if err := put(sub(tx, bucketPackages), rec.ID[:], &rec); err != nil {
		return err
	}
	return sub(tx, bucketPkgIndex).Put(pkgIndexKey(rec.Ident, rec.Vault, rec.Seq), rec.ID[:])
}

// identOf finds the ident of the target key with the given label and CKA_ID (hex).
func identOf(tx *bolt.Tx, label, id string) (string, error) {
	var ident string
	kb := sub(tx, bucketKeys)
	err := kb.ForEach(func(k, v []byte) error {
		var key Key
		if err := get(kb, k, &key); err != nil {
			return err
		}
		if key.Label == label && key.ID == id {
			ident = key.Ident
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if ident == "" {
		return "", fmt.Errorf("the ledger has no key labelled %q with id %s", label, id)
	}
	return ident, nil
}

func recordApproval(tx *bolt.Tx, b *bundle.Bundle, a *payload.Approval) error {
	pols, err := policiesTx(tx)
	if err != nil {
		return err
	}
	name := func(key bundle.ID) string {
		for i := len(pols) - 1; i >= 0; i-- {
			if c, ok := pols[i].Policy.Custodian(key); ok {
				return c.Name
			}
		}
		return key.Short()
	}
	add := func(have []Approval) []Approval {
		for _, s := range a.Signatures {
			dup := false
			for _, h := range have {
				dup = dup || h.Key == s.Custodian
			}
			if !dup {
				have = append(have, Approval{Custodian: name(s.Custodian), Key: s.Custodian, Bundle: b.ID()})
			}
		}
		return have
	}
	pb := sub(tx, bucketPackages)
	var pkg Package
	switch err := get(pb, a.Target[:], &pkg); {
	case err == nil:
		pkg.Approvals = add(pkg.Approvals)
		return put(pb, pkg.ID[:], &pkg)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	for i := range pols {
		if pols[i].ID != a.Target {
			continue
		}
		pol := &pols[i]
		pol.Approvals = add(pol.Approvals)
		if err := put(sub(tx, bucketPolicies), ledger.PutU64(pol.Version), pol); err != nil {
			return err
		}
		if pol.Version == 1 && pol.InForce(nil) {
			done := InitDone{Policy: pol.ID, Approval: b.ID(), At: b.Header.CreatedTime()}
			return put(sub(tx, bucketConfig), keyInit, &done)
		}
		return nil
	}
	return fmt.Errorf("approval %s is for %s, which is neither a policy nor a key package of this station", b.ID().Short(), a.Target.Short())
}

func policiesTx(tx *bolt.Tx) ([]Policy, error) {
	var out []Policy
	pb := sub(tx, bucketPolicies)
	err := pb.ForEach(func(k, v []byte) error {
		var p Policy
		if err := get(pb, k, &p); err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// KeyIDHex formats a CKA_ID the way the ledger and manifests record it.
func KeyIDHex(id []byte) string { return hex.EncodeToString(id) }
