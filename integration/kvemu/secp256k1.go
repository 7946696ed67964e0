package kvemu

import (
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// The standard library has no secp256k1 (Azure's P-256K). The emulator needs only public-key
// derivation from a private scalar, for key generation and for checking imported keys, so a
// small affine implementation over math/big is enough. It is not constant time: the emulator
// is a test double, not an HSM.

var (
	k1P, _  = new(big.Int).SetString("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f", 16)
	k1N, _  = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	k1Gx, _ = new(big.Int).SetString("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", 16)
	k1Gy, _ = new(big.Int).SetString("483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8", 16)
	k1B     = big.NewInt(7)
)

// oidSecp256k1 names the curve in PKCS#8 and SEC 1 (RFC 5480 style named curve).
var oidSecp256k1 = asn1.ObjectIdentifier{1, 3, 132, 0, 10}

// k1Point is an affine point; nil coordinates mean the point at infinity.
type k1Point struct{ x, y *big.Int }

func (p k1Point) infinity() bool { return p.x == nil }

func k1OnCurve(x, y *big.Int) bool {
	if x.Sign() < 0 || x.Cmp(k1P) >= 0 || y.Sign() < 0 || y.Cmp(k1P) >= 0 {
		return false
	}
	// y² = x³ + 7 (mod p)
	l := new(big.Int).Mul(y, y)
	l.Mod(l, k1P)
	r := new(big.Int).Mul(x, x)
	r.Mul(r, x)
	r.Add(r, k1B)
	r.Mod(r, k1P)
	return l.Cmp(r) == 0
}

func k1Add(a, b k1Point) k1Point {
	if a.infinity() {
		return b
	}
	if b.infinity() {
		return a
	}
	var lambda *big.Int
	if a.x.Cmp(b.x) == 0 {
		if new(big.Int).Add(a.y, b.y).Mod(new(big.Int).Add(a.y, b.y), k1P).Sign() == 0 {
			return k1Point{} // a = -b
		}
		// doubling: λ = 3x² / 2y
		num := new(big.Int).Mul(a.x, a.x)
		num.Mul(num, big.NewInt(3))
		den := new(big.Int).Lsh(a.y, 1)
		den.ModInverse(den.Mod(den, k1P), k1P)
		lambda = num.Mul(num, den)
	} else {
		num := new(big.Int).Sub(b.y, a.y)
		den := new(big.Int).Sub(b.x, a.x)
		den.ModInverse(den.Mod(den, k1P), k1P)
		lambda = num.Mul(num, den)
	}
	lambda.Mod(lambda, k1P)
	x := new(big.Int).Mul(lambda, lambda)
	x.Sub(x, a.x)
	x.Sub(x, b.x)
	x.Mod(x, k1P)
	y := new(big.Int).Sub(a.x, x)
	y.Mul(y, lambda)
	y.Sub(y, a.y)
	y.Mod(y, k1P)
	return k1Point{x, y}
}

// k1ScalarBaseMult returns d·G.
func k1ScalarBaseMult(d *big.Int) k1Point {
	var r k1Point
	g := k1Point{k1Gx, k1Gy}
	for i := d.BitLen() - 1; i >= 0; i-- {
		r = k1Add(r, r)
		if d.Bit(i) == 1 {
			r = k1Add(r, g)
		}
	}
	return r
}

// k1PublicKey returns the public point of the 32-byte private scalar d, or an error if d is
// not in [1, n-1].
func k1PublicKey(d []byte) (x, y []byte, err error) {
	if len(d) != 32 {
		return nil, nil, fmt.Errorf("secp256k1 private key is %d bytes, want 32", len(d))
	}
	k := new(big.Int).SetBytes(d)
	if k.Sign() == 0 || k.Cmp(k1N) >= 0 {
		return nil, nil, errors.New("secp256k1 private key out of range")
	}
	p := k1ScalarBaseMult(k)
	return p.x.FillBytes(make([]byte, 32)), p.y.FillBytes(make([]byte, 32)), nil
}

// k1GenerateKey returns a random private scalar in [1, n-1].
func k1GenerateKey(r io.Reader) ([]byte, error) {
	max := new(big.Int).Sub(k1N, big.NewInt(1))
	k, err := rand.Int(r, max)
	if err != nil {
		return nil, fmt.Errorf("generate secp256k1 key: %w", err)
	}
	k.Add(k, big.NewInt(1))
	return k.FillBytes(make([]byte, 32)), nil
}
