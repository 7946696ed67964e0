package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/online/internal/store"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

type statusOptions struct {
	stationFlags
}

func statusCommand(env *clirun.Env, d deps) *cli.Command {
	var o statusOptions
	return &cli.Command{
		Name:  "status",
		Usage: "show the station's key, pinned policy, chain heads, KEKs and uploads",
		Description: `status reads the state folder: the station key fingerprint, the pinned policy, the head of
the online chain and the latest verified head of the offline chain, the KEKs this station
offered, and every upload with its state. With --media it also lists how far each chain on
the medium goes, without verifying the bundles (verify does that); an older copy of the stick
(exit 10), another ceremony's (exit 11) or one whose history disagrees with what this station
verified (exit 3) is refused, as every command refuses it.`,
		Flags: o.flags(true),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return runStatus(c.Context, o, env, d)
		},
	}
}

type statusResult struct {
	Name       string         `json:"name"`
	StationKey fingerprint    `json:"station_key"`
	Policy     *pinnedPolicy  `json:"policy"`
	Online     chain.Head     `json:"online_head"`
	Offline    chain.Head     `json:"offline_head"`
	Pending    bool           `json:"pending_write"`
	KEKs       []kekStatus    `json:"keks"`
	Uploads    []uploadStatus `json:"uploads"`
	Counts     map[string]int `json:"upload_counts"`
	Medium     *mediumHeads   `json:"medium,omitempty"`
	now        time.Time      // the station's clock: what has expired by now
}

// mediumHeads are the last sequence numbers on the medium, unverified.
type mediumHeads struct {
	Online  uint64 `json:"online_seq"`
	Offline uint64 `json:"offline_seq"`
}

// kekStatus is a KEK as status shows it: its offer named by a Ref, as every command names it.
type kekStatus struct {
	store.KEK
	Offer        fingerprint `json:"offer"`
	OfferExpires *time.Time  `json:"offer_expires,omitempty"` // as kek create shows it
}

// uploadStatus is an upload as status shows it: its package and receipt named by a Ref, as
// every command names them.
type uploadStatus struct {
	store.Upload
	Package fingerprint  `json:"package"`
	Receipt *fingerprint `json:"receipt,omitempty"`
}

type pinnedPolicy struct {
	fingerprint
	Version uint64    `json:"version"`
	Pinned  time.Time `json:"pinned"`
}

func runStatus(_ context.Context, o statusOptions, env *clirun.Env, d deps) error {
	if err := o.check(false); err != nil {
		return err
	}
	key, err := loadKey(o.stationFlags)
	if err != nil {
		return err
	}
	sess, err := openSession(env, o.stationFlags, openMode{})
	if err != nil {
		return err
	}
	defer sess.close()
	st, s := sess.st, sess.store
	state, err := st.Load()
	if err != nil {
		return err
	}
	r := statusResult{StationKey: fp(keyID(key)), Online: state.Head, Offline: state.Peer, Pending: state.Pending, Counts: map[string]int{}, now: d.now()}
	if id, err := s.Identity(); err != nil {
		return err
	} else if id != nil {
		r.Name = id.Name
	}
	if p, err := s.Policy(); err != nil {
		return err
	} else if p != nil {
		r.Policy = &pinnedPolicy{fingerprint: fp(p.ID), Version: p.Policy.Version, Pinned: time.Unix(p.Pinned, 0).UTC()}
	}
	keks, err := s.KEKs()
	if err != nil {
		return err
	}
	r.KEKs = []kekStatus{}
	for _, k := range keks {
		ks := kekStatus{KEK: k, Offer: fp(k.Offer)}
		if k.OfferExpires != 0 {
			t := time.Unix(k.OfferExpires, 0).UTC()
			ks.OfferExpires = &t
		}
		r.KEKs = append(r.KEKs, ks)
	}
	ups, err := s.Uploads()
	if err != nil {
		return err
	}
	r.Uploads = []uploadStatus{}
	for _, u := range ups {
		us := uploadStatus{Upload: u, Package: fp(u.Package)}
		if u.Receipt != nil {
			rc := fp(*u.Receipt)
			us.Receipt = &rc
		}
		r.Uploads = append(r.Uploads, us)
		r.Counts[u.State]++
	}
	if st.Media != nil {
		if r.Medium, err = readHeads(st.Media); err != nil {
			return err
		}
	}
	return env.Result(r, r.write)
}

// expiryText is "expires T", or "expired T" if T is not after now.
func expiryText(t, now time.Time) string {
	if now.Before(t) {
		return "expires " + timeText(t)
	}
	return "expired " + timeText(t)
}

// readHeads lists the medium's chain heads (the station holds its read lock).
func readHeads(m *media.Media) (*mediumHeads, error) {
	var out mediumHeads
	for _, c := range []struct {
		chain bundle.Chain
		seq   *uint64
	}{{bundle.ChainOnline, &out.Online}, {bundle.ChainOffline, &out.Offline}} {
		e, ok, err := m.Head(c.chain)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Bundle, fmt.Errorf("list the medium: %w", err), "")
		}
		if ok {
			*c.seq = e.Seq
		}
	}
	return &out, nil
}

func (r statusResult) write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "station:        %s, key %s\n", r.Name, r.StationKey.Fingerprint)
	if r.Policy != nil {
		fmt.Fprintf(&b, "policy:         %s (version %d), pinned %s\n", r.Policy.Fingerprint, r.Policy.Version, timeText(r.Policy.Pinned))
	} else {
		fmt.Fprintf(&b, "policy:         none pinned (run byok-online trust)\n")
	}
	head := func(h chain.Head) string {
		if h.Seq == 0 {
			return "none"
		}
		return fmt.Sprintf("seq %d, %s", h.Seq, h.ID.Short())
	}
	fmt.Fprintf(&b, "online chain:   %s\noffline chain:  %s (latest verified)\n", head(r.Online), head(r.Offline))
	if m := r.Medium; m != nil {
		fmt.Fprintf(&b, "medium:         online seq %d, offline seq %d (not verified)\n", m.Online, m.Offline)
	}
	if r.Pending {
		fmt.Fprintf(&b, "pending write:  yes; the next command that writes to the medium finishes it\n")
	}
	fmt.Fprintf(&b, "KEKs:           %d\n", len(r.KEKs))
	for _, k := range r.KEKs {
		offer := k.Offer.Fingerprint
		if k.OfferExpires != nil {
			offer += " (" + expiryText(*k.OfferExpires, r.now) + ")"
		}
		fmt.Fprintf(&b, "  %s  RSA-%d  %s  offer %s\n", k.KID, k.KeySize, expiryText(time.Unix(k.Expires, 0), r.now), offer)
	}
	fmt.Fprintf(&b, "uploads:        %d\n", len(r.Uploads))
	for _, u := range r.Uploads {
		fmt.Fprintf(&b, "  %s  %s  %s", u.Package.Fingerprint, u.KeyName, u.State)
		if u.KID != "" {
			fmt.Fprintf(&b, "  %s", u.KID)
		}
		if u.Error != "" {
			fmt.Fprintf(&b, "  (%s)", u.Error)
		}
		b.WriteString("\n")
		if u.Duplicate() {
			fmt.Fprintf(&b, "    DUPLICATE: imported %d times; Key Vault holds %s\n", len(u.Versions), strings.Join(u.Versions, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
