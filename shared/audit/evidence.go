package audit

// Evidence: what binds a report to the files it verified, so that anyone holding the medium
// (or a copy) can check that a report speaks of exactly those bytes.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// Evidence binds a report to the bundle files it verified.
//
// FilesSHA256 is the set digest of those files: the SHA-256 of the lines
// "<SHA-256 of the file, lowercase hex>  <path>\n" (two spaces: the format of sha256sum),
// one per bundle file this audit verified, sorted by path in byte order, where path is the
// file's path relative to the medium folder with "/" separators (offline/…/….bundle,
// online/…/….bundle). For an audit from genesis of a medium with no ignored files, it is what
//
//	cd MEDIUM && find offline online -type f -name '*.bundle' | LC_ALL=C sort | xargs sha256sum | sha256sum
//
// prints. An audit --since a checkpoint covers only the bundles it verified after it.
type Evidence struct {
	Heads       []HeadFile `json:"heads"`        // the offline then the online chain's head; a chain with none is absent
	Files       uint64     `json:"files"`        // bundle files this audit verified
	FilesSHA256 string     `json:"files_sha256"` // their set digest (see above)
}

// HeadFile is the file of a chain's head: the last bundle of the chain that the replay
// verified.
type HeadFile struct {
	Chain       string `json:"chain"`
	Seq         uint64 `json:"seq"`
	ID          string `json:"id"` // bundle ID, hex (itself a SHA-256 of the signed header, SPEC.md §4.2)
	Fingerprint string `json:"fingerprint"`
	Path        string `json:"path"`             // relative to the medium folder
	SHA256      string `json:"sha256,omitempty"` // of the file's bytes; empty if it could not be read again
	Error       string `json:"error,omitempty"`  // why it could not be read
}

// fileSet computes the set digest while the replay delivers bundles: each chain's bundles
// come in sequence order, which is their paths' byte order, and every offline path sorts
// before every online one ("offline/" < "online/"). The offline lines go to the hash as
// they come; the online lines wait in an unnamed temporary file and follow at the end.
type fileSet struct {
	h      hash.Hash
	online *tempFile
	last   [2]HeadFile // by chain: offline, online
	n      uint64
}

func newFileSet() (*fileSet, error) {
	f, err := newTempFile("byok-audit-files")
	if err != nil {
		return nil, fmt.Errorf("file set: %w", err)
	}
	return &fileSet{h: sha256.New(), online: f}, nil
}

func chainIndex(c bundle.Chain) int {
	if c == bundle.ChainOnline {
		return 1
	}
	return 0
}

// add records a verified bundle file; data are its bytes.
func (s *fileSet) add(e media.Entry, id bundle.ID, data []byte) error {
	i := chainIndex(e.Chain)
	if prev := s.last[i]; prev.Path != "" && e.Path <= prev.Path {
		return fmt.Errorf("file set: %s delivered after %s", e.Path, prev.Path)
	}
	sum := sha256.Sum256(data)
	hx := hex.EncodeToString(sum[:])
	line := hx + "  " + e.Path + "\n"
	var err error
	if i == 0 {
		_, err = io.WriteString(s.h, line)
	} else {
		_, err = io.WriteString(s.online.w, line)
	}
	if err != nil {
		return fmt.Errorf("file set: %w", err)
	}
	s.n++
	s.last[i] = HeadFile{Chain: e.Chain.String(), Seq: e.Seq, ID: id.String(), Fingerprint: id.Short(), Path: e.Path, SHA256: hx}
	return nil
}

// finish returns the evidence for the replay's heads. A head this run did not verify (an
// audit --since whose chain has nothing new) is read again from the medium.
func (s *fileSet) finish(m *media.Media, heads chain.Heads) (Evidence, error) {
	if err := s.online.w.Flush(); err != nil {
		return Evidence{}, fmt.Errorf("file set: %w", err)
	}
	if _, err := io.Copy(s.h, bufio.NewReader(io.NewSectionReader(s.online.f, 0, 1<<62))); err != nil {
		return Evidence{}, fmt.Errorf("file set: %w", err)
	}
	ev := Evidence{Heads: []HeadFile{}, Files: s.n, FilesSHA256: hex.EncodeToString(s.h.Sum(nil))}
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		h := *heads.Of(c)
		if h.Seq == 0 {
			continue
		}
		if l := s.last[chainIndex(c)]; l.Seq == h.Seq && l.ID == h.ID.String() {
			ev.Heads = append(ev.Heads, l)
			continue
		}
		hf := HeadFile{Chain: c.String(), Seq: h.Seq, ID: h.ID.String(), Fingerprint: h.ID.Short(), Path: media.Path(c, h.Seq, h.ID)}
		data, err := m.Read(media.Entry{Chain: c, Seq: h.Seq, ID: h.ID, Path: hf.Path})
		if err == nil {
			var b *bundle.Bundle
			if b, err = bundle.Parse(data); err == nil && b.ID() != h.ID {
				err = fmt.Errorf("the file holds bundle %s", b.ID().Short())
			}
		}
		if err != nil {
			hf.Error = err.Error()
		} else {
			hf.SHA256 = sha256Hex(data)
		}
		ev.Heads = append(ev.Heads, hf)
	}
	return ev, nil
}

func (s *fileSet) close() error { return s.online.close() }

// fileBytes returns the bytes of a verified bundle's file: the bundle encoded again, which is
// the file byte for byte when its header encodes to the bytes its ID was computed from
// (Parse takes no trailing bytes, and keeps the signature and payload as read); otherwise
// the file is read again.
func fileBytes(m *media.Media, v *chain.Verified) ([]byte, error) {
	data := v.Bundle.Marshal()
	if bundle.IDOfHeader(data[:bundle.HeaderSize]) == v.Bundle.ID() {
		return data, nil
	}
	return m.Read(v.Entry)
}
