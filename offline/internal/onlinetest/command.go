package onlinetest

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/airgap-byok/airgap-byok/shared/medialock"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Command is the byok-test program of the end-to-end scripts: the online station on the
// medium $BYOK_MEDIA (or --media), and a .byok unwrapper. It returns the exit code.
//
//	byok-test enroll
//	byok-test offer [--vault URL] [--managed] [--bits N] [--kek-expires D] [--lifetime D] [--name N] [--tamper|--truncate]
//	byok-test receipt [--package ID|all] [--outcome imported|rejected|public_key_mismatch|wrong-key]
//	byok-test attestation-root FILE
//	byok-test unwrap [--bits N] [--expect KEYGEN_JSON] FILE.byok
//	byok-test hold [--ledger FILE] [--lock-media DIR] READY_FILE
//
// hold takes the ledger's file lock and/or the medium's write lock, creates READY_FILE and
// waits to be killed, as another byok process would.
func Command(args []string, stdout, stderr io.Writer) int {
	if err := command(args, stdout); err != nil {
		fmt.Fprintf(stderr, "byok-test: %v\n", err)
		return 1
	}
	return 0
}

func command(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: byok-test enroll|offer|receipt|attestation-root|unwrap ...")
	}
	fs := flag.NewFlagSet("byok-test "+args[0], flag.ContinueOnError)
	dir := fs.String("media", os.Getenv("BYOK_MEDIA"), "medium folder")
	seed := fs.Uint64("seed", DefaultSeed, "seed of the online station key")
	var oo OfferOptions
	fs.StringVar(&oo.Vault, "vault", DefaultVault, "vault URL")
	fs.BoolVar(&oo.ManagedHSM, "managed", false, "the vault is a Managed HSM")
	fs.IntVar(&oo.Bits, "bits", 3072, "KEK size")
	fs.DurationVar(&oo.KEKExpires, "kek-expires", 0, "KEK expiry from now")
	fs.DurationVar(&oo.Lifetime, "lifetime", 0, "offer bundle lifetime")
	fs.StringVar(&oo.Name, "name", "kek", "KEK name")
	tamper := fs.Bool("tamper", false, "flip a bit of the written offer")
	at := fs.Uint64("at", 0, "write the offer at this seq of the online chain, beside the bundle there (a signed fork)")
	truncate := fs.Bool("truncate", false, "cut the written offer in half")
	pkg := fs.String("package", "all", "key package ID, fingerprint, or all")
	outcome := fs.String("outcome", payload.OutcomeImported, "receipt outcome")
	expect := fs.String("expect", "", "keygen --json output the unwrapped key must match")
	holdLedger := fs.String("ledger", "", "ledger file to lock")
	holdMedia := fs.String("lock-media", "", "medium folder to lock")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "unwrap":
		if fs.NArg() != 1 {
			return fmt.Errorf("unwrap takes one .byok file")
		}
		return unwrap(stdout, fs.Arg(0), oo.Bits, *expect)
	case "hold":
		if fs.NArg() != 1 {
			return fmt.Errorf("hold takes the ready file")
		}
		return hold(*holdLedger, *holdMedia, fs.Arg(0))
	case "enroll", "offer", "receipt", "attestation-root":
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	if *dir == "" {
		return fmt.Errorf("no medium: set BYOK_MEDIA or --media")
	}
	s, err := Open(*dir, *seed)
	if err != nil {
		return err
	}
	defer s.Close()
	switch args[0] {
	case "enroll":
		if _, err := s.Enroll(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "online station key fingerprint %s\n", s.Fingerprint())
	case "offer":
		if *at != 0 {
			if err := s.Rewind(*at); err != nil {
				return err
			}
		}
		b, offer, err := s.Offer(oo)
		if err != nil {
			return err
		}
		if *tamper {
			if err := Tamper(s.File(b)); err != nil {
				return err
			}
		}
		if *truncate {
			if err := os.Chmod(s.File(b), 0o644); err != nil {
				return err
			}
			if err := os.Truncate(s.File(b), int64(len(b.Marshal())/2)); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "offer %s kid %s\n", b.ID().Short(), offer.KID)
	case "receipt":
		ids, err := s.Packages()
		if err != nil {
			return err
		}
		if *pkg != "all" {
			want, err := matchID(*pkg, ids)
			if err != nil {
				return err
			}
			ids = []bundle.ID{want}
		}
		if len(ids) == 0 {
			return fmt.Errorf("no key package awaits a receipt")
		}
		for _, id := range ids {
			b, err := s.Receipt(id, *outcome)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "receipt %s for %s: %s\n", b.ID().Short(), id.Short(), *outcome)
		}
	case "attestation-root":
		if fs.NArg() != 1 {
			return fmt.Errorf("attestation-root takes one file")
		}
		return os.WriteFile(fs.Arg(0), s.AttestationRootPEM(), 0o644)
	}
	return nil
}

func matchID(s string, ids []bundle.ID) (bundle.ID, error) {
	if id, err := bundle.ParseID(s); err == nil {
		return id, nil
	}
	short, err := bundle.ParseShort(s)
	if err != nil {
		return bundle.ID{}, err
	}
	for _, id := range ids {
		if id.Short() == short {
			return id, nil
		}
	}
	return bundle.ID{}, fmt.Errorf("no key package %s awaits a receipt", short)
}

// unwrap opens a .byok with the test KEK and prints what it holds: the SHA-256 of the
// public key's SPKI for RSA and EC keys, the check value for AES keys.
func unwrap(w io.Writer, path string, bits int, expect string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	f, err := byok.Parse(data)
	if err != nil {
		return err
	}
	plain, err := keywrap.UnwrapRSAAES(KEK(bits), f.Ciphertext)
	if err != nil {
		return fmt.Errorf("unwrap: %w", err)
	}
	var got struct {
		PublicKeySHA256 string `json:"public_key_sha256"`
		KCV             string `json:"kcv"`
	}
	der, trailing, derr := keywrap.TrimDER(plain)
	if derr == nil && len(der) > 16 {
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return fmt.Errorf("unwrapped key is not PKCS#8: %w", err)
		}
		spki, err := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
		if err != nil {
			return err
		}
		sum := sha256.Sum256(spki)
		got.PublicKeySHA256 = hex.EncodeToString(sum[:])
		fmt.Fprintf(w, "unwrapped %T, public key SHA-256 %s, %d trailing zero bytes\n", priv, got.PublicKeySHA256, len(trailing))
	} else {
		got.KCV = hex.EncodeToString(chaintest.AESCheckValue(plain))
		fmt.Fprintf(w, "unwrapped a %d-bit AES key, check value %s\n", 8*len(plain), got.KCV)
	}
	if expect == "" {
		return nil
	}
	j, err := os.ReadFile(expect)
	if err != nil {
		return err
	}
	var want struct {
		PublicKeySHA256 string `json:"public_key_sha256"`
		KCV             string `json:"kcv"`
	}
	if err := json.Unmarshal(j, &want); err != nil {
		return fmt.Errorf("%s: %w", expect, err)
	}
	if !strings.EqualFold(want.PublicKeySHA256, got.PublicKeySHA256) || !strings.EqualFold(want.KCV, got.KCV) {
		return fmt.Errorf("the unwrapped key is not the HSM's: got %+v, want %+v", got, want)
	}
	fmt.Fprintln(w, "matches the HSM's key")
	return nil
}

// hold locks what a running byok process locks and waits to be killed.
func hold(ledgerFile, mediaDir, ready string) error {
	if ledgerFile != "" {
		db, err := bolt.Open(ledgerFile, 0o600, &bolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer db.Close()
	}
	if mediaDir != "" {
		l, err := medialock.Exclusive(mediaDir)
		if err != nil {
			return err
		}
		defer l.Release()
	}
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		return err
	}
	for {
		time.Sleep(time.Hour)
	}
}
