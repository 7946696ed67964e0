package bundle_test

import (
	"crypto/ed25519"
	"fmt"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// A station seals a payload into a bundle; a reader parses it, checks the station signature
// with the key the policy names, and only then opens the payload.
func ExampleSeal() {
	station := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // a test key
	b, err := bundle.Seal(bundle.Draft{
		Kind: bundle.KindEnrollment, Chain: bundle.ChainOnline, Seq: 1,
		Created: 1767603600, Expires: 1767603600 + 3600,
		Payload: []byte(`{"station":"online"}`),
	}, station, nil)
	if err != nil {
		panic(err)
	}
	file := b.Marshal() // what goes on the medium

	r, err := bundle.Parse(file)
	if err != nil {
		fmt.Println("malformed:", err)
		return
	}
	if err := r.VerifySignature(station.Public()); err != nil {
		fmt.Println("not signed by the station:", err)
		return
	}
	p, err := r.Open()
	if err != nil {
		fmt.Println("payload:", err)
		return
	}
	fmt.Println(r.Header.Chain, r.Header.Seq, r.Header.Kind, r.ID() == b.ID())
	fmt.Println(string(p))
	// Output:
	// online 1 enrollment true
	// {"station":"online"}
}

// People compare the short form of an ID; ParseShort accepts it as they type it.
func ExampleParseShort() {
	s, err := bundle.ParseShort("7kq2 m9xd 4tnv h3pa")
	fmt.Println(s, err)
	s, err = bundle.ParseShort("OIL0-0000-0000-0000") // O reads as 0, I and L as 1
	fmt.Println(s, err)
	// Output:
	// 7KQ2-M9XD-4TNV-H3PA <nil>
	// 0110-0000-0000-0000 <nil>
}

func ExampleID_Short() {
	id := bundle.IDOfHeader(make([]byte, bundle.HeaderSize))
	fmt.Println(id)
	fmt.Println(id.Short())
	// Output:
	// 9752c2c7f5c7d2e445e36bcb23c6a5f7c4efd90025d0206b5e4af83d0a972b2e
	// JX9C-5HZN-RZ9E-8HF3
}
