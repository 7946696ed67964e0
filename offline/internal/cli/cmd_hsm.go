package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/offline/internal/ceremony"
	"github.com/airgap-byok/airgap-byok/offline/internal/hsm"
	"github.com/airgap-byok/airgap-byok/shared/clirun"
)

// hsmCheckOptions are the options of "hsm check".
type hsmCheckOptions struct {
	StateDir string
	HSM      hsmOptions
}

func hsmCommand(env *clirun.Env) *cli.Command {
	var o hsmCheckOptions
	return &cli.Command{
		Name:  "hsm",
		Usage: "inspect the HSM",
		Subcommands: []*cli.Command{{
			Name:  "check",
			Usage: "show the module, the token and its mechanisms, choose the wrap path and run a wrap self-test",
			Description: "Opens the station's token, lists what it offers, chooses how keys will be wrapped\n" +
				"(CKM_RSA_AES_KEY_WRAP in one call, or the equivalent two steps) and wraps throwaway\n" +
				"session keys for a throwaway KEK, unwrapping them in software to check the result.\n\n" +
				"Before init, name the module and the token (--hsm-module, --token-label); once init has\n" +
				"run, they default to the ones it recorded in the state folder.",
			Flags: append([]cli.Flag{stateDirFlag(&o.StateDir)}, o.HSM.flags()...),
			Action: func(c *cli.Context) error {
				return runHSMCheck(c.Context, o, env)
			},
		}},
	}
}

// hsmCheckResult is the result of "hsm check".
type hsmCheckResult struct {
	hsm.CheckReport
	Warnings []string `json:"warnings"`
}

func runHSMCheck(ctx context.Context, o hsmCheckOptions, env *clirun.Env) error {
	ho, err := recordedHSM(env, o.StateDir, o.HSM)
	if err != nil {
		return err
	}
	tok, err := openStationToken(ctx, env, ho)
	if err != nil {
		return err
	}
	defer tok.Close()
	env.Log.Info("running the wrap self-test", "token", tok.Label())
	rep, cerr := tok.Check(ctx)
	res := hsmCheckResult{CheckReport: rep, Warnings: []string{}}
	if rep.ZeroPadding {
		// Said once, in the result (stdout or its JSON), not again in the log.
		res.Warnings = append(res.Warnings, rep.ZeroPaddingNote)
	}
	if err := env.Result(res, func(w io.Writer) error { return writeCheck(w, res) }); err != nil {
		return err
	}
	if cerr != nil {
		return hsmErr(cerr)
	}
	return nil
}

func writeCheck(w io.Writer, r hsmCheckResult) error {
	i := r.Info
	var b strings.Builder
	fmt.Fprintf(&b, "module:      %s\n", i.Library.Path)
	fmt.Fprintf(&b, "library:     %s %s (%s), cryptoki %s\n", i.Library.Manufacturer, i.Library.Version, i.Library.Description, i.Library.CryptokiVersion)
	fmt.Fprintf(&b, "token:       %s (serial %s)\n", i.Token.Label, i.Token.Serial)
	fmt.Fprintf(&b, "model:       %s %s, firmware %s, hardware %s\n", i.Token.Manufacturer, i.Token.Model, i.Token.FirmwareVersion, i.Token.HardwareVersion)
	var wrap []string
	for _, m := range r.Mechanisms {
		if m.Can(0x00020000) { // CKF_WRAP
			wrap = append(wrap, m.Name)
		}
	}
	fmt.Fprintf(&b, "mechanisms:  %d, of which wrap: %s\n", len(r.Mechanisms), strings.Join(wrap, ", "))
	if r.Wrap != nil {
		fmt.Fprintf(&b, "wrap path:   %s: %s\n", r.Wrap.Path, strings.Join(r.Wrap.Mechanisms, ", "))
	} else {
		fmt.Fprintf(&b, "wrap path:   none: %s\n", r.WrapError)
	}
	for _, t := range r.SelfTest {
		state := "ok"
		if !t.OK {
			state = "FAILED"
		}
		fmt.Fprintf(&b, "self-test:   %-8s %s: %s\n", t.Spec, state, t.Detail)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(&b, "WARNING:     %s\n", warn)
	}
	if r.OK {
		b.WriteString("result:      ok\n")
	} else {
		b.WriteString("result:      FAILED\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// recordedHSM fills the module and the token label that init recorded in the state folder,
// where the flags leave them out and init has run there.
func recordedHSM(env *clirun.Env, stateDir string, o hsmOptions) (hsmOptions, error) {
	if (o.Module != "" && o.TokenLabel != "") || !ceremony.HasLedger(stateDir) {
		return o, nil
	}
	sess, err := stateOptions{StateDir: stateDir}.openLedger(env)
	if err != nil {
		return o, err
	}
	defer sess.Close()
	st, err := sess.StationRecord()
	if err != nil {
		return o, err
	}
	return o.withDefaults(st), nil
}
