// Package store is byok-offline's ledger: the bbolt file in the state folder that remembers
// what this station made and decided, so that every command can be interrupted and rerun.
//
// # Bucket tree
//
// Version 3 of the schema (see Schema; migrations run in order, each in its own
// transaction: 1 the station bucket, 2 the v1 buckets, 3 the package index):
//
//	meta/                         owned by shared/ledger: schema name and version
//	station/                      owned by shared/station: own head, peer head, anchor, pending
//	v1/
//	  config/
//	    station                   JSON Station: the station's signing key and its token
//	    online                    JSON Online: the online station's enrollment, as confirmed
//	    enrollment                32 bytes: ID of this station's enrollment bundle
//	    init                      JSON InitDone: init finished (present only then)
//	  custodians/<name>           JSON Custodian: a custodian's token and signing key
//	  intents/<token>\x00<label>  JSON Intent: a key generation that was started
//	  keys/<ident>                JSON Key: a target key (generating, then ready)
//	  keks/<offer id>             JSON KEK: a KEK offer accepted or refused (32-byte key)
//	  packages/<package id>       JSON Package: a key package, its approvals and receipt
//	  policies/<version>          JSON Policy: a policy version (8-byte big-endian key)
//	  package-index/<ident>\x00<vault>\x00<seq>   package ID: the packages of a key for a vault
//
// # Rules
//
// Every method wraps one db.View or db.Update; no *bolt.Tx or value slice leaves a
// transaction. The exceptions are RecordOwn and the functions named *Tx, which run inside a
// transaction the caller (shared/station) owns. Nothing here touches the medium or the HSM.
//
// # Deriving the ledger from bundles
//
// RecordOwn updates the ledger from one of this station's own bundles alone: it is the
// recover function of station.Open, and every station.Append applies the same changes
// (Record, with the payload it just sealed), so a bundle that a crash left pending is
// recorded exactly as a completed append would have recorded it.
//
// Key generation is made convergent with intents: a command records the intent to create
// a labelled object before asking the HSM, and records the result after; a rerun that finds
// an intent and an object with the label adopts the object instead of refusing it.
package store
