// Command kubectl-kulta is KULTA's kubectl plugin: `kubectl kulta get rollout NAME` shows a
// rollout's revisions, weights, step, analysis and the reason for its phase, and promote, abort,
// retry, pause, resume, undo and status drive it. It talks to the API server only, as kubectl
// does; it holds no controller logic.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultascheme "github.com/false-systems/kulta/internal/scheme"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes of `status`, for CI pipelines.
const (
	exitOK       = 0
	exitFailed   = 1 // the rollout failed, or is stalled on something only a person can fix
	exitTimedOut = 2 // still in progress when the timeout ran out (or at once, without --watch)
	exitError    = 3 // the command itself failed: bad flags, no such Rollout, no API server
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// codeError carries an exit code through cobra.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ce *codeError
	if errors.As(err, &ce) {
		if ce.code != exitOK && printf(stderr, "Error: %v\n", ce.err) != nil {
			return exitError
		}
		return ce.code
	}
	if printf(stderr, "Error: %v\n", err) != nil {
		return exitError
	}
	return exitError
}

// app is what every command needs: the kubeconfig flags and, once resolved, a client.
type app struct {
	flags *genericclioptions.ConfigFlags
	out   io.Writer
	// config, when set, replaces the kubeconfig lookup (tests).
	config *rest.Config
}

func (a *app) client() (client.Client, string, error) {
	cfg := a.config
	if cfg == nil {
		var err error
		if cfg, err = a.flags.ToRESTConfig(); err != nil {
			return nil, "", fmt.Errorf("loading kubeconfig: %w", err)
		}
	}
	ns, _, err := a.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	if a.flags.Namespace != nil && *a.flags.Namespace != "" {
		ns = *a.flags.Namespace
	}
	scheme, err := kultascheme.New()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("creating client: %w", err)
	}
	return c, ns, nil
}

func newRoot(out io.Writer) *cobra.Command {
	a := &app{flags: genericclioptions.NewConfigFlags(true), out: out}
	root := &cobra.Command{
		Use:           "kubectl-kulta",
		Short:         "Inspect and drive KULTA Rollouts",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	a.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(
		a.getCommand(), a.listCommand(), a.promoteCommand(),
		a.annotateCommand("abort", "Send all traffic back to stable and scale the new revision down", "kulta.io/abort"),
		a.annotateCommand("retry", "Start a failed or aborted rollout again from its first step", "kulta.io/retry"),
		a.annotateCommand("conclude", "End a running A/B experiment", "kulta.io/conclude-experiment"),
		a.pauseCommand(true), a.pauseCommand(false), a.undoCommand(), a.statusCommand(), a.convertCommand(),
		&cobra.Command{
			Use:   "version",
			Short: "Print the plugin's version",
			RunE: func(cmd *cobra.Command, _ []string) error {
				return printf(cmd.OutOrStdout(), "kubectl-kulta %s\n", version)
			},
		},
	)
	return root
}
