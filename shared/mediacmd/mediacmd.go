// Package mediacmd is the "media" command both binaries offer: rebuilding a lost stick from
// what the station holds (media restore) and making a verified backup stick (media copy).
// The work is shared/station's (Restore, Copy); this package parses, prints and attaches exit
// codes and hints.
package mediacmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/airgap-byok/airgap-byok/shared/clirun"
	"github.com/airgap-byok/airgap-byok/shared/exitcode"
	"github.com/airgap-byok/airgap-byok/shared/station"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
)

// Opener opens the station of the binary: its ledger, and the medium in mediaDir unless it
// is "" (read access), waiting up to wait for another process holding its lock. It returns the function that finishes an interrupted write of its own
// chain from the bundle alone (station.Recover's apply), and the function that releases
// everything.
type Opener func(env *clirun.Env, stateDir, mediaDir string, wait time.Duration) (st *station.Station, apply station.Apply, release func() error, err error)

// Command returns "media restore" and "media copy" for the binary named name; stateFlag is
// its --state-dir flag.
func Command(env *clirun.Env, name string, stateFlag func(dst *string) cli.Flag, open Opener) *cli.Command {
	var stateDir, to string
	var wait time.Duration
	return &cli.Command{
		Name:  "media",
		Usage: "rebuild a lost stick from this station's copy, or make a verified backup stick",
		Description: "Every station keeps, in its state folder, every bundle it wrote and every bundle of the other\n" +
			"station's chain it verified. See the README, \"The stick\".",
		Subcommands: []*cli.Command{
			{
				Name:      "restore",
				Usage:     "write this station's copy of the log to a folder (a new stick, or one to complete)",
				UsageText: name + " media restore --to DIR",
				Description: "Writes every bundle this station wrote and every bundle of the other chain it verified,\n" +
					"and a write a crash interrupted, to DIR: an existing empty folder (it becomes a medium), or\n" +
					"a medium of this ceremony that lacks some of them (an older copy, or one the other station\n" +
					"restored). Run it on both stations in turn to rebuild the whole log: each adds what the\n" +
					"other did not hold. It then replays DIR against the ledger. Another ceremony's stick\n" +
					"(exit 11) or one whose history disagrees with this station's (exit 3) is refused, and\n" +
					"nothing is written to it.",
				Flags: []cli.Flag{
					stateFlag(&stateDir),
					&cli.StringFlag{Name: "to", Usage: "the folder to write: empty, or a medium of this ceremony", Destination: &to, TakesFile: true},
					clirun.WaitFlag(&wait),
				},
				Action: func(c *cli.Context) error {
					if c.Args().Present() {
						return clirun.Usagef("media restore takes no arguments, got %q", c.Args().First())
					}
					if to == "" {
						return clirun.Usagef("--to is required: the folder on the new stick")
					}
					return restore(c.Context, env, open, stateDir, to, wait)
				},
			},
			{
				Name:      "copy",
				Usage:     "copy a verified stick to an empty folder (a backup stick), and verify the copy",
				UsageText: name + " media copy SRC DST",
				Description: "Replays SRC against this station's ledger (as verify does), copies its bundles and its plain\n" +
					".byok copies byte for byte to DST, an existing empty folder, reads each file back, and\n" +
					"replays DST, which must end where SRC does. SRC is only read. Plain copies that are not\n" +
					"their package's .byok are left out, with a warning.",
				Flags: []cli.Flag{stateFlag(&stateDir), clirun.WaitFlag(&wait)},
				Action: func(c *cli.Context) error {
					if c.NArg() != 2 {
						return clirun.Usagef("media copy takes two folders, SRC and DST")
					}
					return copyMedium(c.Context, env, open, stateDir, c.Args().Get(0), c.Args().Get(1), wait)
				},
			},
		},
	}
}

// result is what restore and copy print.
type result struct {
	*station.Written
	Skipped []string `json:"skipped,omitempty"`
}

func restore(ctx context.Context, env *clirun.Env, open Opener, stateDir, to string, wait time.Duration) error {
	st, apply, release, err := open(env, stateDir, "", wait)
	if err != nil {
		return err
	}
	defer release()
	w, done, err := st.Restore(ctx, to, apply)
	if err != nil {
		return targetErr(err)
	}
	defer done()
	return write(env, "restored", result{Written: w})
}

func copyMedium(ctx context.Context, env *clirun.Env, open Opener, stateDir, src, dst string, wait time.Duration) error {
	st, _, release, err := open(env, stateDir, src, wait)
	if err != nil {
		return err
	}
	defer release()
	res, err := st.Replay(ctx, nil)
	if err != nil {
		return err
	}
	w, skipped, err := st.Copy(ctx, dst, res.State.Heads)
	if err != nil {
		return targetErr(err)
	}
	out := result{Written: w}
	for _, e := range skipped {
		env.Log.Warn("not copied", "err", e)
		out.Skipped = append(out.Skipped, e.Error())
	}
	return write(env, "copied", out)
}

func write(env *clirun.Env, verb string, r result) error {
	return env.Result(r, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s %d bundle(s) to %s (%d there already, %d plain .byok copies); verified: offline seq %d, online seq %d\n",
			verb, r.Bundles, r.Dir, r.Present, r.Copies, r.Heads.Offline.Seq, r.Heads.Online.Seq)
		for _, s := range r.Skipped {
			fmt.Fprintf(w, "not copied: %s\n", s)
		}
		return err
	})
}

// targetErr gives a target folder's refusals their exit codes and hints.
func targetErr(err error) error {
	switch {
	case errors.Is(err, station.ErrNoFolder):
		return exitcode.Wrap(exitcode.Bundle, err, "create the folder on the new stick first (an empty folder), and pass its path")
	case errors.Is(err, station.ErrNotEmpty):
		return exitcode.Wrap(exitcode.Refused, err, "a backup goes to an empty folder")
	case errors.Is(err, media.ErrNotMedia):
		return exitcode.Wrap(exitcode.Refused, err, "restore writes to an empty folder, or to a medium of this ceremony")
	}
	return err
}
