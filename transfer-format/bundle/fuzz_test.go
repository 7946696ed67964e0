package bundle_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/klauspost/compress/zstd"
)

// vectorBundles returns the bundle files of the test vectors (testdata/vectors), up to
// 64 KiB each: the fuzzers' seeds.
func vectorBundles(f *testing.F) [][]byte {
	f.Helper()
	var out [][]byte
	root := filepath.Join("..", "testdata", "vectors")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(p, ".bundle") {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && len(b) <= 64<<10 {
			out = append(out, b)
		}
		return err
	})
	if err != nil || len(out) == 0 {
		f.Fatalf("no seeds from %s: %v", root, err)
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, b := range vectorBundles(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Parse(data)
		if err != nil {
			var pe *bundle.ParseError
			if b != nil || !errors.As(err, &pe) {
				t.Fatalf("Parse() = %v, %v; want nil and a *ParseError", b, err)
			}
			return
		}
		if enc := b.Marshal(); !bytes.Equal(enc, data) {
			t.Fatalf("Marshal(Parse(x)) != x")
		}
		id := bundle.IDOfHeader(data[:bundle.HeaderSize])
		if b.ID() != id || b.Header.ID() != id {
			t.Fatalf("ID() = %s, Header.ID() = %s, want %s", b.ID(), b.Header.ID(), id)
		}
		again, err := bundle.Parse(b.Marshal())
		if err != nil || again.ID() != id {
			t.Fatalf("Parse(Marshal(Parse(x))) = %v, ID changed", err)
		}
	})
}

// openable returns the bundle file with stored payload stored: the header declares length
// n (or, if fromFrame, what the zstd frame header declares) and the stored digest of stored,
// so that Open reaches the decoder; the payload digest is of what a reference decoder makes
// of stored, if anything.
func openable(stored []byte, n uint32, fromFrame bool) []byte {
	if fromFrame {
		var fh zstd.Header
		if fh.Decode(stored) == nil && fh.HasFCS && fh.FrameContentSize <= bundle.MaxPayload+1 {
			n = uint32(fh.FrameContentSize)
		}
	}
	n = max(n, 1)
	h := bundle.Header{Version: bundle.Version, Kind: bundle.KindReceipt, Chain: bundle.ChainOnline, Alg: bundle.AlgEd25519,
		Seq: 2, Prev: bundle.ID{1}, Policy: bundle.ID{2}, Signer: bundle.ID{3}, Created: 1, Expires: 2,
		PayloadLen: n, StoredLen: uint32(len(stored)), StoredDigest: sha256.Sum256(stored)}
	if d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(bundle.MaxPayload), zstd.WithDecoderConcurrency(1)); err == nil {
		if p, err := d.DecodeAll(stored, nil); err == nil {
			h.PayloadDigest = sha256.Sum256(p)
		}
		d.Close()
	}
	enc := h.Marshal()
	out := append(enc[:], make([]byte, bundle.SignatureSize)...)
	return append(out, stored...)
}

func FuzzOpen(f *testing.F) {
	for _, b := range vectorBundles(f) {
		if p, err := bundle.Parse(b); err == nil {
			f.Add(p.Stored, p.Header.PayloadLen, false)
			f.Add(p.Stored, uint32(0), true)
		}
	}
	f.Add([]byte{}, uint32(5), false)
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x05, 0x29, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'}, uint32(5), true)
	f.Fuzz(func(t *testing.T, stored []byte, n uint32, fromFrame bool) {
		data := openable(stored, n, fromFrame)
		b, err := bundle.Parse(data)
		if err != nil {
			return // lengths out of range: Parse's business, see FuzzParse
		}
		p, err := b.Open()
		if err != nil {
			var pe *bundle.ParseError
			var hm *bundle.HashMismatchError
			if p != nil || !(errors.As(err, &pe) || errors.As(err, &hm)) {
				t.Fatalf("Open() = %d bytes, %v; want nil and a *ParseError or *HashMismatchError", len(p), err)
			}
			return
		}
		if len(p) > bundle.MaxPayload || len(p) != int(b.Header.PayloadLen) {
			t.Fatalf("Open() = %d bytes, header declares %d, MaxPayload %d", len(p), b.Header.PayloadLen, bundle.MaxPayload)
		}
		if sha256.Sum256(p) != b.Header.PayloadDigest {
			t.Fatalf("Open() returned bytes that do not match the payload digest")
		}
	})
}
