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

	"github.com/sacred-go/sacred/pkg/observer/file/layout"
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
	p := filepath.Join(o.cfg.Abs, layout.TemplateName)
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
	// The observer keeps config and info only as the bytes it wrote.
	config, info := map[string]any{}, map[string]any{}
	for _, f := range []struct {
		data []byte
		dst  *map[string]any
	}{{o.configJSON, &config}, {o.infoJSON, &info}} {
		if f.data == nil {
			continue
		}
		v, err := layout.Decode(f.data)
		if err != nil {
			return err
		}
		if m, ok := v.(map[string]any); ok {
			*f.dst = m
		}
	}
	data := ReportData{
		"run":     map[string]any(o.run),
		"config":  config,
		"info":    info,
		"cout":    cout,
		"savedir": o.runDir,
	}
	_, ext := layout.SplitExt(filepath.Base(tpl))
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
	return writeFileAtomic(filepath.Join(o.runDir, layout.ReportStem+ext), out.Bytes())
}

// coutTail returns the last limit bytes of cout.txt.
func (o *Observer) coutTail(limit int64) (string, error) {
	f, err := os.Open(filepath.Join(o.runDir, layout.CoutFile))
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
