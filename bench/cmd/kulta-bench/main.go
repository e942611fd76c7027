// Command kulta-bench measures what KULTA's controller costs at scale against a real API
// server (envtest's etcd and kube-apiserver), with the controller as its own process, and
// compares it with a plain client doing the minimum writes. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/bench/harness"
	"github.com/false-systems/kulta/internal/controller/rollout"
	"github.com/false-systems/kulta/internal/testenv"
)

type flags struct {
	ns          []int
	waves       int
	qps         float64
	burst       int
	reconcilers int
	timeout     time.Duration
	settle      time.Duration
	scrape      time.Duration
	memLimit    string
	shards      int
	workers     int
	out         string
	summary     string
	earlier     bool
	reportOnly  bool
	logLevel    string
	keepLogs    bool
	// perNamespace is -per-namespace.
	perNamespace int
	// provider is -provider.
	provider string
}

func parse(args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("kulta-bench", flag.ContinueOnError)
	n := fs.String("n", "100,1000,5000", "Comma-separated numbers of Rollouts; each N runs on a fresh API server.")
	fs.IntVar(&f.waves, "waves", 2, "Update waves per N (each changes every Rollout's image once).")
	fs.Float64Var(&f.qps, "qps", 50, "The controller's --kube-api-qps; the floor client uses the same limit.")
	fs.IntVar(&f.burst, "burst", 100, "The controller's --kube-api-burst; the floor client uses the same burst.")
	fs.IntVar(&f.reconcilers, "reconcilers", rollout.DefaultMaxConcurrentReconciles, "The controller's --max-concurrent-reconciles (its default).")
	fs.DurationVar(&f.timeout, "timeout", 60*time.Minute, "Bound on the whole run; everything is stopped when it passes.")
	fs.DurationVar(&f.settle, "settle", 10*time.Second, "Watch time after each wave (steady memory, writes when nothing changes).")
	fs.DurationVar(&f.scrape, "scrape-interval", 5*time.Second, "How often the bench reads the controller's /metrics for heap and goroutines (/proc is read every second).")
	fs.StringVar(&f.memLimit, "memory-limit", "", "Run the controller as in a container with this memory limit (\"300Mi\"): GOMEMLIMIT at 0.9 of it, as --auto-gomemlimit-ratio sets it. Results are named results-<N>-limit-<limit>.")
	fs.IntVar(&f.shards, "shards", 1, "Split the Rollouts over this many controller processes: Rollout i labelled "+kultav1alpha1.ShardLabel+"=s<i mod K>, process k run with --shard-key=s<k>. Results of K above 1 are named results-<N>-shards-<K>.")
	fs.IntVar(&f.perNamespace, "per-namespace", harness.PerNamespace, "Rollouts to a namespace. Results of another number are named results-<N>-per-ns-<P>.")
	fs.StringVar(&f.provider, "provider", harness.ProviderGatewayAPI, "Traffic provider the Rollouts route through: "+strings.Join(harness.Providers, " or ")+
		" (an HTTPRoute each, or a stable Ingress each beside which KULTA keeps a canary Ingress). The controller runs that provider alone. Results of another than "+
		harness.ProviderGatewayAPI+" are named results-<N>-<provider>.")
	fs.IntVar(&f.workers, "workers", 16, "Concurrent requests when creating objects, patching images and in the floor.")
	fs.StringVar(&f.out, "out", "bench/results", "Folder for results-<N>.json and results-<N>.md.")
	fs.StringVar(&f.summary, "summary", "bench/RESULTS.md", "Markdown summary of this invocation's runs; empty to skip.")
	fs.BoolVar(&f.earlier, "with-earlier", false, "Also summarise the results already in -out for numbers of Rollouts not run now (each section gives its date).")
	fs.StringVar(&f.logLevel, "controller-log-level", "info", "The controller's --zap-log-level; debug also logs each status write and the fields it changed (more CPU: for finding out, not for figures).")
	fs.BoolVar(&f.keepLogs, "keep-logs", false, "Keep the work folder with the controller's and stand-ins' logs after a run that succeeds (it is always kept after one that fails).")
	fs.BoolVar(&f.reportOnly, "report-only", false, "Run nothing: write -summary from the results saved in -out.")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("parsing flags: %w", err)
	}
	for _, s := range strings.Split(*n, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("-n: %q is not a positive number", s)
		}
		f.ns = append(f.ns, v)
	}
	sort.Ints(f.ns)
	if f.waves < 1 || f.workers < 1 || f.qps <= 0 || f.burst < 1 || f.reconcilers < 1 || f.scrape <= 0 || f.shards < 1 || f.perNamespace < 1 {
		return nil, errors.New("-waves, -workers, -qps, -burst, -reconcilers, -scrape-interval, -shards and -per-namespace must be positive")
	}
	if !slices.Contains(harness.Providers, f.provider) {
		return nil, fmt.Errorf("-provider: %q is not one of %s", f.provider, strings.Join(harness.Providers, ", "))
	}
	return f, nil
}

func main() {
	f, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	err = run(ctx, f, os.Args[1:])
	cancel()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kulta-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, f *flags, args []string) (err error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	if f.reportOnly {
		return reportOnly(root, f, args)
	}
	work, err := os.MkdirTemp("", "kulta-bench-")
	if err != nil {
		return fmt.Errorf("creating a work folder: %w", err)
	}
	fmt.Fprintln(os.Stderr, "kulta-bench: logs in", work)
	machine, err := harness.DescribeMachine()
	if err != nil {
		return err
	}
	// Read just before the build; a change made while it compiles is not seen.
	var source *harness.Source
	if s, err := harness.ReadSource(ctx, root); err != nil {
		fmt.Fprintln(os.Stderr, "kulta-bench: the results will not name the commit measured:", err)
	} else {
		source = &s
	}
	bin, err := harness.BuildController(ctx, root, work)
	if err != nil {
		return err
	}
	out, summary := abs(root, f.out), abs(root, f.summary)
	var results []*harness.Result
	for _, n := range f.ns {
		dir := filepath.Join(work, fmt.Sprintf("n-%d", n))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
		res, err := harness.Run(ctx, harness.Config{
			N: n, Waves: f.waves, QPS: f.qps, Burst: f.burst, Reconcilers: f.reconcilers, Settle: f.settle, ScrapeInterval: f.scrape, MemoryLimit: f.memLimit,
			Shards: f.shards, PerNamespace: f.perNamespace, Provider: f.provider, Workers: f.workers, Binary: bin, Source: source, Build: harness.ControllerBuild.String(), WorkDir: dir, Log: os.Stderr,
			ControllerLogLevel: f.logLevel,
		})
		if err != nil {
			return fmt.Errorf("run with %d Rollouts (logs in %s): %w", n, dir, err)
		}
		if err := harness.WriteResult(out, machine, res); err != nil {
			return err
		}
		results = append(results, res)
	}
	if summary != "" && f.earlier {
		if results, err = withEarlier(out, results); err != nil {
			return err
		}
	}
	if summary != "" {
		command := "go run ./bench/cmd/kulta-bench " + strings.Join(args, " ")
		if err := harness.WriteSummary(summary, machine, results, strings.TrimSpace(command)); err != nil {
			return err
		}
	}
	if f.keepLogs {
		fmt.Fprintln(os.Stderr, "kulta-bench: logs kept in", work)
		return nil
	}
	if err := os.RemoveAll(work); err != nil {
		return fmt.Errorf("removing %s: %w", work, err)
	}
	return nil
}

// reportOnly writes the summary from the results saved in f.out.
func reportOnly(root string, f *flags, args []string) error {
	out, summary := abs(root, f.out), abs(root, f.summary)
	if summary == "" {
		return errors.New("-report-only needs -summary")
	}
	results, err := harness.ReadResults(out)
	if err != nil {
		return err
	}
	if len(results) == 0 {
		return fmt.Errorf("no results-<N>.json in %s", out)
	}
	for _, res := range results {
		if err := harness.WriteResultPage(out, res); err != nil {
			return err
		}
	}
	machine, err := harness.DescribeMachine()
	if err != nil {
		return err
	}
	return harness.WriteSummary(summary, machine, results, strings.TrimSpace("go run ./bench/cmd/kulta-bench "+strings.Join(args, " ")))
}

// withEarlier adds to results those saved in dir for the runs (a number of Rollouts, with or
// without a memory limit, in one process or in shards) not among them.
func withEarlier(dir string, results []*harness.Result) ([]*harness.Result, error) {
	saved, err := harness.ReadResults(dir)
	if err != nil {
		return nil, err
	}
	ran := map[string]bool{}
	for _, r := range results {
		ran[r.Name()] = true
	}
	for _, r := range saved {
		if !ran[r.Name()] {
			results = append(results, r)
		}
	}
	harness.SortResults(results)
	return results, nil
}

// abs resolves a path given relative to the repository root; empty stays empty.
func abs(root, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}
