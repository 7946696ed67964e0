package kvemu

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
)

// secp256k1Key is a parsed secp256k1 private key with its public point.
type secp256k1Key struct {
	d    []byte // 32-byte scalar
	x, y []byte // 32-byte coordinates
}

var oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}

type pkcs8Info struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey []byte
	Attributes asn1.RawValue `asn1:"optional,tag:0"`
}

type sec1ECPrivateKey struct {
	Version    int
	PrivateKey []byte
	Params     asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

// parsePKCS8 parses a PKCS#8 PrivateKeyInfo holding an RSA or EC key and returns an
// *rsa.PrivateKey, an *ecdsa.PrivateKey (P-256, P-384, P-521) or a *secp256k1Key. The
// standard library covers RSA and the NIST curves; secp256k1 (Azure's P-256K) is parsed here.
func parsePKCS8(der []byte) (any, error) {
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err == nil {
		switch k := key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey:
			return k, nil
		case *ecdh.PrivateKey:
			return nil, errors.New("PKCS#8 holds an X25519 key, not an RSA or EC key")
		default:
			return nil, fmt.Errorf("PKCS#8 holds a %T, not an RSA or EC key", key)
		}
	}
	if k1, k1err := parsePKCS8Secp256k1(der); k1err == nil {
		return k1, nil
	}
	return nil, err
}

func parsePKCS8Secp256k1(der []byte) (*secp256k1Key, error) {
	var info pkcs8Info
	rest, err := asn1.Unmarshal(der, &info)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("trailing data after PKCS#8")
	}
	if !info.Algo.Algorithm.Equal(oidECPublicKey) {
		return nil, errors.New("PKCS#8 algorithm is not ecPublicKey")
	}
	var curve asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &curve); err != nil || !curve.Equal(oidSecp256k1) {
		return nil, errors.New("PKCS#8 curve is not secp256k1")
	}
	var ec sec1ECPrivateKey
	if rest, err := asn1.Unmarshal(info.PrivateKey, &ec); err != nil || len(rest) != 0 {
		return nil, errors.New("parse SEC 1 EC private key")
	}
	if ec.Version != 1 {
		return nil, fmt.Errorf("SEC 1 EC private key version %d, want 1", ec.Version)
	}
	if len(ec.Params) != 0 && !ec.Params.Equal(oidSecp256k1) {
		return nil, errors.New("SEC 1 EC private key names another curve")
	}
	if len(ec.PrivateKey) > 32 {
		return nil, fmt.Errorf("secp256k1 private key is %d bytes", len(ec.PrivateKey))
	}
	d := make([]byte, 32)
	copy(d[32-len(ec.PrivateKey):], ec.PrivateKey)
	x, y, err := k1PublicKey(d)
	if err != nil {
		return nil, err
	}
	if len(ec.PublicKey.Bytes) != 0 {
		want := append(append([]byte{4}, x...), y...)
		if !bytes.Equal(ec.PublicKey.Bytes, want) {
			return nil, errors.New("secp256k1 public key does not match the private key")
		}
	}
	return &secp256k1Key{d: d, x: x, y: y}, nil
}
