// Package cli implements the phix command line. Each command is a thin
// layer over the library packages: it reads flags and files, wires the
// pieces together and reports, and holds no logic of its own that a
// library user would need.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Main runs the command line with args and returns the exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "phix:", err)
		return 1
	}
	return 0
}

// env carries the streams and logger every command uses.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	var verbose bool
	root := &cobra.Command{
		Use:           "phix",
		Short:         "Encrypted, signed message broker for protected health information",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			e.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log debug events")
	root.AddCommand(newUp(e), newPublish(e), newSubscribe(e))
	root.AddCommand(newPolicyCmd(e), newRevoke(e), newDoctor(e))
	root.AddCommand(newAudit(e))
	root.AddCommand(newQuarantine(e))
	root.AddCommand(newReplay(e))
	root.AddCommand(newKeys(e))
	root.AddCommand(newBridge(e))
	return root
}
