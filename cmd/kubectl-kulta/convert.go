package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/false-systems/kulta/internal/convert"
)

// convertCommand is `kubectl kulta convert -f FILE|DIR|- [-o DIR] [--strict]`: it reads Argo
// Rollouts and Flagger manifests and writes KULTA's, passing every other object through. It
// needs no cluster.
func (a *app) convertCommand() *cobra.Command {
	var files []string
	var outDir string
	var strict bool
	cmd := &cobra.Command{
		Use:   "convert -f FILE|DIR|- [-o DIR] [--strict]",
		Short: "Convert Argo Rollouts and Flagger manifests into KULTA's",
		Long: `Convert reads YAML streams (files, directories read recursively, or - for standard input)
and writes KULTA manifests: Argo Rollouts become KULTA Rollouts, with the AnalysisTemplates they
name inlined; Flagger Canaries become Rollouts adopting their target Deployment, with the Services
and route Flagger would have generated and their MetricTemplates inlined; every other object
passes through as it was written. Each thing KULTA cannot
express is a warning on standard error naming the object and the field; --strict makes any
warning fail the command. Without -o the result goes to standard output; with -o DIR each input
file is written under DIR at its own relative path.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return &codeError{code: exitError, err: errors.New("convert needs -f FILE, DIR or -")}
			}
			inputs, err := readInputs(files, cmd.InOrStdin())
			if err != nil {
				return &codeError{code: exitError, err: err}
			}
			res, err := convert.Convert(inputs)
			if err != nil {
				return &codeError{code: exitError, err: err}
			}
			for _, w := range res.Warnings {
				if err := printf(cmd.ErrOrStderr(), "warning: %s\n", w); err != nil {
					return err
				}
			}
			if err := writeOutputs(res.Outputs, outDir, cmd.OutOrStdout()); err != nil {
				return &codeError{code: exitError, err: err}
			}
			if strict && len(res.Warnings) > 0 {
				return &codeError{code: exitFailed, err: fmt.Errorf("%d warnings, and --strict is set", len(res.Warnings))}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "a file, a directory (read recursively) or - for standard input; may be repeated")
	cmd.Flags().StringVarP(&outDir, "output-dir", "o", "", "write each converted file under this directory instead of standard output")
	cmd.Flags().BoolVar(&strict, "strict", false, "exit non-zero when anything could not be converted as it was")
	return cmd
}

// readInputs reads the named files, the YAML files of the named directories (recursively, in
// name order) and, for -, standard input. Each input is named by its path relative to the
// directory it was found in, or as given.
func readInputs(files []string, stdin io.Reader) ([]convert.Input, error) {
	var inputs []convert.Input
	for _, f := range files {
		if f == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading standard input: %w", err)
			}
			inputs = append(inputs, convert.Input{Name: "stdin.yaml", Data: data})
			continue
		}
		info, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		if !info.IsDir() {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", f, err)
			}
			inputs = append(inputs, convert.Input{Name: filepath.Base(f), Data: data})
			continue
		}
		var paths []string
		err = filepath.WalkDir(f, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				paths = append(paths, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading directory %s: %w", f, err)
		}
		slices.Sort(paths)
		for _, path := range paths {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", path, err)
			}
			rel, err := filepath.Rel(f, path)
			if err != nil {
				return nil, fmt.Errorf("naming %s: %w", path, err)
			}
			inputs = append(inputs, convert.Input{Name: rel, Data: data})
		}
	}
	return inputs, nil
}

// writeOutputs writes the converted streams to stdout, one YAML stream, or each to its file
// under dir.
func writeOutputs(outputs []convert.Output, dir string, stdout io.Writer) error {
	if dir == "" {
		var parts []string
		for _, o := range outputs {
			if len(o.Data) > 0 {
				parts = append(parts, string(o.Data))
			}
		}
		return printf(stdout, "%s", strings.Join(parts, "---\n"))
	}
	for _, o := range outputs {
		path := filepath.Join(dir, o.Name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
		}
		if err := os.WriteFile(path, o.Data, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}
