package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/ipc/api"
)

// labCmds are the hardware lab's key commands: the conformance battery
// and the inventory.
func labCmds(a *app) []*cobra.Command {
	return []*cobra.Command{keyCheckCmd(a), keyInventoryCmd(a), keyWatchCmd(a)}
}

// checkReportFile is the JSON report: every key's report of one run
// (schema in docs/hardware.md).
type checkReportFile struct {
	Version   int                  `json:"version"`
	Generated time.Time            `json:"generated"`
	Reports   []api.KeyCheckReport `json:"reports"`
}

const checkReportVersion = 1

func keyCheckCmd(a *app) *cobra.Command {
	var all, destructive, destructiveAll, askPIN bool
	var report, output string
	var only []string
	cmd := &cobra.Command{
		Use:   "check [KEY...|--all]",
		Short: "Run the conformance battery on keys and report per check (admin)",
		Long: `Runs mfad's conformance battery on each key named (by id or serial) or on
every connected key (--all): CTAPHID transport, GetInfo, MakeCredential and
GetAssertion, U2F, and with --destructive the PIN and reset checks, which
change what the key holds. Destructive checks run only on keys named on the
command line, after confirmation (--yes), or on --all with --destructive-all.

Progress and touch prompts go to stderr; the report goes to stdout or
--output: a table, or --report json (docs/hardware.md) or junit (one
testsuite per key, one testcase per check). The exit status is 1 when a
check failed.`,
		Example: `  mfactl key check hidraw3
  mfactl key check --all --report junit --output keys.xml
  mfactl key check 1234567 --destructive --pin --yes --report json`,
		ValidArgsFunction: a.completeKeys,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usagef("name keys or give --all, not both")
			case !all && len(args) == 0:
				return usagef("name the keys to check, or give --all")
			case report != "" && report != "json" && report != "junit":
				return usagef("--report is json or junit")
			case destructiveAll && !all:
				return usagef("--destructive-all goes with --all")
			case all && destructive && !destructiveAll:
				return usagef("destructive checks on every connected key need --destructive-all as well")
			}
			keys, err := a.client().Keys(cmd.Context())
			if err != nil {
				return err
			}
			ids, err := pickKeys(keys, args, all)
			if err != nil {
				return err
			}
			if destructive {
				if err := a.confirm("the destructive checks set a PIN on, make credentials on and reset key(s) " + strings.Join(ids, ", ")); err != nil {
					return err
				}
			}
			req := api.KeyCheckRequest{Destructive: destructive, Only: only}
			if askPIN {
				if req.PIN, err = readSecret("Key PIN (the key's own, or the one the PIN checks set): "); err != nil {
					return err
				}
			}
			var reports []api.KeyCheckReport
			failed := 0
			for _, id := range ids {
				rep, err := a.client().CheckKey(cmd.Context(), id, req, a.checkProgress(id))
				if err != nil {
					return fmt.Errorf("key %s: %w", id, err)
				}
				reports = append(reports, *rep)
				failed += rep.Failed
				if !a.json {
					fmt.Fprintf(a.errOut, "%s: %d passed, %d failed, %d skipped; the key may be removed\n", id, rep.Passed, rep.Failed, rep.Skipped)
				}
			}
			if err := a.writeCheckReport(reports, report, output); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d check(s) failed", failed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "check every connected key")
	cmd.Flags().StringVar(&report, "report", "", "report format: json or junit (default a table)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the report to `FILE` instead of stdout")
	cmd.Flags().BoolVar(&destructive, "destructive", false, "also run the checks that change the key: PIN set and change, reset after a replug")
	cmd.Flags().BoolVar(&destructiveAll, "destructive-all", false, "allow --destructive together with --all")
	cmd.Flags().BoolVar(&askPIN, "pin", false, "ask for the key's PIN (or the PIN the destructive checks set)")
	cmd.Flags().StringSliceVar(&only, "only", nil, "run only these check `IDS` (comma-separated)")
	return a.yesFlag(cmd)
}

// pickKeys resolves the keys named by id or serial, or takes every key.
func pickKeys(keys []api.Key, names []string, all bool) ([]string, error) {
	var ids []string
	if all {
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		if len(ids) == 0 {
			return nil, &api.Problem{Code: api.CodeKeyNotFound, Detail: "no key is connected"}
		}
		return ids, nil
	}
	for _, n := range names {
		var match []string
		for _, k := range keys {
			if k.ID == n || (k.Serial != "" && k.Serial == n) {
				match = append(match, k.ID)
			}
		}
		switch len(match) {
		case 0:
			return nil, &api.Problem{Code: api.CodeKeyNotFound, Detail: "no connected key with id or serial " + n}
		case 1:
			ids = append(ids, match[0])
		default:
			return nil, usagef("%s names %d keys (%s): use the key id", n, len(match), strings.Join(match, ", "))
		}
	}
	return ids, nil
}

// checkProgress shows which key, which check, and what the user must do.
// With --json it stays quiet.
func (a *app) checkProgress(id string) func(api.Event) {
	return func(e api.Event) {
		if a.json || e.Check == nil {
			return
		}
		c := e.Check
		switch e.Event {
		case "check_started":
			fmt.Fprintf(a.errOut, "%s: %s ...\n", id, c.ID)
		case "check_done":
			line := fmt.Sprintf("%s: %s %s", id, c.ID, c.Result)
			if c.Reason != "" {
				line += ": " + c.Reason
			}
			fmt.Fprintln(a.errOut, line)
		case "touch_required", "do_not_touch", "replug_required":
			fmt.Fprintf(a.errOut, "%s: >>> %s\n", id, e.Message)
		}
	}
}

// writeCheckReport writes the reports as a table, JSON or JUnit.
func (a *app) writeCheckReport(reports []api.KeyCheckReport, format, output string) (err error) {
	w := a.out
	if output != "" {
		f, err := os.Create(output)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		w = f
	}
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(checkReportFile{Version: checkReportVersion, Generated: time.Now().UTC(), Reports: reports})
	case "junit":
		return writeJUnit(w, reports)
	}
	if a.json {
		return a.print(reports, nil)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range reports {
		k := r.Key
		aaguid := k.AAGUID
		if k.AAGUIDDescription != "" {
			aaguid += " (" + k.AAGUIDDescription + ")"
		}
		fmt.Fprintf(tw, "key %s\t%s %s, serial %s, %04x:%04x, aaguid %s, firmware %d, device %s\n", k.ID,
			k.Manufacturer, k.Product, dash(k.Serial), k.VendorID, k.ProductID, aaguid, k.Firmware, k.DeviceVersion)
		for _, c := range r.Results {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.ID, strings.ToUpper(c.Result), c.Section, c.Reason)
		}
		fmt.Fprintf(tw, "  %d passed, %d failed, %d skipped\t\t\t\n", r.Passed, r.Failed, r.Skipped)
	}
	return tw.Flush()
}

// JUnit XML as CI systems read it: one testsuite per key, one testcase per
// check; a failed check is a <failure>, a skipped one <skipped>; what the
// check observed is the testcase's system-out.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	ID         string          `xml:"id,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func seconds(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }

// suiteName names a key for people reading a CI page.
func suiteName(k api.KeyIdentity) string {
	name := strings.TrimSpace(k.Manufacturer + " " + k.Product)
	if name == "" {
		name = k.AAGUIDDescription
	}
	if name == "" {
		name = "security key"
	}
	if k.Serial != "" {
		name += " " + k.Serial
	}
	return name + " (" + k.ID + ")"
}

func writeJUnit(w io.Writer, reports []api.KeyCheckReport) error {
	out := junitSuites{Name: "mfad key check"}
	var total int64
	for _, r := range reports {
		k := r.Key
		s := junitSuite{Name: suiteName(k), ID: k.ID, Tests: len(r.Results), Failures: r.Failed, Skipped: r.Skipped,
			Time: seconds(r.DurationMS), Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05")}
		props := [][2]string{
			{"id", k.ID}, {"driver", k.Driver}, {"path", k.Path},
			{"vendor_id", fmt.Sprintf("%04x", k.VendorID)}, {"product_id", fmt.Sprintf("%04x", k.ProductID)},
			{"manufacturer", k.Manufacturer}, {"product", k.Product}, {"serial", k.Serial},
			{"aaguid", k.AAGUID}, {"aaguid_description", k.AAGUIDDescription},
			{"firmware", strconv.FormatUint(k.Firmware, 10)}, {"device_version", k.DeviceVersion},
			{"versions", strings.Join(k.Versions, " ")},
		}
		for _, p := range props {
			if p[1] != "" {
				s.Properties = append(s.Properties, junitProperty{Name: p[0], Value: p[1]})
			}
		}
		for _, c := range r.Results {
			tc := junitCase{Name: c.ID + ": " + c.Name + " [" + c.Section + "]", Classname: "mfad.keycheck." + c.ID,
				Time: seconds(c.DurationMS), SystemOut: strings.Join(c.Observed, "\n")}
			switch c.Result {
			case "fail":
				tc.Failure = &junitMessage{Message: c.Reason, Type: "fail", Text: strings.Join(c.Observed, "\n")}
			case "skip":
				tc.Skipped = &junitMessage{Message: c.Reason}
			}
			s.Cases = append(s.Cases, tc)
		}
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Skipped += s.Skipped
		total += r.DurationMS
		out.Suites = append(out.Suites, s)
	}
	out.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func keyWatchCmd(a *app) *cobra.Command {
	var check bool
	var report, dir string
	cmd := &cobra.Command{
		Use:   "watch --check",
		Short: "Run the battery on each key as it is plugged in, one report per key (admin)",
		Long: `Follows the keys plugged in and runs the non-destructive battery on each, at
the same time on several keys; prompts and progress go to stderr, each line
naming its key, and a line says when a key may be removed. With --report and
--output DIR, each key's report is written to DIR, named by its serial (or
its id when it has none). Stop with Ctrl-C.`,
		Example: `  mfactl key watch --check
  mfactl key watch --check --report junit --output reports/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case !check:
				return usagef("give --check: key watch runs the battery on each key plugged in")
			case report != "" && report != "json" && report != "junit":
				return usagef("--report is json or junit")
			case (report == "") != (dir == ""):
				return usagef("--report and --output DIR go together")
			}
			if dir != "" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			var wg sync.WaitGroup
			defer wg.Wait()
			err := a.client().Events(ctx, func(e api.Event) bool {
				if e.Event == "subscribed" {
					fmt.Fprintln(a.errOut, "Waiting for keys; plug them in one after another (Ctrl-C to stop).")
				}
				if e.Event != "key_added" || e.Key == nil {
					return true
				}
				k := *e.Key
				wg.Add(1)
				go func() {
					defer wg.Done()
					a.watchCheck(ctx, k, report, dir)
				}()
				return true
			})
			if ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "run the battery on each key plugged in")
	cmd.Flags().StringVar(&report, "report", "", "write each key's report as json or junit")
	cmd.Flags().StringVarP(&dir, "output", "o", "", "the `DIR` for the reports")
	return cmd
}

// watchCheck runs the battery on one key that was just plugged in.
func (a *app) watchCheck(ctx context.Context, k api.Key, report, dir string) {
	fmt.Fprintf(a.errOut, "%s: plugged in (%s); checking, do not remove it\n", k.ID, strings.TrimSpace(k.Manufacturer+" "+k.Product+" "+k.Serial))
	rep, err := a.client().CheckKey(ctx, k.ID, api.KeyCheckRequest{}, a.checkProgress(k.ID))
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(a.errOut, "%s: the battery did not run: %s\n", k.ID, describe(err))
		}
		return
	}
	verdict := "all checks passed or were skipped"
	if rep.Failed > 0 {
		verdict = fmt.Sprintf("%d check(s) FAILED", rep.Failed)
	}
	if dir != "" {
		name := reportName(k)
		if report == "junit" {
			name += ".xml"
		} else {
			name += ".json"
		}
		path := filepath.Join(dir, name)
		if err := a.writeCheckReport([]api.KeyCheckReport{*rep}, report, path); err != nil {
			fmt.Fprintf(a.errOut, "%s: writing %s: %v\n", k.ID, path, err)
		} else {
			verdict += "; report " + path
		}
	}
	fmt.Fprintf(a.errOut, "%s: done, %s. The key may be removed.\n", k.ID, verdict)
}

// reportName names a key's report file: its serial, else its id, with
// anything but letters, digits, dot, dash and underscore replaced.
func reportName(k api.Key) string {
	n := k.Serial
	if n == "" {
		n = k.ID
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, n)
}

func keyInventoryCmd(a *app) *cobra.Command {
	var asCSV bool
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "List connected keys with their identity, as CSV or JSON lines",
		Example: `  mfactl key inventory --csv > tray-3.csv
  mfactl key inventory --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asCSV == a.json {
				return usagef("give --csv or --json")
			}
			keys, err := a.client().Keys(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return a.print(keys, nil)
			}
			return writeInventoryCSV(a.out, keys)
		},
	}
	cmd.Flags().BoolVar(&asCSV, "csv", false, "write CSV with a header row")
	return cmd
}

var inventoryHeader = []string{"id", "driver", "transport", "vendor_id", "product_id", "manufacturer", "product", "serial", "aaguid", "versions", "pin_set", "pin_retries", "status", "emulator_id"}

func writeInventoryCSV(w io.Writer, keys []api.Key) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(inventoryHeader); err != nil {
		return err
	}
	for _, k := range keys {
		pinSet := ""
		if v, ok := k.Options["clientPin"]; ok {
			pinSet = strconv.FormatBool(v)
		}
		retries := ""
		if k.PINRetries != nil {
			retries = strconv.Itoa(*k.PINRetries)
		}
		row := []string{k.ID, k.Driver, k.Transport, fmt.Sprintf("%04x", k.VendorID), fmt.Sprintf("%04x", k.ProductID),
			k.Manufacturer, k.Product, k.Serial, k.AAGUID, strings.Join(k.Versions, " "), pinSet, retries, k.Status, k.EmulatorID}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return errors.New("writing CSV: " + err.Error())
	}
	return nil
}
