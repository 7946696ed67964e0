package chain_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// An auditor replays a medium from genesis with the policy ID the stations pinned, and gets
// a verdict and a summary.
func ExampleReplay() {
	dir, err := os.MkdirTemp("", "example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// A test ceremony stands in for a real medium: policy, KEK offer, two approved key
	// packages and their receipts.
	c, err := chaintest.New(chaintest.Config{Dir: filepath.Join(dir, "stick")})
	if err != nil {
		panic(err)
	}
	if _, err := c.Full(payload.RSA3072, payload.ECP256); err != nil {
		panic(err)
	}
	anchor := c.PolicyID
	c.Close()

	m, err := media.Open(filepath.Join(dir, "stick"))
	if err != nil {
		panic(err)
	}
	defer m.Close()
	res, err := chain.Replay(context.Background(), m, chain.Options{Anchor: anchor})
	if err != nil {
		fmt.Println("replay stopped:", chain.Verdict(err))
	}
	fmt.Println("verdict:", chain.Verdict(res.Err()))
	st := res.State
	fmt.Printf("offline %d, online %d bundles; %d packages imported, %d outstanding\n",
		st.Heads.Offline.Seq, st.Heads.Online.Seq, st.Counts.Imported, len(st.Packages))
	// Output:
	// verdict: success
	// offline 7, online 4 bundles; 2 packages imported, 0 outstanding
}

// Verdict names the class of any error a replay reports, as test vectors spell it.
func ExampleVerdict() {
	fmt.Println(chain.Verdict(nil))
	fmt.Println(chain.Verdict(&chain.ForkError{Chain: bundle.ChainOffline, Seq: 4}))
	fmt.Println(chain.Verdict(fmt.Errorf("offline seq 5: %w", bundle.ErrBadSignature)))
	fmt.Println(chain.Verdict(&bundle.ParseError{What: "header", Err: &bundle.UnsupportedVersionError{Version: 2}}))
	fmt.Println(chain.Verdict(errors.New("disk on fire")))
	// Output:
	// success
	// fork
	// bad signature
	// unsupported version
	// error
}
