package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/online/internal/vault"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/crashpoint"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// keyNameRE is Key Vault's rule for object names.
var keyNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

// AttestationFormat names the attestation a KEK offer carries: Key Vault's
// privateKeyAttestation blob as Data, its certificatePemFile as DER certificates.
const AttestationFormat = "azure-key-attestation"

type kekCreateOptions struct {
	stationFlags
	azureFlags
	Vault      string
	Name       string
	Size       int
	Expires    time.Duration
	NewVersion bool
}

func kekCommand(env *clirun.Env, d deps) *cli.Command {
	var o kekCreateOptions
	return &cli.Command{
		Name:  "kek",
		Usage: "Key Exchange Keys",
		Subcommands: []*cli.Command{{
			Name:  "create",
			Usage: "create an import-only RSA-HSM KEK in a vault and offer it on the medium",
			Description: `kek create creates a Key Exchange Key in the vault (which the pinned policy must allow):
RSA-HSM, import only, expiring. It reads the key back and checks its type, size, operations
and expiry, fetches its attestation where the vault has one (Managed HSM), and writes a KEK
offer bundle to the medium for the offline station to wrap keys with. The offer expires with
the policy's bundle lifetime (its expiry is shown), before the KEK itself may.

A name that already has an offer on the medium that has not expired is refused (exit 7)
before anything is sent to the vault: the offline station can still use that offer. Give
--new-version to create another version of the KEK, and offer it, anyway.`,
			Flags: append(append(o.stationFlags.flags(true), o.azureFlags.flags()...),
				&cli.StringFlag{Name: "vault", Usage: "vault URL, https://<name>.vault.azure.net or a Managed HSM URL", Destination: &o.Vault},
				&cli.StringFlag{Name: "name", Usage: "the KEK's key name in the vault", Destination: &o.Name},
				&cli.IntFlag{Name: "size", Usage: "RSA modulus bits: 2048, 3072 or 4096", Value: 4096, Destination: &o.Size},
				&cli.DurationFlag{Name: "expires", Usage: "how long the KEK stays usable (its offer expires sooner, with the policy's bundle lifetime)", Value: 720 * time.Hour, Destination: &o.Expires},
				&cli.BoolFlag{Name: "new-version", Usage: "create a new version of the KEK even though its name has an offer that has not expired", Destination: &o.NewVersion}),
			Action: func(c *cli.Context) error {
				if err := noArgs(c); err != nil {
					return err
				}
				return runKEKCreate(c.Context, o, env, d)
			},
		}},
	}
}

type kekResult struct {
	Offer        fingerprint `json:"offer"`
	OfferExpires *time.Time  `json:"offer_expires,omitempty"`
	Seq          uint64      `json:"seq"`
	Path         string      `json:"path"`
	Vault        string      `json:"vault"`
	KID          string      `json:"kid"`
	KeySize      int         `json:"key_size"`
	Expires      time.Time   `json:"expires"`
	Attested     bool        `json:"attested"`
}

func runKEKCreate(ctx context.Context, o kekCreateOptions, env *clirun.Env, d deps) error {
	if err := o.check(true); err != nil {
		return err
	}
	if o.Vault == "" || o.Name == "" {
		return clirun.Usagef("--vault and --name are required")
	}
	vaultURL, err := payload.CanonicalVaultURL(o.Vault)
	if err != nil {
		return clirun.Usagef("--vault: %v", err)
	}
	if !keyNameRE.MatchString(o.Name) {
		return clirun.Usagef("--name %q: want 1 to 127 letters, digits and dashes", o.Name)
	}
	if payload.RSAStrength(o.Size) == 0 {
		return clirun.Usagef("--size %d: want 2048, 3072 or 4096", o.Size)
	}
	if o.Expires < time.Hour || o.Expires > 10*366*24*time.Hour {
		return clirun.Usagef("--expires %s: want between 1h and ten years", o.Expires)
	}
	key, err := loadKey(o.stationFlags)
	if err != nil {
		return err
	}
	sess, err := openSession(env, o.stationFlags, openMode{write: true})
	if err != nil {
		return err
	}
	defer sess.close()
	st, sto := sess.st, sess.store
	state, err := st.Load()
	if err != nil {
		return err
	}
	if state.Anchor.IsZero() {
		return exitcode.Wrap(exitcode.Usage, station.ErrNoAnchor, "run byok-online trust first")
	}
	res, err := st.Replay(ctx, nil)
	if err != nil {
		return err
	}
	pol := res.State.Current()
	if pol == nil {
		return exitcode.Wrap(exitcode.Verify, errors.New("no policy is in force on the medium"), "")
	}
	pv, ok := pol.Policy.Vault(vaultURL)
	if !ok {
		return exitcode.Wrap(exitcode.Refused, fmt.Errorf("policy %s does not allow vault %s", pol.ID.Short(), vaultURL), "byok-online status and the policy summary list the allowed vaults")
	}
	if o.Size < pol.Policy.MinKEKBits {
		return exitcode.Wrap(exitcode.Refused, fmt.Errorf("policy %s requires KEKs of at least %d bits", pol.ID.Short(), pol.Policy.MinKEKBits), "")
	}
	// A KEK whose offer this clock could not sign, or this binary may not write, would be
	// created for nothing.
	if err := st.CheckWrite(d.now(), pol.ID); err != nil {
		return err
	}
	v := d.newVault(vaultURL, o.azureFlags.options(2))

	// An earlier kek create that was interrupted: report its offer if it got that far, else
	// look for the KEK it may have created before creating one.
	in, err := sto.KEKIntent()
	if err != nil {
		return err
	}
	same := in != nil && in.Vault == vaultURL && in.Name == o.Name && in.Size == o.Size
	switch {
	case in != nil && in.Done() && same:
		return finishedKEK(env, sto, in)
	case in != nil && !in.Done() && !same:
		env.Log.Warn("an interrupted kek create may have left an unused KEK version; it was never offered",
			"vault", in.Vault, "name", in.Name, "tag", store.TagKEKIntent+"="+in.Tag)
	}
	var created *vault.Key
	resumed := same && !in.Done()
	if !resumed && !o.NewVersion {
		if live := liveOffer(res, vaultURL, o.Name, d.now()); live != nil {
			return exitcode.Wrap(exitcode.Refused, fmt.Errorf("KEK %s in %s has an offer that has not expired: %s (%s), offer expires %s; nothing was sent to the vault",
				o.Name, vaultURL, live.ID.Short(), live.Offer.KID, timeText(time.Unix(live.Expires, 0))),
				"the offline station can use that offer (byok-offline kek accept); to create another version of the KEK anyway, add --new-version")
		}
	}
	if resumed {
		env.Log.Info("resuming an interrupted kek create", "vault", vaultURL, "name", o.Name, "started", timeText(time.Unix(in.Started, 0)))
		if created, err = findIntent(ctx, d, v, in); err != nil {
			return err
		}
	} else {
		tag := make([]byte, 16)
		rand.Read(tag)
		in = &store.KEKIntent{Vault: vaultURL, Name: o.Name, Size: o.Size, Expires: d.now().Add(o.Expires).Truncate(time.Second).Unix(),
			Tag: hex.EncodeToString(tag), Started: d.now().Unix()}
	}
	expires := time.Unix(in.Expires, 0)
	if created == nil {
		if err := sto.SetKEKIntent(in); err != nil {
			return err
		}
		crashpoint.Hit("kek-intent-recorded")
		env.Log.Info("creating the KEK", "vault", vaultURL, "name", o.Name, "size", o.Size, "expires", timeText(expires))
		created, err = retryThrottled(ctx, d, func() (*vault.Key, error) {
			return v.CreateKey(ctx, o.Name, vault.CreateParams{Kty: "RSA-HSM", Size: o.Size, KeyOps: []string{"import"}, Expires: expires,
				Tags: map[string]string{store.TagKEKIntent: in.Tag}})
		})
		if err != nil {
			if vault.Ambiguous(err) {
				return exitcode.Wrap(exitcode.Vault, err, "the KEK may have been created: run the same kek create again; it finds that KEK by its tag instead of creating another")
			}
			if vault.NothingDone(err) && !resumed {
				// Nothing was created: the next run has nothing to look for.
				if cerr := sto.SetKEKIntent(nil); cerr != nil {
					return cerr
				}
			}
			return err
		}
		crashpoint.Hit("kek-created")
	}
	kid, err := byok.ParseKeyID(created.KID)
	if err != nil {
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("key vault returned key ID %q: %w", created.KID, err), "")
	}
	if kid.Vault != vaultURL {
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("key vault returned key ID %s, which is not in vault %s", created.KID, vaultURL), "")
	}
	got, err := retryIdempotent(ctx, d, func() (*vault.Key, error) { return v.GetKey(ctx, kid.Name, kid.Version) })
	if err != nil {
		return err
	}
	if err := checkKEK(got, created.KID, o.Size, expires); err != nil {
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("key vault's KEK %s: %w", created.KID, err), "do not use this vault until the difference is understood")
	}
	env.Log.Info("KEK read back and checked", "kid", got.KID)
	offer := &payload.KEKOffer{Vault: vaultURL, KID: got.KID, Kty: got.Kty, KeySize: got.Size, KeyOps: slices.Clone(got.KeyOps),
		N: new(big.Int).SetBytes(got.N).Bytes(), E: new(big.Int).SetBytes(got.E).Bytes(), Expires: expires.Unix()}
	if pv.Kind == payload.VaultManagedHSM {
		att, err := retryIdempotent(ctx, d, func() (*vault.Attestation, error) { return v.KeyAttestation(ctx, kid.Name, kid.Version) })
		if err != nil {
			return err
		}
		if offer.Attestation, err = attestation(att); err != nil {
			return exitcode.Wrap(exitcode.Verify, fmt.Errorf("attestation of %s: %w", got.KID, err), "")
		}
		env.Log.Info("KEK attestation fetched", "certificates", len(offer.Attestation.Certificates))
	}
	if err := offer.Validate(); err != nil {
		return exitcode.Wrap(exitcode.Verify, fmt.Errorf("KEK offer: %w", err), "")
	}
	b, err := appendOwn(ctx, st, pol.ID, offer, key, d.now(), policyLifetime(pol))
	if err != nil {
		return err
	}
	crashpoint.Hit("kek-offered")
	if err := sto.SetKEKIntent(nil); err != nil {
		return err
	}
	offerExpires := time.Unix(b.Header.Expires, 0).UTC()
	r := kekResult{Offer: fp(b.ID()), OfferExpires: &offerExpires, Seq: b.Header.Seq, Path: media.Path(bundle.ChainOnline, b.Header.Seq, b.ID()), Vault: vaultURL,
		KID: got.KID, KeySize: got.Size, Expires: expires.UTC(), Attested: offer.Attestation != nil}
	return showKEK(env, r)
}

// showKEK prints the result of kek create.
func showKEK(env *clirun.Env, r kekResult) error {
	return env.Result(r, func(w io.Writer) error {
		att := "none (premium vaults have none)"
		if r.Attested {
			att = "included"
		}
		offerExpires := "unknown"
		if r.OfferExpires != nil {
			offerExpires = timeText(*r.OfferExpires)
		}
		_, err := fmt.Fprintf(w, "KEK %s\n  size:        RSA-%d, import only\n  expires:     %s\n  attestation: %s\noffer: online seq %d, %s\n  expires:     %s (package needs it unexpired: then run kek create again)\n  written to %s\n",
			r.KID, r.KeySize, timeText(r.Expires), att, r.Seq, r.Offer.Fingerprint, offerExpires, r.Path)
		return err
	})
}

// finishedKEK reports the offer of an interrupted kek create that got as far as recording it
// (the rerun that finished its write may be this one), and clears the intent.
func finishedKEK(env *clirun.Env, sto *store.Store, in *store.KEKIntent) error {
	k, err := sto.KEK(in.Offer)
	if err != nil {
		return err
	}
	if k == nil {
		return fmt.Errorf("the ledger's KEK intent names offer %s, which it does not hold", in.Offer.Short())
	}
	env.Log.Info("the interrupted kek create had finished: its offer is on the medium; no KEK created", "offer", in.Offer.Short())
	if err := sto.SetKEKIntent(nil); err != nil {
		return err
	}
	r := kekResult{Offer: fp(k.Offer), Seq: k.Seq, Path: media.Path(bundle.ChainOnline, k.Seq, k.Offer), Vault: k.Vault,
		KID: k.KID, KeySize: k.KeySize, Expires: time.Unix(k.Expires, 0).UTC(), Attested: k.Attested}
	if k.OfferExpires != 0 {
		t := time.Unix(k.OfferExpires, 0).UTC()
		r.OfferExpires = &t
	}
	return showKEK(env, r)
}

// liveOffer returns an offer on the medium of the KEK named name in vaultURL that has not
// expired at now, or nil.
func liveOffer(res *chain.Result, vaultURL, name string, now time.Time) *chain.OfferRecord {
	var live *chain.OfferRecord
	for _, o := range res.State.Offers {
		kid, err := byok.ParseKeyID(o.Offer.KID)
		if err != nil || o.Offer.Vault != vaultURL || kid.Name != name || !now.Before(time.Unix(o.Expires, 0)) {
			continue
		}
		if live == nil || o.Seq > live.Seq {
			live = o
		}
	}
	return live
}

// findIntent returns the KEK version that an interrupted kek create made, found by its tag,
// or nil if it made none.
func findIntent(ctx context.Context, d deps, v vault.Vault, in *store.KEKIntent) (*vault.Key, error) {
	vs, err := retryIdempotent(ctx, d, func() ([]vault.Version, error) { return v.KeyVersions(ctx, in.Name) })
	if errors.Is(err, vault.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, ver := range vs {
		if ver.Tags[store.TagKEKIntent] == in.Tag {
			return retryIdempotent(ctx, d, func() (*vault.Key, error) { return v.GetKey(ctx, in.Name, ver.Version) })
		}
	}
	return nil, nil
}

// checkKEK compares the KEK Key Vault holds with what was asked for.
func checkKEK(k *vault.Key, kid string, size int, expires time.Time) error {
	switch {
	case k.KID != kid:
		return fmt.Errorf("read back as %s", k.KID)
	case k.Kty != "RSA-HSM":
		return fmt.Errorf("kty %s, want RSA-HSM", k.Kty)
	case k.Size != size:
		return fmt.Errorf("%d bits, want %d", k.Size, size)
	case len(k.KeyOps) != 1 || k.KeyOps[0] != "import":
		return fmt.Errorf("key operations %q, want exactly [import]", k.KeyOps)
	case !k.Expires.Equal(expires):
		return fmt.Errorf("expires %s, want %s", timeText(k.Expires), timeText(expires))
	case !k.Enabled:
		return errors.New("disabled")
	}
	return nil
}

// attestation converts Key Vault's attestation to the offer's form.
func attestation(a *vault.Attestation) (*payload.Attestation, error) {
	if len(a.PrivateKey) == 0 {
		return nil, errors.New("no private key attestation")
	}
	out := &payload.Attestation{Format: AttestationFormat, Data: a.PrivateKey, Certificates: [][]byte{}}
	if a.Version != "" {
		out.Format += "/" + a.Version
	}
	rest := a.CertificatePEM
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			out.Certificates = append(out.Certificates, blk.Bytes)
		}
	}
	return out, nil
}

// retryThrottled calls f again while Key Vault answers 429, waiting as it asks: a throttled
// request did nothing, so even a create may be repeated.
func retryThrottled[T any](ctx context.Context, d deps, f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if err == nil || !errorsIsThrottled(err) || i >= 20 {
			return v, err
		}
		if serr := d.sleep(ctx, max(vault.RetryAfter(err), time.Second)); serr != nil {
			return v, serr
		}
	}
}

// retryIdempotent calls a read again after throttling, server errors and lost responses.
func retryIdempotent[T any](ctx context.Context, d deps, f func() (T, error)) (T, error) {
	for i := 1; ; i++ {
		v, err := f()
		if err == nil || !(errorsIsThrottled(err) || vault.Ambiguous(err)) || i >= 6 {
			return v, err
		}
		wait := vault.RetryAfter(err)
		if wait <= 0 {
			wait = time.Duration(i) * 500 * time.Millisecond
		}
		if serr := d.sleep(ctx, wait); serr != nil {
			return v, serr
		}
	}
}

func errorsIsThrottled(err error) bool { return errors.Is(err, vault.ErrThrottled) }
