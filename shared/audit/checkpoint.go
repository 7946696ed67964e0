package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
)

// checkpointFormat is the first member of every checkpoint file. A new format gets a new
// string; this one is never reinterpreted.
const checkpointFormat = "airgap-byok audit checkpoint v1"

// maxCheckpointSize bounds what readCheckpoint reads. A checkpoint grows with the policy
// versions, the KEK offers, the key packages awaiting upload and the findings, not with the
// chains.
const maxCheckpointSize = 256 << 20

// ErrCheckpoint means a checkpoint file is malformed or of an unknown format. It wraps
// ErrUnreadable.
var ErrCheckpoint = fmt.Errorf("%w: not an audit checkpoint", ErrUnreadable)

// checkpoint is what an audit leaves for the next one (--checkpoint, --since): the replay's
// state, the anchor, the heads, and the findings and counts so far.
type checkpoint struct {
	Format            string                    `json:"format"`
	Created           string                    `json:"created"`
	Medium            string                    `json:"medium"` // informational: the folder audited
	Anchor            bundle.ID                 `json:"anchor"`
	Pinned            bool                      `json:"pinned"`
	TrustedOnFirstUse bool                      `json:"trusted_on_first_use"`
	Heads             chain.Heads               `json:"heads"`      // where the replay stood: the state's heads
	Remembered        chain.Heads               `json:"remembered"` // the furthest each chain was ever seen, by this audit or an earlier one
	Verdict           string                    `json:"verdict"`
	Findings          []Finding                 `json:"findings"`
	Counts            Counts                    `json:"counts"`
	Order             uint64                    `json:"order"`              // bundles in the timeline so far
	Stations          map[string]string         `json:"stations"`           // chain → station name
	PolicyApprovals   map[bundle.ID][]bundle.ID `json:"policy_approvals"`   // policy ID → custodians whose approval counted
	Pending           map[bundle.ID]*pkgInfo    `json:"pending"`            // the inventory's key packages awaiting upload
	Toolsets          []Toolset                 `json:"toolsets,omitempty"` // which toolsets wrote the bundles so far
	State             *chain.State              `json:"state"`              // nil if no policy was in force: the next audit replays from genesis
	// What the per-region view and the keys' residency gathered so far (regions.go).
	RegionKeys map[string]*[2]int       `json:"region_keys,omitempty"`
	Bound      map[string]bool          `json:"bound_keys,omitempty"`
	Residency  map[string]*KeyResidency `json:"residency,omitempty"`
}

func (a *auditor) checkpoint(rep *Report) *checkpoint {
	cp := &checkpoint{
		Format: checkpointFormat, Created: rep.Generated.Format("2006-01-02T15:04:05Z07:00"), Medium: rep.Medium,
		Pinned: rep.Pinned, TrustedOnFirstUse: rep.TrustedOnFirstUse, Heads: rep.Heads,
		Verdict: rep.Verdict, Findings: rep.Findings, Counts: rep.Counts, Order: a.order,
		Stations: map[string]string{}, Pending: a.pending, Remembered: a.remembered, PolicyApprovals: a.polApprove,
		Toolsets:   a.toolsets,
		RegionKeys: a.regionKeys, Bound: a.bound, Residency: a.residency,
	}
	cp.Findings = make([]Finding, len(rep.Findings))
	for i, f := range rep.Findings {
		f.Earlier = false
		cp.Findings[i] = f
	}
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		if h := *rep.Heads.Of(c); h.Seq >= cp.Remembered.Of(c).Seq {
			*cp.Remembered.Of(c) = h
		}
	}
	for c, n := range a.stations {
		cp.Stations[c.String()] = n
	}
	if st := a.state; st != nil {
		cp.Anchor = st.Anchor
		if st.Current() != nil {
			cp.State = st
		}
	}
	return cp
}

// readCheckpoint reads and checks a checkpoint file. Errors wrap ErrUnreadable, and
// ErrCheckpoint for a malformed file.
func readCheckpoint(p string) (*checkpoint, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %w", ErrUnreadable, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCheckpointSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint %s: %w", ErrUnreadable, p, err)
	}
	if len(data) > maxCheckpointSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCheckpoint, p, maxCheckpointSize)
	}
	var cp checkpoint
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&cp); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, p, err)
	}
	if cp.Format != checkpointFormat {
		return nil, fmt.Errorf("%w: %s has format %q, want %q", ErrCheckpoint, p, cp.Format, checkpointFormat)
	}
	if err := cp.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, p, err)
	}
	return &cp, nil
}

// check refuses a checkpoint whose parts disagree: it is input like any other.
func (cp *checkpoint) check() error {
	if cp.State == nil {
		return nil
	}
	st := cp.State
	switch {
	case st.Anchor != cp.Anchor:
		return errors.New("the state's anchor is not the checkpoint's")
	case st.Heads != cp.Heads:
		return errors.New("the state's heads are not the checkpoint's")
	case st.Current() == nil:
		return errors.New("the state has no policy in force")
	case st.Offers == nil || st.Packages == nil || st.Enrolled == nil:
		return errors.New("the state is incomplete")
	}
	for _, p := range st.Policies {
		if p.Policy == nil {
			return errors.New("a policy record without its policy")
		}
		if err := p.Policy.Validate(); err != nil {
			return fmt.Errorf("policy %s: %v", p.ID.Short(), err)
		}
	}
	if st.Pending != nil && st.Pending.Policy == nil {
		return errors.New("a pending policy without its policy")
	}
	for id, o := range st.Offers {
		if o == nil || o.Offer == nil || o.ID != id {
			return errors.New("a KEK offer record is incomplete")
		}
	}
	for id, p := range st.Packages {
		if p == nil || p.ID != id {
			return errors.New("a key package record is incomplete")
		}
	}
	for id, p := range cp.Pending {
		if p == nil {
			return fmt.Errorf("pending package %s is empty", id.Short())
		}
	}
	return nil
}

// writeCheckpoint writes cp to p atomically.
func writeCheckpoint(p string, cp *checkpoint) error {
	data, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(p, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
}

// writeAtomic writes a file through a temporary file in the same folder: write, sync, close,
// rename, sync the folder. On failure nothing is left behind.
func writeAtomic(p string, write func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(p)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
