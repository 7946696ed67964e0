package main

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/klauspost/compress/zstd"
)

// File is the content of vector.json.
type File struct {
	// Expect is the verdict class of the replay's first finding, as chain.Verdict names it.
	Expect string `json:"expect"`
	// Comment says what the vector is and why the verdict follows.
	Comment string `json:"comment"`
	// Anchor is the pinned policy ID in hex, or empty for trust on first use.
	Anchor string `json:"anchor"`
	// Remembered are the heads the verifying station saw before, if any.
	Remembered *chain.Heads `json:"remembered,omitempty"`
	// At is where the first finding is: its chain and sequence number (0 for a finding
	// about a chain as a whole). Omitted for "success".
	At *At `json:"at,omitempty"`
	// Warnings is the number of files the replay reports as ignored.
	Warnings int `json:"warnings,omitempty"`
	// Findings, if not 0, is the number of findings the replay reports in all: for vectors
	// whose point is what happens after the first one.
	Findings int `json:"findings,omitempty"`
}

// At names the bundle a finding is about.
type At struct {
	Chain string `json:"chain"`
	Seq   uint64 `json:"seq"`
}

// vector is one vector to build.
type vector struct {
	name    string
	expect  string
	comment string
	build   func(v *vec) error
}

// vec is a vector being built: its medium folder and what vector.json will record.
type vec struct {
	dir        string
	anchor     bundle.ID
	remembered *chain.Heads
	at         *At
	warnings   int
	findings   int
	open       []*chaintest.Ceremony
}

// Generate writes every vector to folder out, which must not exist.
func Generate(out string) error {
	if err := os.Mkdir(out, 0o755); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, v := range vectors() {
		if seen[v.name] {
			return fmt.Errorf("two vectors named %s", v.name)
		}
		seen[v.name] = true
		if err := generateOne(out, v); err != nil {
			return fmt.Errorf("vector %s: %w", v.name, err)
		}
	}
	return nil
}

func generateOne(out string, v vector) error {
	dir := filepath.Join(out, v.name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	st := &vec{dir: filepath.Join(dir, "medium")}
	err := build(st, v.build)
	for _, c := range st.open {
		c.Close()
	}
	if err != nil {
		return err
	}
	f := File{Expect: v.expect, Comment: v.comment, Remembered: st.remembered, At: st.at, Warnings: st.warnings, Findings: st.findings}
	if !st.anchor.IsZero() {
		f.Anchor = st.anchor.String()
	}
	// A medium that is refused as a whole has no bundle to name.
	if (f.Expect == "success" || f.Expect == "not a medium") != (f.At == nil) {
		return fmt.Errorf("a vector says where its finding is exactly when it expects one about a bundle")
	}
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if err := e.Encode(f); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "vector.json"), buf.Bytes(), 0o644)
}

// at records where the vector's first finding must be.
func (v *vec) expectAt(c bundle.Chain, seq uint64) { v.at = &At{Chain: c.String(), Seq: seq} }

// ceremony starts a ceremony on the vector's medium.
func (v *vec) ceremony(cfg chaintest.Config) (*chaintest.Ceremony, error) {
	cfg.Dir = v.dir
	// The same bytes at the same paths as media.Write, without an fsync per file.
	cfg.FastWrite = true
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	c, err := chaintest.New(cfg)
	if err == nil {
		v.open = append(v.open, c)
	}
	return c, err
}

// rewrite replaces the content of a file on the medium, keeping its name.
func rewrite(path string, f func([]byte) []byte) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return writeFile(path, f(b))
}

// writeFile writes a file as the media package leaves it: read-only.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		if err := os.Chmod(path, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(path, b, 0o444); err != nil {
		return err
	}
	return os.Chmod(path, 0o444)
}

// move renames a file on the medium, creating the destination folder.
func move(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.Rename(from, to)
}

// flip returns a function that flips bit bit of byte off.
func flip(off int, bit uint) func([]byte) []byte {
	return func(b []byte) []byte {
		b[off] ^= 1 << bit
		return b
	}
}

// header returns a copy of the encoded header of b.
func header(b *bundle.Bundle) []byte {
	h := b.Header.Marshal()
	return h[:]
}

// forge replaces bundle b on the medium by the bundle made of hdr and stored, signed by
// signer: the file is named by the new ID and placed by the sequence number in hdr. It
// returns the new ID.
func forge(c *chaintest.Ceremony, b *bundle.Bundle, hdr, stored []byte, signer crypto.Signer) (bundle.ID, error) {
	data, id, err := chaintest.Forge(hdr, stored, signer)
	if err != nil {
		return id, err
	}
	if err := os.Remove(c.File(b)); err != nil {
		return id, err
	}
	seq := binary.BigEndian.Uint64(hdr[16:24])
	p := filepath.Join(c.M.Dir(), filepath.FromSlash(media.Path(b.Header.Chain, seq, id)))
	return id, writeFile(p, data)
}

// forgeAs is forge with the bundle ID and station signature of format version v whatever
// the header's version field says: a bundle of one version signed and named as another.
func forgeAs(c *chaintest.Ceremony, b *bundle.Bundle, v uint16, hdr, stored []byte, signer crypto.Signer) (bundle.ID, error) {
	h := sha256.New()
	fmt.Fprintf(h, "airgap-byok/v%d/bundle-id\x00", v)
	h.Write(hdr)
	id := bundle.ID(h.Sum(nil))
	sig, err := bundle.Sign(signer, nil, bundle.SignatureMessage(v, id))
	if err != nil {
		return id, err
	}
	if err := os.Remove(c.File(b)); err != nil {
		return id, err
	}
	data := slices.Concat(hdr, sig[:], stored)
	seq := binary.BigEndian.Uint64(hdr[16:24])
	p := filepath.Join(c.M.Dir(), filepath.FromSlash(media.Path(b.Header.Chain, seq, id)))
	return id, writeFile(p, data)
}

// setStored puts the lengths and digests of stored and of the decoded payload p into hdr.
func setStored(hdr []byte, p, stored []byte) {
	binary.BigEndian.PutUint32(hdr[176:180], uint32(len(p)))
	binary.BigEndian.PutUint32(hdr[180:184], uint32(len(stored)))
	pd := sha256.Sum256(p)
	sd := sha256.Sum256(stored)
	copy(hdr[184:216], pd[:])
	copy(hdr[216:248], sd[:])
}

// zstdEncoder has the settings of the bundle package's encoder (SPEC.md §4.5), and
// multiSegmentEncoder the same without the Single_Segment flag.
var (
	zstdEncoder         = newEncoder(true)
	multiSegmentEncoder = newEncoder(false)
)

func newEncoder(singleSegment bool) *zstd.Encoder {
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(1),
		zstd.WithSingleSegment(singleSegment),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(false),
	)
	if err != nil {
		panic(err)
	}
	return e
}

func compress(p []byte) []byte { return zstdEncoder.EncodeAll(p, nil) }

// setFrameContentSize rewrites the declared content size of a single-segment zstd frame
// whose size field is four bytes (as the encoder writes for 64 KiB to 4 GiB).
func setFrameContentSize(frame []byte, n uint32) ([]byte, error) {
	var fh zstd.Header
	if err := fh.Decode(frame); err != nil {
		return nil, err
	}
	// Frame header descriptor: bits 7-6 size field flag (2 = four bytes), bit 5 single
	// segment (no window descriptor follows).
	if d := frame[4]; d>>6 != 2 || d&0x20 == 0 {
		return nil, fmt.Errorf("frame descriptor %#x has no four-byte size field", d)
	}
	out := bytes.Clone(frame)
	binary.LittleEndian.PutUint32(out[5:9], n)
	return out, nil
}

// reorderJSON re-emits a JSON object with its members sorted by name.
func reorderJSON(p []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(m[k])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
