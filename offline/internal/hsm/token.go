//go:build cgo

package hsm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ThalesGroup/crypto11"
	"github.com/airgap-byok/airgap-byok/shared/secret"
	"github.com/miekg/pkcs11"
)

// configure is crypto11.Configure; tests replace it to inject failures.
var configure = crypto11.Configure

// openMu serialises Open and Close: crypto11 initialises the module on the first Configure
// and finalizes it on the last Close, and Open's token probe must not race with either.
var (
	openMu     sync.Mutex
	openTokens = map[*Token]struct{}{}
)

// Token is an open, logged-in PKCS#11 token. Its methods are safe for concurrent use, except
// that WrapTrusted logs the user out for a moment (see its doc).
//
// A Token holds two handles on the module: a crypto11 context, which generates, finds and
// signs with station and custodian keys, and a miekg/pkcs11 handle with one session for what
// crypto11 lacks (C_WrapKey, C_CreateObject, C_GetAttributeValue, C_Encrypt, mechanism and
// token information). The second handle is never finalized: crypto11 finalizes the module
// when its last context closes.
type Token struct {
	module string
	label  string
	serial string
	slot   uint
	log    *slog.Logger
	pin    secret.Value
	c11    *crypto11.Context

	// gen counts user logins on the miekg session. C_Logout invalidates every handle to a
	// private object, so Keys and SigningKeys remember the generation their handles belong
	// to and look them up again when it changed.
	gen atomic.Uint64

	mu     sync.Mutex // guards the fields below and every call on p and sh
	p      *pkcs11.Ctx
	sh     pkcs11.SessionHandle
	closed bool
	method *WrapMethod // chosen wrap path, cached
	info   *Info       // cached
}

// Open opens the token cfg names on the module cfg.Module and logs in with cfg.PIN.
//
// Several tokens of one module may be open at once (each with its own PIN), and a token may
// be opened again after Close. The same token may not be open twice in one process: PKCS#11
// login state is per process, so a second Open would succeed whatever PIN it was given.
//
// Errors wrap ErrInvalid (incomplete cfg, token already open), ErrTokenNotFound, ErrAmbiguous
// (several tokens carry the label and no serial was given), ErrPINIncorrect, ErrPINLocked or
// ErrModule.
func Open(ctx context.Context, cfg Config) (*Token, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("open token %q", cfg.TokenLabel)
	if err := canceled(ctx, op); err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.Module); err != nil {
		return nil, &Error{Op: op, Kind: ErrModule, Err: fmt.Errorf("pkcs11 module: %w", err)}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	openMu.Lock()
	defer openMu.Unlock()
	for o := range openTokens {
		if o.module == cfg.Module && o.label == cfg.TokenLabel && (cfg.TokenSerial == "" || cfg.TokenSerial == o.serial) {
			return nil, errorf(op, ErrInvalid, "token is already open in this process (serial %s)", o.serial)
		}
	}

	c11cfg := &crypto11.Config{Path: cfg.Module, Pin: cfg.PIN.Reveal()}
	// crypto11 wants exactly one selector; the serial is the unambiguous one.
	if cfg.TokenSerial != "" {
		c11cfg.TokenSerial = cfg.TokenSerial
	} else {
		c11cfg.TokenLabel = cfg.TokenLabel
	}
	c11, err := configure(c11cfg)
	if err != nil {
		return nil, configureErr(op, cfg, err)
	}

	// The Token keeps its own copy of the PIN (WrapTrusted logs the user back in with it):
	// the caller may wipe cfg.PIN as soon as Open returns.
	t := &Token{module: cfg.Module, label: cfg.TokenLabel, log: log, pin: secret.FromBytes(cfg.PIN.Bytes()), c11: c11}
	if err := t.attach(op, cfg); err != nil {
		_ = c11.Close()
		return nil, err
	}
	openTokens[t] = struct{}{}
	log.Info("opened token", "label", t.label, "serial", t.serial, "slot", t.slot)
	return t, nil
}

// configureErr classifies a crypto11.Configure failure. crypto11 reports a missing token
// without a PKCS#11 code, so in that case the slots are probed to tell "not found" from any
// other failure.
func configureErr(op string, cfg Config, err error) error {
	if _, ok := p11Code(err); ok {
		return p11Err(op, err)
	}
	found, perr := probeToken(cfg.Module, cfg.TokenLabel, cfg.TokenSerial)
	if perr == nil && found == 0 {
		if cfg.TokenSerial != "" {
			return errorf(op, ErrTokenNotFound, "no token with label %q and serial %s on %s", cfg.TokenLabel, cfg.TokenSerial, cfg.Module)
		}
		return errorf(op, ErrTokenNotFound, "no token with label %q on %s", cfg.TokenLabel, cfg.Module)
	}
	return p11Err(op, err)
}

// probeToken counts the tokens matching label (and serial) with a handle of its own. It
// finalizes the module only if it initialised it itself, which happens only when no Token
// of this package holds the module (Open holds openMu).
func probeToken(module, label, serial string) (int, error) {
	p := pkcs11.New(module)
	if p == nil {
		return 0, fmt.Errorf("cannot load pkcs11 module %s", module)
	}
	defer p.Destroy()
	err := p.Initialize()
	if err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return 0, err
	}
	if err == nil {
		defer func() { _ = p.Finalize() }()
	}
	slots, err := matchSlots(p, label, serial)
	return len(slots), err
}

// matchSlots returns the slots whose token has the label (and the serial, if not empty).
func matchSlots(p *pkcs11.Ctx, label, serial string) ([]uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return nil, err
	}
	var out []uint
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			continue // a slot whose token vanished is not ours
		}
		if strings.TrimSpace(ti.Label) == label && (serial == "" || strings.TrimSpace(ti.SerialNumber) == serial) {
			out = append(out, s)
		}
	}
	return out, nil
}

// attach opens the second (miekg/pkcs11) handle: same module, slot found by label (and
// serial), one read-write session, logged in (CKR_USER_ALREADY_LOGGED_IN is expected: the
// login state is shared with crypto11's sessions).
func (t *Token) attach(op string, cfg Config) error {
	p := pkcs11.New(cfg.Module)
	if p == nil {
		return errorf(op, ErrModule, "cannot load pkcs11 module %s", cfg.Module)
	}
	if err := p.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		p.Destroy()
		return p11Err(op+": initialize second handle", err)
	}
	fail := func(err error) error {
		p.Destroy() // dlclose only; never Finalize: crypto11 owns initialisation
		return err
	}
	slots, err := matchSlots(p, cfg.TokenLabel, cfg.TokenSerial)
	switch {
	case err != nil:
		return fail(p11Err(op+": list slots", err))
	case len(slots) == 0:
		return fail(errorf(op, ErrTokenNotFound, "the token selected by crypto11 does not carry label %q", cfg.TokenLabel))
	case len(slots) > 1:
		return fail(errorf(op, ErrAmbiguous, "%d tokens carry label %q: give the token serial", len(slots), cfg.TokenLabel))
	}
	ti, err := p.GetTokenInfo(slots[0])
	if err != nil {
		return fail(p11Err(op+": token info", err))
	}
	sh, err := p.OpenSession(slots[0], pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fail(p11Err(op+": open session", err))
	}
	if err := p.Login(sh, pkcs11.CKU_USER, cfg.PIN.Reveal()); err != nil && !isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		_ = p.CloseSession(sh)
		return fail(p11Err(op+": log in", err))
	}
	t.p, t.sh, t.slot, t.serial = p, sh, slots[0], strings.TrimSpace(ti.SerialNumber)
	return nil
}

// Close closes the miekg/pkcs11 session and handle first, then the crypto11 context, which
// finalizes the module if it was the module's last one (so that a later Open re-reads the
// module's configuration). Session objects die with the session. Close is idempotent; Keys
// and SigningKeys of the Token are unusable afterwards.
func (t *Token) Close() error {
	openMu.Lock()
	defer openMu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	delete(openTokens, t)
	serr := t.p.CloseSession(t.sh)
	t.p.Destroy()
	cerr := t.c11.Close()
	t.log.Info("closed token", "label", t.label, "serial", t.serial)
	if serr != nil {
		return p11Err(fmt.Sprintf("close token %q", t.label), serr)
	}
	if cerr != nil {
		return p11Err(fmt.Sprintf("close token %q", t.label), cerr)
	}
	return nil
}

// lock takes the session lock and fails with ErrClosed or an interruption.
func (t *Token) lock(ctx context.Context, op string) error {
	if err := canceled(ctx, op); err != nil {
		return err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return errorOf(op, ErrClosed)
	}
	return nil
}

// Label returns the token's label.
func (t *Token) Label() string { return t.label }

// Serial returns the token's serial number.
func (t *Token) Serial() string { return t.serial }

// Info returns the module's, the slot's and the token's information.
func (t *Token) Info(ctx context.Context) (Info, error) {
	const op = "token info"
	if err := t.lock(ctx, op); err != nil {
		return Info{}, err
	}
	defer t.mu.Unlock()
	return t.infoLocked(op)
}

func (t *Token) infoLocked(op string) (Info, error) {
	if t.info != nil {
		// Library and slot information do not change; token flags might, so refresh them.
		ti, err := t.p.GetTokenInfo(t.slot)
		if err != nil {
			return Info{}, p11Err(op, err)
		}
		info := *t.info
		info.Token = tokenInfo(ti)
		return info, nil
	}
	li, err := t.p.GetInfo()
	if err != nil {
		return Info{}, p11Err(op, err)
	}
	si, err := t.p.GetSlotInfo(t.slot)
	if err != nil {
		return Info{}, p11Err(op, err)
	}
	ti, err := t.p.GetTokenInfo(t.slot)
	if err != nil {
		return Info{}, p11Err(op, err)
	}
	info := Info{
		Library: LibraryInfo{
			Path:            t.module,
			CryptokiVersion: version(li.CryptokiVersion),
			Manufacturer:    strings.TrimSpace(li.ManufacturerID),
			Description:     strings.TrimSpace(li.LibraryDescription),
			Version:         version(li.LibraryVersion),
		},
		Slot: SlotInfo{
			ID:              t.slot,
			Description:     strings.TrimSpace(si.SlotDescription),
			Manufacturer:    strings.TrimSpace(si.ManufacturerID),
			Flags:           flagNames(si.Flags, slotFlagNames),
			HardwareVersion: version(si.HardwareVersion),
			FirmwareVersion: version(si.FirmwareVersion),
		},
		Token: tokenInfo(ti),
	}
	t.info = &info
	return info, nil
}

func tokenInfo(ti pkcs11.TokenInfo) TokenInfo {
	return TokenInfo{
		Label:           strings.TrimSpace(ti.Label),
		Manufacturer:    strings.TrimSpace(ti.ManufacturerID),
		Model:           strings.TrimSpace(ti.Model),
		Serial:          strings.TrimSpace(ti.SerialNumber),
		HardwareVersion: version(ti.HardwareVersion),
		FirmwareVersion: version(ti.FirmwareVersion),
		Flags:           flagNames(ti.Flags, tokenFlagNames),
		FlagBits:        ti.Flags,
	}
}

func version(v pkcs11.Version) Version { return Version{Major: v.Major, Minor: v.Minor} }

// Mechanisms returns the token's mechanisms, sorted by type, with names and flags.
func (t *Token) Mechanisms(ctx context.Context) ([]Mechanism, error) {
	const op = "list mechanisms"
	if err := t.lock(ctx, op); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	return t.mechanismsLocked(op)
}

func (t *Token) mechanismsLocked(op string) ([]Mechanism, error) {
	list, err := t.p.GetMechanismList(t.slot)
	if err != nil {
		return nil, p11Err(op, err)
	}
	out := make([]Mechanism, 0, len(list))
	for _, m := range list {
		mi, err := t.p.GetMechanismInfo(t.slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(m.Mechanism, nil)})
		if err != nil {
			return nil, p11Err(fmt.Sprintf("%s: info of %s", op, MechanismName(m.Mechanism)), err)
		}
		out = append(out, Mechanism{
			Type:       m.Mechanism,
			Name:       MechanismName(m.Mechanism),
			MinKeySize: mi.MinKeySize,
			MaxKeySize: mi.MaxKeySize,
			Flags:      flagNames(mi.Flags, mechanismFlagNames),
			FlagBits:   mi.Flags,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out, nil
}

// WrapMethod returns the wrap path Wrap uses on this token (see ChooseWrapMethod), or an
// error wrapping ErrMechanism if there is none.
func (t *Token) WrapMethod(ctx context.Context) (WrapMethod, error) {
	const op = "choose wrap method"
	if err := t.lock(ctx, op); err != nil {
		return WrapMethod{}, err
	}
	defer t.mu.Unlock()
	return t.methodLocked(op)
}

func (t *Token) methodLocked(op string) (WrapMethod, error) {
	if t.method != nil {
		return *t.method, nil
	}
	mechs, err := t.mechanismsLocked(op)
	if err != nil {
		return WrapMethod{}, err
	}
	m, err := ChooseWrapMethod(mechs)
	if err != nil {
		return WrapMethod{}, err
	}
	t.method = &m
	t.log.Debug("chose wrap method", "path", string(m.Path), "mechanisms", m.Mechanisms)
	return m, nil
}

// cgoEnabled tells the tests which build they run in.
const cgoEnabled = true

// TokenLabels returns the labels of the tokens present in module's slots, without logging in
// to any, so that a command can check the tokens it is given before it asks for a PIN or
// generates anything. It must run while no Token of the process is open (crypto11 refuses a
// module initialised by someone else); it returns an error wrapping ErrInvalid otherwise.
func TokenLabels(ctx context.Context, module string) ([]string, error) {
	const op = "list tokens"
	if err := canceled(ctx, op); err != nil {
		return nil, err
	}
	if _, err := os.Stat(module); err != nil {
		return nil, &Error{Op: op, Kind: ErrModule, Err: fmt.Errorf("pkcs11 module: %w", err)}
	}
	openMu.Lock()
	defer openMu.Unlock()
	if len(openTokens) > 0 {
		return nil, errorf(op, ErrInvalid, "a token is open in this process")
	}
	p := pkcs11.New(module)
	if p == nil {
		return nil, errorf(op, ErrModule, "cannot load %s", module)
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		return nil, errorf(op, ErrModule, "initialize: %w", err)
	}
	defer p.Finalize()
	slots, err := p.GetSlotList(true)
	if err != nil {
		return nil, errorf(op, ErrModule, "slot list: %w", err)
	}
	var labels []string
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			continue // a slot whose token went away
		}
		if l := strings.TrimRight(ti.Label, " \x00"); l != "" {
			labels = append(labels, l)
		}
	}
	sort.Strings(labels)
	return labels, nil
}
