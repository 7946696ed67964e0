package audit

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// Toolset is one program that wrote bundles of one chain (SPEC.md §7.7): its version and
// SHA-256 as the bundles record them, and which bundles it wrote. Bundles of format version 1
// record no toolset; they are one entry with an empty version and hash.
type Toolset struct {
	Chain   string `json:"chain"`
	Station string `json:"station,omitempty"` // the station's name, from its enrollment
	Version string `json:"version,omitempty"` // as the program reports itself; empty for version 1 bundles
	SHA256  string `json:"sha256,omitempty"`  // of the program's executable; empty for version 1 bundles
	Format  uint16 `json:"format_version"`
	Bundles uint64 `json:"bundles"`
	// Seqs are the bundles it wrote, as ranges of consecutive sequence numbers, at most
	// maxToolsetRanges of them; SeqsOmitted counts the bundles of the ranges left out.
	Seqs        []SeqRange `json:"seqs"`
	SeqsOmitted uint64     `json:"seqs_omitted,omitempty"`
	// NotAllowed counts its bundles that a policy listing the allowed toolsets did not allow
	// (each is also a finding, rule toolset).
	NotAllowed uint64 `json:"not_allowed,omitempty"`
}

// SeqRange is the sequence numbers First to Last of a chain.
type SeqRange struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// maxToolsetRanges bounds the ranges kept per toolset, so that the report's memory does not
// grow with the chains even when two programs take turns.
const maxToolsetRanges = 64

// noteToolset records which toolset wrote v.
func (a *auditor) noteToolset(v *chain.Verified) {
	h := &v.Bundle.Header
	key := Toolset{Chain: h.Chain.String(), Format: h.Version}
	if t := payload.ToolsetOf(v.Payload); t != nil {
		key.Version, key.SHA256 = t.Version, t.SHA256
	}
	i := slices.IndexFunc(a.toolsets, func(t Toolset) bool {
		return t.Chain == key.Chain && t.Format == key.Format && t.Version == key.Version && t.SHA256 == key.SHA256
	})
	if i < 0 {
		key.Seqs = []SeqRange{}
		a.toolsets = append(a.toolsets, key)
		i = len(a.toolsets) - 1
	}
	t := &a.toolsets[i]
	t.Bundles++
	switch n := len(t.Seqs); {
	case n > 0 && t.Seqs[n-1].Last+1 == h.Seq:
		t.Seqs[n-1].Last = h.Seq
	case n < maxToolsetRanges:
		t.Seqs = append(t.Seqs, SeqRange{First: h.Seq, Last: h.Seq})
	default:
		t.SeqsOmitted++
	}
	for _, f := range v.Findings {
		if pe := (*chain.PolicyError)(nil); errors.As(f, &pe) && pe.Rule == "toolset" {
			t.NotAllowed++
			break
		}
	}
}

// toolsetsReport returns the toolsets for the report, named by station, offline chain
// first.
func (a *auditor) toolsetsReport() []Toolset {
	out := slices.Clone(a.toolsets)
	if out == nil {
		out = []Toolset{}
	}
	for i := range out {
		if c, ok := parseChain(out[i].Chain); ok {
			out[i].Station = a.stations[c]
		}
	}
	slices.SortStableFunc(out, func(x, y Toolset) int {
		if x.Chain != y.Chain {
			if x.Chain == bundle.ChainOffline.String() {
				return -1
			}
			return 1
		}
		return 0
	})
	return out
}

// toolsetLine describes t for the text report.
func toolsetLine(t Toolset) string {
	var sb strings.Builder
	sb.WriteString(t.Chain)
	if t.Station != "" {
		fmt.Fprintf(&sb, " (%s)", t.Station)
	}
	if t.SHA256 == "" {
		fmt.Fprintf(&sb, ": format version %d, no toolset recorded", t.Format)
	} else {
		fmt.Fprintf(&sb, ": %s sha256 %s", t.Version, t.SHA256)
	}
	fmt.Fprintf(&sb, " wrote %d bundle(s): seq %s", t.Bundles, seqList(t))
	if t.NotAllowed > 0 {
		fmt.Fprintf(&sb, "; NOT ALLOWED by the policy for %d of them", t.NotAllowed)
	}
	return sb.String()
}

// seqList writes t's ranges as "1-4, 9, 12-13".
func seqList(t Toolset) string {
	parts := make([]string, 0, len(t.Seqs)+1)
	for _, r := range t.Seqs {
		if r.First == r.Last {
			parts = append(parts, fmt.Sprint(r.First))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r.First, r.Last))
		}
	}
	if t.SeqsOmitted > 0 {
		parts = append(parts, fmt.Sprintf("and %d more", t.SeqsOmitted))
	}
	return strings.Join(parts, ", ")
}
