package kvemu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// certKey is a certificate with its private key.
type certKey struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// certPEM returns the certificate in PEM.
func (c *certKey) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
}

// marshal returns the certificate and its PKCS#8 private key in PEM, for the state file.
func (c *certKey) marshal() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return nil, fmt.Errorf("marshal key of %s: %w", c.cert.Subject.CommonName, err)
	}
	return append(c.certPEM(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...), nil
}

// parseCertKey parses what marshal returned.
func parseCertKey(b []byte) (*certKey, error) {
	var ck certKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate: %w", err)
			}
			ck.cert = c
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse private key: %w", err)
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key is %T, want ECDSA", k)
			}
			ck.key = ek
		}
	}
	if ck.cert == nil || ck.key == nil {
		return nil, errors.New("certificate or key missing")
	}
	if !ck.key.PublicKey.Equal(ck.cert.PublicKey) {
		return nil, errors.New("private key does not match certificate")
	}
	return &ck, nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// newCA creates a self-signed CA valid for ten years.
func newCA(commonName string) (*certKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	sn, err := serialNumber()
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"kvemu"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &certKey{cert: cert, key: key}, nil
}

// issue creates a certificate signed by ca from tmpl (its serial, validity and key are
// filled in).
func (ca *certKey) issue(tmpl *x509.Certificate, validity time.Duration) (*certKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for %s: %w", tmpl.Subject.CommonName, err)
	}
	sn, err := serialNumber()
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	now := time.Now()
	tmpl.SerialNumber = sn
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(validity)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("create certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	return &certKey{cert: cert, key: key}, nil
}

// newServerCert issues the TLS certificate for 127.0.0.1, ::1 and localhost.
func newServerCert(ca *certKey) (*certKey, error) {
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kvemu vault", Organization: []string{"kvemu"}},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, 5*365*24*time.Hour)
}

// newDeviceCert issues the stand-in HSM device certificate that signs key attestations.
func newDeviceCert(root *certKey) (*certKey, error) {
	return root.issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "kvemu stand-in HSM device", Organization: []string{"kvemu stand-in HSM vendor"}},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}, 5*365*24*time.Hour)
}
