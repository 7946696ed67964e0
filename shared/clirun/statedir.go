package clirun

import (
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
)

// DefaultStateDir returns the state folder of station ("offline" or "online") when
// --state-dir is not given: $XDG_STATE_HOME/airgap-byok/<station>, else
// $HOME/.local/state/airgap-byok/<station> (the XDG Base Directory rule: a relative
// XDG_STATE_HOME is ignored). It returns "" when neither is known.
func DefaultStateDir(station string) string {
	base := os.Getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil || !filepath.IsAbs(home) {
			return ""
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "airgap-byok", station)
}

// StateDirFlag is the --state-dir flag of the binary bin's station ("offline" or "online"),
// whose usage says what the folder holds. Without the flag, the folder is $<BIN>_STATE_DIR
// when that is set and not empty, else DefaultStateDir.
func StateDirFlag(bin, station, usage string, dst *string) cli.Flag {
	env := envPrefix(bin) + "STATE_DIR"
	def := os.Getenv(env)
	if def == "" {
		def = DefaultStateDir(station)
	}
	return &cli.StringFlag{
		Name:        "state-dir",
		Usage:       usage,
		Value:       def,
		DefaultText: "$" + env + ", else $XDG_STATE_HOME/airgap-byok/" + station + ", else ~/.local/state/airgap-byok/" + station,
		Destination: dst,
		TakesFile:   true,
	}
}
