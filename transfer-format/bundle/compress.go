package bundle

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// One encoder and one decoder serve the whole process: both are safe for concurrent use
// through EncodeAll and DecodeAll.
var (
	encOnce sync.Once
	enc     *zstd.Encoder
	decOnce sync.Once
	dec     *zstd.Decoder
)

func encoder() *zstd.Encoder {
	encOnce.Do(func() {
		var err error
		// Fixed settings make the output a function of the input alone (§4.5): one
		// segment, default level, checksum on, no concurrency inside a frame.
		enc, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(1),
			zstd.WithSingleSegment(true),
			zstd.WithEncoderCRC(true),
			zstd.WithZeroFrames(false),
		)
		if err != nil {
			panic(fmt.Sprintf("zstd encoder: %v", err))
		}
	})
	return enc
}

func decoder() *zstd.Decoder {
	decOnce.Do(func() {
		var err error
		// Stored payloads come from removable media and are untrusted: the decoder never
		// produces more than MaxPayload bytes, never uses a window larger than that, and
		// DecodeAll is further capped at the capacity of the destination, which callers set
		// to the declared length (§6).
		dec, err = zstd.NewReader(nil,
			zstd.WithDecoderMaxMemory(MaxPayload),
			zstd.WithDecoderMaxWindow(MaxPayload),
			zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderLowmem(true),
		)
		if err != nil {
			panic(fmt.Sprintf("zstd decoder: %v", err))
		}
	})
	return dec
}

// compress returns the stored form of a payload.
func compress(payload []byte) []byte {
	return encoder().EncodeAll(payload, make([]byte, 0, len(payload)/2+64))
}

// decompress decodes a stored payload that must decode to exactly n bytes. It checks the
// zstd frame header before decoding anything: one frame, single segment, declared content
// size equal to n.
func decompress(stored []byte, n uint32) ([]byte, error) {
	var fh zstd.Header
	if err := fh.Decode(stored); err != nil {
		return nil, errorf("stored payload", "zstd frame header: %v", err)
	}
	if fh.Skippable || !fh.SingleSegment || !fh.HasFCS || fh.DictionaryID != 0 {
		return nil, errorf("stored payload", "zstd frame is not a single segment with a declared size")
	}
	if fh.FrameContentSize != uint64(n) {
		return nil, &ParseError{What: "stored payload", Err: fmt.Errorf("%w: zstd frame declares %d bytes, header %d", ErrTooLarge, fh.FrameContentSize, n)}
	}
	// DecodeAll would go on to further frames, and frames that decode to nothing (empty
	// or skippable ones) would pass unnoticed: the stored payload is exactly one frame.
	if end, err := frameEnd(stored, &fh); err != nil {
		return nil, errorf("stored payload", "zstd frame: %v", err)
	} else if end != len(stored) {
		return nil, errorf("stored payload", "%d bytes after the zstd frame", len(stored)-end)
	}
	out, err := decoder().DecodeAll(stored, make([]byte, 0, n))
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		// The stored payload holds more than its frame declares: a decompression bomb.
		return nil, &ParseError{What: "stored payload", Err: fmt.Errorf("%w: decodes to more than the declared %d bytes", ErrTooLarge, n)}
	}
	if err != nil {
		return nil, &ParseError{What: "stored payload", Err: fmt.Errorf("zstd: %w", err)}
	}
	if len(out) != int(n) {
		return nil, errorf("stored payload", "decoded %d bytes, header declares %d", len(out), n)
	}
	return out, nil
}

// frameEnd returns the length of the zstd frame at the start of b, whose header is fh, by
// walking its block headers (RFC 8878 §3.1.1.2); it does not decode the blocks.
func frameEnd(b []byte, fh *zstd.Header) (int, error) {
	i := fh.HeaderSize
	for {
		if len(b)-i < 3 {
			return 0, errors.New("truncated block header")
		}
		bh := uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16
		i += 3
		size := int(bh >> 3)
		switch (bh >> 1) & 3 {
		case 0, 2: // raw, compressed: size bytes follow
		case 1: // RLE: one byte, repeated size times
			size = 1
		default:
			return 0, errors.New("reserved block type")
		}
		if len(b)-i < size {
			return 0, errors.New("truncated block")
		}
		i += size
		if bh&1 != 0 { // last block
			break
		}
	}
	if fh.HasCheckSum {
		if len(b)-i < 4 {
			return 0, errors.New("truncated checksum")
		}
		i += 4
	}
	return i, nil
}
