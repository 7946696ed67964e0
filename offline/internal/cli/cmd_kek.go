package cli

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/jsonout"
)

// kekAcceptOptions are the options of "kek accept".
type kekAcceptOptions struct {
	State           stateOptions
	Offer           string
	AttestationRoot string
}

func kekCommand(env *clirun.Env) *cli.Command {
	var o kekAcceptOptions
	return &cli.Command{
		Name:  "kek",
		Usage: "key-exchange keys offered by the online station",
		Subcommands: []*cli.Command{{
			Name:  "accept",
			Usage: "verify KEK offers on the medium and accept the valid ones",
			Description: "Replays the medium and checks each new KEK offer: signed by the online station the policy\n" +
				"names, an import-only RSA-HSM key of an allowed size, in a vault the policy allows, not\n" +
				"expired, and for a Managed HSM with an attestation (checked against --attestation-root).\n" +
				"Accepts every new valid offer, or only the one --offer names; refused offers are recorded\n" +
				"and make the command fail.",
			Flags: append(o.State.flags(true),
				&cli.StringFlag{Name: "offer", Usage: "accept only this offer: its fingerprint, bundle ID or the KEK's kid", Destination: &o.Offer},
				&cli.StringFlag{Name: "attestation-root", Usage: "PEM file of the root certificates Managed HSM attestations must chain to", Destination: &o.AttestationRoot, TakesFile: true},
			),
			Action: func(c *cli.Context) error { return runKEKAccept(c.Context, o, env) },
		}},
	}
}

// kekInfo describes a KEK decision for people.
type kekInfo struct {
	Offer        jsonout.Ref `json:"offer"`
	OfferExpires string      `json:"offer_expires"` // the offer bundle's expiry: package needs it unexpired
	KEK          string      `json:"kek_fingerprint"`
	KID          string      `json:"kid"`
	Vault        string      `json:"vault"`
	Bits         int         `json:"bits"`
	Expires      string      `json:"expires"`
	State        string      `json:"state"`
	Attestation  string      `json:"attestation"`
	Reason       string      `json:"reason,omitempty"`
	Verdict      string      `json:"verdict,omitempty"`
	New          bool        `json:"new"`
}

func kekInfoOf(k *store.KEK, isNew bool) kekInfo {
	return kekInfo{Offer: jsonout.RefOf(k.Offer), OfferExpires: when(k.OfferExpires), KEK: k.Fingerprint, KID: k.KID, Vault: k.Vault, Bits: k.Bits,
		Expires: time.Unix(k.Expires, 0).UTC().Format(time.RFC3339), State: k.State, Attestation: k.Attestation,
		Reason: k.Reason, Verdict: k.Verdict, New: isNew}
}

// kekAcceptResult is the result of "kek accept".
type kekAcceptResult struct {
	KEKs     []kekInfo `json:"keks"`
	Accepted int       `json:"accepted"`
	Refused  int       `json:"refused"`
}

func runKEKAccept(ctx context.Context, o kekAcceptOptions, env *clirun.Env) error {
	var roots *x509.CertPool
	if o.AttestationRoot != "" {
		var err error
		if roots, err = loadRoots(o.AttestationRoot); err != nil {
			return err
		}
	}
	// Opened for writing: the medium's write lock, so that a write an interrupted command
	// left pending is finished before the replay compares the medium with the ledger.
	sess, err := o.State.open(env, ceremony.Options{Access: ceremony.LedgerOnly})
	if err != nil {
		return err
	}
	defer sess.Close()
	acc, err := sess.AcceptKEKs(ctx, o.Offer, roots)
	if err != nil {
		return err
	}
	out := kekAcceptResult{KEKs: []kekInfo{}, Accepted: acc.Accepted, Refused: acc.Refused}
	for _, d := range acc.Decisions {
		out.KEKs = append(out.KEKs, kekInfoOf(&d.KEK, d.New))
		if d.New && d.KEK.State == store.KEKAccepted && d.KEK.Attestation == store.AttestationUnchecked {
			env.Log.Warn("the Managed HSM attestation was not checked: give --attestation-root", "kid", d.KEK.KID)
		}
	}
	if err := env.Result(out, func(w io.Writer) error { return writeKEKs(w, out) }); err != nil {
		return err
	}
	return acc.Refusal
}

func loadRoots(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, clirun.Usagef("--attestation-root: %v", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, clirun.Usagef("--attestation-root %s: %v", path, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, clirun.Usagef("--attestation-root %s holds no PEM certificate", path)
	}
	return pool, nil
}

func writeKEKs(w io.Writer, r kekAcceptResult) error {
	var b strings.Builder
	if len(r.KEKs) == 0 {
		b.WriteString("no new KEK offers on the medium\n")
	}
	for _, k := range r.KEKs {
		fmt.Fprintf(&b, "%-8s KEK %s  RSA-%d  %s\n", k.State, k.KEK, k.Bits, k.KID)
		fmt.Fprintf(&b, "         offer %s (expires %s), vault %s, KEK expires %s, attestation %s\n", k.Offer.Fingerprint, k.OfferExpires, k.Vault, k.Expires, k.Attestation)
		if k.Reason != "" {
			fmt.Fprintf(&b, "         reason: %s\n", k.Reason)
		}
	}
	if len(r.KEKs) > 0 {
		fmt.Fprintf(&b, "accepted %d, refused %d\n", r.Accepted, r.Refused)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
