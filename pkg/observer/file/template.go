package file

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
)

// MaxReportOutput caps the captured output handed to a report template:
// the last MaxReportOutput bytes of cout.txt.
const MaxReportOutput = 1 << 20

// templatePath is the report template: --template, or BASEDIR/template.html
// when it exists, or "".
func (o *Observer) templatePath() string {
	if t := o.settings.Flag(FlagTemplate); t != "" {
		return t
	}
	p := filepath.Join(o.cfg.Abs, TemplateName)
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return p
	}
	return ""
}

// renderReport writes report<ext> into the run directory from the report
// template, if there is one. A failure is one warning line; the run record
// is complete already.
func (o *Observer) renderReport() {
	tpl := o.templatePath()
	if tpl == "" {
		return
	}
	if err := o.writeReport(tpl); err != nil {
		fmt.Fprintf(o.settings.Warn, "file storage: run %s: no report from template %s: %v\n",
			o.id, tpl, strings.ReplaceAll(err.Error(), "\n", " "))
	}
}

// ReportData is what a report template sees: .run (the run.json content),
// .config, .info, .cout (the end of the captured output, at most
// MaxReportOutput bytes) and .savedir (the run directory).
type ReportData = map[string]any

func (o *Observer) writeReport(tpl string) error {
	src, err := os.ReadFile(tpl)
	if err != nil {
		return err
	}
	cout, err := o.coutTail(MaxReportOutput)
	if err != nil {
		return err
	}
	info := o.info
	if info == nil {
		info = map[string]any{}
	}
	data := ReportData{
		"run":     o.run,
		"config":  o.config,
		"info":    info,
		"cout":    cout,
		"savedir": o.runDir,
	}
	_, ext := splitExt(filepath.Base(tpl))
	var out bytes.Buffer
	// Go templates call no code but the methods of the data given, which
	// here are plain maps, lists and strings; no functions are added.
	if l := strings.ToLower(ext); l == ".html" || l == ".htm" {
		t, err := htmltemplate.New(filepath.Base(tpl)).Option("missingkey=zero").Parse(string(src))
		if err != nil {
			return err
		}
		if err := t.Execute(&out, data); err != nil {
			return err
		}
	} else {
		t, err := texttemplate.New(filepath.Base(tpl)).Option("missingkey=zero").Parse(string(src))
		if err != nil {
			return err
		}
		if err := t.Execute(&out, data); err != nil {
			return err
		}
	}
	return writeFileAtomic(filepath.Join(o.runDir, "report"+ext), out.Bytes())
}

// coutTail returns the last limit bytes of cout.txt.
func (o *Observer) coutTail(limit int64) (string, error) {
	f, err := os.Open(filepath.Join(o.runDir, CoutFile))
	if isNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	start := max(0, fi.Size()-limit)
	b, err := io.ReadAll(io.NewSectionReader(f, start, fi.Size()-start))
	return string(b), err
}
