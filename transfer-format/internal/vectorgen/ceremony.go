package main

import (
	"crypto/ecdsa"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// The builders below stop at the first error by panicking with a buildError, which
// generateOne turns back into an error: vector definitions stay short, and a vector that
// cannot be built fails the run.
type buildError struct{ err error }

func check(err error) {
	if err != nil {
		panic(buildError{err})
	}
}

func must[T any](v T, err error) T {
	check(err)
	return v
}

// build runs a vector's builder and returns the error it stopped with.
func build(v *vec, f func(v *vec) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			be, ok := r.(buildError)
			if !ok {
				panic(r)
			}
			err = be.err
		}
	}()
	return f(v)
}

// base is the standard small ceremony most negative vectors mutate:
//
//	offline 1 enrollment   online 1 enrollment
//	offline 2 policy v1
//	offline 3 approval of the policy (custodians 1, 2): in force
//	                       online 2 KEK offer (RSA-3072)
//	offline 4 key package (RSA-3072 target "key-1")
//	offline 5 approval of the package (custodians 1, 2)
//	                       online 3 receipt: imported
type base struct {
	c                             *chaintest.Ceremony
	policy, policyApproval        *bundle.Bundle
	offer, pkg, approval, receipt *bundle.Bundle
}

// setup starts a ceremony with cfg, writes both enrollments, policy v1 and its approval, and
// pins the policy.
func (v *vec) setup(cfg chaintest.Config) *chaintest.Ceremony {
	c := must(v.ceremony(cfg))
	check(c.Setup())
	v.anchor = c.PolicyID
	return c
}

// setupWith is setup with a policy edited by edit before it is sealed.
func (v *vec) setupWith(cfg chaintest.Config, edit func(p *payload.Policy)) *chaintest.Ceremony {
	c := must(v.ceremony(cfg))
	check(c.Enroll())
	p := c.NewPolicy()
	edit(p)
	b := must(c.Append(bundle.ChainOffline, p))
	c.Policy, c.PolicyID = p, b.ID()
	must(c.Approve(b.ID(), bundle.KindPolicy, 0, 1))
	v.anchor = c.PolicyID
	return c
}

// base builds the standard ceremony.
func (v *vec) base() *base {
	b := &base{c: v.setup(chaintest.Config{})}
	b.policy, b.policyApproval = b.c.Written[2], b.c.Written[3]
	b.offer = must(b.c.Offer())
	b.pkg = must(b.c.Package(b.offer.ID(), payload.RSA3072, "key-1"))
	b.approval = must(b.c.Approve(b.pkg.ID(), bundle.KindKeyPackage, 0, 1))
	b.receipt = must(b.c.Receipt(b.pkg))
	return b
}

// file returns the path of b on the vector's medium.
func (b *base) file(x *bundle.Bundle) string { return b.c.File(x) }

// otherPolicyID returns the ID of policy v1 of a ceremony with another seed: the anchor of
// somebody else's deployment.
func otherPolicyID() bundle.ID {
	dir := must(os.MkdirTemp("", "vectorgen-"))
	defer os.RemoveAll(dir)
	c := must(chaintest.New(chaintest.Config{Dir: filepath.Join(dir, "m"), Seed: 2}))
	defer c.Close()
	check(c.Setup())
	return c.PolicyID
}

// heads returns a copy of the ceremony's heads.
func heads(c *chaintest.Ceremony) *chain.Heads {
	h := c.Heads
	return &h
}

// rotate proposes policy v2 with custodians keep (indexes into c.Custodians) and newKeys,
// writes the approvals of the old custodians (first, idx of v1) and of the new ones, and puts
// v2 in force in the ceremony. It returns the v2 bundle.
func rotate(c *chaintest.Ceremony, keep []int, newKeys []*ecdsa.PrivateKey, threshold int) *bundle.Bundle {
	p := c.NewPolicy()
	p.Version, p.Previous, p.Threshold = 2, c.PolicyID, threshold
	p.Custodians = nil
	var v2Keys []*ecdsa.PrivateKey
	for _, i := range keep {
		v2Keys = append(v2Keys, c.Custodians[i])
	}
	v2Keys = append(v2Keys, newKeys...)
	for i, k := range v2Keys {
		pk := must(payload.NewPublicKey(k.Public()))
		p.Custodians = append(p.Custodians, payload.Custodian{Name: fmt.Sprintf("v2-custodian-%d", i+1), Key: pk})
	}
	b := must(c.Append(bundle.ChainOffline, p))
	// The threshold of version 1 first: not enough on its own.
	must(c.Approve(b.ID(), bundle.KindPolicy, 0, 1))
	// Then the threshold of version 2, by its new custodians.
	must(c.Append(bundle.ChainOffline, c.ApprovalBy(b.ID(), bundle.KindPolicy, newKeys[:threshold]...)))
	c.Policy, c.PolicyID = p, b.ID()
	return b
}

const day = 24 * time.Hour
