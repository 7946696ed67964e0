package station

// Rebuilding a lost stick, and backing one up (README, "The stick").
//
// Restore writes what the station holds (its archive, and an interrupted write) onto an
// empty folder, or adds it to a medium of this ceremony that lacks some of it: run on both
// stations in turn, it rebuilds the whole log, each adding what the other did not hold.
// Copy writes a verified medium's bundles and plain .byok copies to an empty folder, byte for
// byte. Both replay what they wrote before they report success.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/airgap-byok/airgap-byok/shared/medialock"
	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/byok"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// ErrNotEmpty means a copy's target folder is not empty.
var ErrNotEmpty = errors.New("the folder is not empty")

// ErrNoFolder means the target folder does not exist.
var ErrNoFolder = errors.New("no such folder")

// writeBatch is how many bundles Restore and Copy write per folder sync.
const writeBatch = 256

// Written says what Restore or Copy wrote.
type Written struct {
	Dir     string      `json:"dir"`
	Bundles int         `json:"bundles_written"` // bundle files written
	Present int         `json:"bundles_present"` // bundle files the folder held already
	Copies  int         `json:"byok_copies_written,omitempty"`
	Heads   chain.Heads `json:"heads"` // of the medium written, as its replay found them
}

// target is a medium being written, under its write lock.
type target struct {
	m    *media.Media
	lock *medialock.Lock
}

func (t *target) close() {
	t.m.Close()
	t.lock.Release()
}

// openTarget opens dir, an existing folder, for writing: an empty folder becomes a medium;
// one that is a medium is opened as it is, unless empty is set (then it must be empty).
func openTarget(ctx context.Context, dir string, empty bool, lo medialock.Options) (*target, error) {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a folder")
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrNoFolder, dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if empty {
		for _, e := range ents {
			if e.Name() != media.LockName {
				return nil, fmt.Errorf("%w: %s holds %s", ErrNotEmpty, dir, e.Name())
			}
		}
	}
	lock, err := medialock.ExclusiveWith(ctx, dir, lo)
	if err != nil {
		return nil, err
	}
	var m *media.Media
	if len(ents) == 0 {
		m, err = media.Init(dir)
	} else {
		m, err = media.Open(dir)
	}
	if err != nil {
		lock.Release()
		return nil, err
	}
	return &target{m: m, lock: lock}, nil
}

// Restore writes this station's copy of the log onto the medium in dir (see the top of this
// file): every archived bundle of both chains that the medium lacks, then an interrupted
// write of its own (finished with apply, as Recover does). dir must be an existing folder:
// empty, or a medium of this ceremony (Identity: a current or an older copy; another
// ceremony's or a forked one is refused, and nothing is written). It then replays the
// medium against the ledger and returns the replay's error if it stops. Afterwards s.Media is
// the restored medium, open until release (the caller's Open's release does not close it:
// the returned function does).
func (s *Station) Restore(ctx context.Context, dir string, apply Apply) (*Written, func(), error) {
	// Another ceremony's or a forked medium is refused before its write lock is taken (which
	// records the holder in its lock file), so that it is not touched at all; checked again
	// under the lock below.
	if pre, err := media.Open(dir); err == nil {
		s.Media = pre
		ierr := s.Identity()
		s.Media = nil
		pre.Close()
		if ierr != nil && !errors.Is(ierr, ErrStaleMedium) {
			return nil, nil, ierr
		}
	}
	t, err := openTarget(ctx, dir, false, LockOptions(s.Log, s.LockWait))
	if err != nil {
		return nil, nil, err
	}
	s.Media = t.m
	done := func() { t.close() }
	fail := func(err error) (*Written, func(), error) {
		done()
		return nil, nil, err
	}
	if err := s.Identity(); err != nil && !errors.Is(err, ErrStaleMedium) {
		return fail(err)
	}
	w := &Written{Dir: dir}
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		have := map[uint64]bundle.ID{}
		for e, err := range t.m.Entries(c, 1, nil) {
			if err != nil {
				return fail(fmt.Errorf("%w: list the medium: %v", ErrUnreadable, err))
			}
			have[e.Seq] = e.ID
		}
		var batch []*bundle.Bundle
		for b, err := range s.Archived(c) {
			if err != nil {
				return fail(err)
			}
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
			if id, ok := have[b.Header.Seq]; ok {
				if id != b.ID() {
					return fail(&DisagreeError{Err: &chain.ForkError{Chain: c, Seq: b.Header.Seq, A: b.ID(), B: id, Reason: "the folder holds another bundle there"}})
				}
				w.Present++
				continue
			}
			if batch = append(batch, b); len(batch) == writeBatch {
				if _, err := t.m.WriteAll(batch); err != nil {
					return fail(mediaErr(err))
				}
				w.Bundles, batch = w.Bundles+len(batch), nil
			}
		}
		if _, err := t.m.WriteAll(batch); err != nil {
			return fail(mediaErr(err))
		}
		w.Bundles += len(batch)
	}
	if err := s.Recover(apply); err != nil {
		return fail(err)
	}
	res, err := s.Replay(ctx, nil)
	if err != nil {
		return fail(err)
	}
	w.Heads = res.State.Heads
	return w, done, nil
}

// Copy writes the bundles and the plain .byok copies of s.Media, which the caller has just
// verified (Replay without an error), to dir, an existing empty folder, byte for byte: each
// file is read back and compared with the original, and the copy is replayed against the
// ledger, which must find it where it found the original (heads). Plain copies that are
// not their package's .byok are left out (and counted in skipped).
func (s *Station) Copy(ctx context.Context, dir string, heads chain.Heads) (w *Written, skipped []error, err error) {
	t, err := openTarget(ctx, dir, true, LockOptions(s.Log, s.LockWait))
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	src := s.Media
	w = &Written{Dir: dir}
	var copies []media.ByokFile
	for _, c := range []bundle.Chain{bundle.ChainOffline, bundle.ChainOnline} {
		var batch []*bundle.Bundle
		var raw [][]byte
		flush := func() error {
			if _, err := t.m.WriteAll(batch); err != nil {
				return mediaErr(err)
			}
			for i, b := range batch {
				got, err := t.m.ReadFile(media.Path(c, b.Header.Seq, b.ID()), bundle.MaxFileSize)
				if err != nil || !bytes.Equal(got, raw[i]) {
					return &CopyError{Err: &media.ReadBackError{Path: media.Path(c, b.Header.Seq, b.ID())}}
				}
			}
			w.Bundles += len(batch)
			batch, raw = nil, nil
			return nil
		}
		for e, err := range src.Entries(c, 1, nil) {
			if err != nil {
				return nil, nil, fmt.Errorf("%w: list the medium: %v", ErrUnreadable, err)
			}
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			data, err := src.Read(e)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: read %s: %v", ErrUnreadable, e.Path, err)
			}
			b, err := bundle.Parse(data)
			if err != nil {
				return nil, nil, &MalformedError{Err: err}
			}
			if !bytes.Equal(b.Marshal(), data) {
				return nil, nil, &MalformedError{Err: fmt.Errorf("%s is not in its canonical encoding", e.Path)}
			}
			if b.Header.Kind == bundle.KindKeyPackage {
				if f, err := plainCopy(src, b); err != nil {
					skipped = append(skipped, err)
				} else if f != nil {
					copies = append(copies, *f)
				}
			}
			batch, raw = append(batch, b), append(raw, data)
			if len(batch) == writeBatch {
				if err := flush(); err != nil {
					return nil, nil, err
				}
			}
		}
		if err := flush(); err != nil {
			return nil, nil, err
		}
	}
	if _, err := t.m.WriteByoks(copies); err != nil {
		return nil, nil, mediaErr(err)
	}
	w.Copies = len(copies)
	// The copy must replay exactly as the original did.
	st, err := s.Load()
	if err != nil {
		return nil, nil, err
	}
	res, err := chain.Replay(ctx, t.m, s.replayOptions(st, nil))
	if err != nil {
		return nil, nil, VerifyErr(err)
	}
	if res.State.Heads != heads {
		return nil, nil, &CopyError{Err: fmt.Errorf("the copy replays to other heads than the original (offline %d, online %d)", res.State.Heads.Offline.Seq, res.State.Heads.Online.Seq), Replayed: true}
	}
	w.Heads = res.State.Heads
	return w, skipped, nil
}

// plainCopy returns the plain .byok copy of key package b on m, if m holds one that is the
// package's .byok; nil if it holds none; an error wrapping ErrByokCopy if it holds another.
func plainCopy(m *media.Media, b *bundle.Bundle) (*media.ByokFile, error) {
	pl, err := b.Open()
	if err != nil {
		return nil, err
	}
	var k payload.KeyPackage
	if err := payload.Unmarshal(pl, &k); err != nil {
		return nil, err
	}
	name := ByokCopyName(k.KeyName, b.ID())
	if err := CheckByokCopy(m, k.KeyName, b.ID(), k.BYOK); err != nil {
		return nil, err
	}
	if _, err := m.ReadFile(path.Join(media.ByokDir, name), byok.MaxFileSize); err != nil {
		return nil, nil // none
	}
	return &media.ByokFile{Name: name, Data: k.BYOK}, nil
}
