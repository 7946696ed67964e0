// Package release checks a carried release folder before anything in it is installed on a
// station: every file SHA256SUMS lists is present and has the listed SHA-256, no file the
// folder holds goes unlisted, and, when the publisher signed SHA256SUMS, the signature is good
// for a signer the operator trusts (an SSH signature checked by ssh-keygen -Y verify).
//
// The folder is hostile: SHA256SUMS is read once, size-capped and parsed strictly (one
// "<64 hex digits>  <name>" line per file, plain file names only, no duplicates); symbolic
// links and folders are never followed; the signature is checked over the very bytes that
// were parsed.
package release

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// SumsFile is the checksum list's name in a release folder, and SigFile the default name of
// its detached SSH signature.
const (
	SumsFile = "SHA256SUMS"
	SigFile  = SumsFile + ".sig"
)

// maxSums caps how much of SHA256SUMS is read: a release lists tens of files.
const maxSums = 1 << 20

// Errors Verify returns, wrapped.
var (
	// ErrSums: SHA256SUMS is missing, unreadable or malformed.
	ErrSums = errors.New("SHA256SUMS missing or malformed")
	// ErrMissing: a listed file is not in the folder.
	ErrMissing = errors.New("listed file missing")
	// ErrMismatch: a file does not match its listed hash, is not a regular file, or is not
	// listed at all.
	ErrMismatch = errors.New("release does not match SHA256SUMS")
	// ErrSignature: the signature of SHA256SUMS is missing, bad, or by no allowed signer, or
	// could not be checked.
	ErrSignature = errors.New("signature of SHA256SUMS not verified")
)

// Status of one file in a Report.
const (
	StatusOK       = "ok"
	StatusMismatch = "mismatch"
	StatusMissing  = "missing"
	StatusUnlisted = "unlisted"
	StatusNotFile  = "not a regular file"
)

// Options says what to verify.
type Options struct {
	Dir string
	// AllowMissing accepts a folder that holds only some of the listed files (an operator
	// who carries one platform's package); at least one listed file must be present.
	AllowMissing bool
	// AllowedSigners, when set, makes the signature mandatory: an ssh-keygen allowed-signers
	// file naming the publisher's key.
	AllowedSigners string
	// Signature is the detached signature file; default Dir/SHA256SUMS.sig.
	Signature string
	// Identity is the signer's principal in AllowedSigners; empty finds it from the
	// signature (ssh-keygen -Y find-principals).
	Identity string
	// Namespace is the signature namespace; default "file", ssh-keygen's for signed files.
	Namespace string
	// Self is the running binary's SHA-256, reported where SHA256SUMS lists it.
	Self string
}

// File is one file's result.
type File struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256,omitempty"` // the listed hash
	Status string `json:"status"`
}

// Report is what Verify found.
type Report struct {
	Dir       string `json:"dir"`
	OK        bool   `json:"ok"`
	Files     []File `json:"files"`
	Signature string `json:"signature"` // "good", "not checked", or why it failed
	Signer    string `json:"signer,omitempty"`
	// SelfListedAs names the listed file whose hash is the running binary's, if any.
	SelfSHA256   string `json:"self_sha256,omitempty"`
	SelfListedAs string `json:"self_listed_as,omitempty"`

	err error
}

// Err is the verdict as an error: nil when the release verified.
func (r *Report) Err() error { return r.err }

// Verify checks the release folder o.Dir. It returns an error wrapping ErrSums (with a nil
// Report) when SHA256SUMS cannot be used at all; otherwise a Report whose Err says whether
// the release verified.
func Verify(ctx context.Context, o Options) (*Report, error) {
	raw, err := readSums(o.Dir)
	if err != nil {
		return nil, err
	}
	sums, err := ParseSums(raw)
	if err != nil {
		return nil, err
	}
	r := &Report{Dir: o.Dir, Signature: "not checked", SelfSHA256: o.Self}
	var errs []error
	if o.AllowedSigners != "" {
		signer, err := verifySignature(ctx, raw, o)
		if err != nil {
			r.Signature = err.Error()
			errs = append(errs, err)
		} else {
			r.Signature, r.Signer = "good", signer
		}
	}

	entries, err := os.ReadDir(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSums, err)
	}
	present := map[string]fs.DirEntry{}
	for _, e := range entries {
		present[e.Name()] = e
	}
	var mismatched, missing, matched []string
	for _, s := range sums {
		if o.Self != "" && s.SHA256 == o.Self && r.SelfListedAs == "" {
			r.SelfListedAs = s.Name
		}
		f := File{Name: s.Name, SHA256: s.SHA256}
		e, ok := present[s.Name]
		switch {
		case !ok:
			f.Status = StatusMissing
			missing = append(missing, s.Name)
		case !e.Type().IsRegular():
			f.Status = StatusNotFile
			mismatched = append(mismatched, s.Name)
		default:
			sum, err := hashRegular(filepath.Join(o.Dir, s.Name))
			switch {
			case err != nil:
				f.Status = StatusMismatch + ": " + err.Error()
				mismatched = append(mismatched, s.Name)
			case sum != s.SHA256:
				f.Status = StatusMismatch
				mismatched = append(mismatched, s.Name)
			default:
				f.Status = StatusOK
				matched = append(matched, s.Name)
			}
		}
		r.Files = append(r.Files, f)
		delete(present, s.Name)
	}
	sigName := SigFile
	if o.Signature != "" && filepath.Clean(filepath.Dir(o.Signature)) == filepath.Clean(o.Dir) {
		sigName = filepath.Base(o.Signature)
	}
	var unlisted []string
	for name := range present {
		if name == SumsFile || name == sigName {
			continue
		}
		unlisted = append(unlisted, name)
	}
	sort.Strings(unlisted)
	for _, name := range unlisted {
		r.Files = append(r.Files, File{Name: name, Status: StatusUnlisted})
	}
	if len(mismatched) > 0 {
		errs = append(errs, fmt.Errorf("%w: %s", ErrMismatch, strings.Join(mismatched, ", ")))
	}
	if len(unlisted) > 0 {
		errs = append(errs, fmt.Errorf("%w: not listed: %s", ErrMismatch, strings.Join(unlisted, ", ")))
	}
	if len(missing) > 0 && (!o.AllowMissing || len(matched)+len(mismatched) == 0) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrMissing, strings.Join(missing, ", ")))
	}
	r.err = errors.Join(errs...)
	r.OK = r.err == nil
	return r, nil
}

func readSums(dir string) ([]byte, error) {
	p := filepath.Join(dir, SumsFile)
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSums, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrSums, p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSums, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxSums+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSums, err)
	}
	if len(raw) > maxSums {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrSums, p, maxSums)
	}
	return raw, nil
}

// Sum is one line of SHA256SUMS.
type Sum struct {
	SHA256 string // lowercase hex
	Name   string
}

// ParseSums parses sha256sum's output format strictly: one "<64 hex digits>  <name>" (text
// mode) or "<64 hex digits> *<name>" (binary mode) line per file, each ending in a newline,
// names plain file names (no folders, no escapes), none twice, at least one.
func ParseSums(raw []byte) ([]Sum, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrSums)
	}
	if raw[len(raw)-1] != '\n' {
		return nil, fmt.Errorf("%w: the last line has no newline", ErrSums)
	}
	var out []Sum
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 4096), maxSums)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if len(line) < 67 || (line[64:66] != "  " && line[64:66] != " *") {
			return nil, fmt.Errorf("%w: line %d: want \"<sha256>  <name>\"", ErrSums, n)
		}
		sum, name := strings.ToLower(line[:64]), line[66:]
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, fmt.Errorf("%w: line %d: the hash is not 64 hex digits", ErrSums, n)
		}
		if !plainName(name) {
			return nil, fmt.Errorf("%w: line %d: %q is not a plain file name", ErrSums, n, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: line %d: %s is listed twice", ErrSums, n, name)
		}
		seen[name] = true
		out = append(out, Sum{SHA256: sum, Name: name})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSums, err)
	}
	return out, nil
}

func plainName(name string) bool {
	if name == "" || name == "." || name == ".." || name == SumsFile || strings.ContainsAny(name, "/\\\x00") {
		return false
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// hashRegular hashes the regular file at path, refusing anything else even if it was
// swapped for a link after the folder was listed.
func hashRegular(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	lfi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() || !os.SameFile(fi, lfi) {
		return "", errors.New("not a regular file")
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verifySignature checks the detached SSH signature over raw with ssh-keygen and returns the
// signer's principal.
func verifySignature(ctx context.Context, raw []byte, o Options) (string, error) {
	sig := o.Signature
	if sig == "" {
		sig = filepath.Join(o.Dir, SigFile)
	}
	ns := o.Namespace
	if ns == "" {
		ns = "file"
	}
	if fi, err := os.Lstat(sig); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: no signature file %s", ErrSignature, sig)
	}
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		return "", fmt.Errorf("%w: ssh-keygen is not installed (Debian: openssh-client)", ErrSignature)
	}
	id := o.Identity
	if id == "" {
		out, err := exec.CommandContext(ctx, keygen, "-Y", "find-principals", "-s", sig, "-f", o.AllowedSigners).Output()
		if err != nil {
			return "", fmt.Errorf("%w: the signing key is not in %s", ErrSignature, o.AllowedSigners)
		}
		id, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	cmd := exec.CommandContext(ctx, keygen, "-Y", "verify", "-f", o.AllowedSigners, "-I", id, "-n", ns, "-s", sig)
	cmd.Stdin = bytes.NewReader(raw)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return "", fmt.Errorf("%w: ssh-keygen -Y verify for %q (namespace %q): %s", ErrSignature, id, ns, msg)
	}
	return id, nil
}
