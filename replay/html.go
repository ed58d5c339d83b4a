package replay

import (
	_ "embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"slices"
	"time"
)

//go:embed report.html.tmpl
var htmlTemplate string

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"time": timeText,
	"hex":  hex.EncodeToString,
}).Parse(htmlTemplate))

// Chart geometry, in SVG user units.
const (
	chartWidth  = 900
	labelWidth  = 180
	rowHeight   = 28
	chartMargin = 20
	// barTextWidth is kept free after the longest bar for its counts.
	barTextWidth = 90
)

// point is one message on the timeline.
type point struct {
	X, Y   float64
	Class  string // status
	Title  string
	Radius float64
}

// bar is one flow's stacked counts.
type bar struct {
	Label                 string
	Y, X                  float64
	Valid, Failed, Miss   float64 // widths
	NValid, NFail, NMiss  int
	FailedX, MissX, TextX float64
}

type row struct {
	Label string
	Y     float64
}

type htmlData struct {
	R         *Report
	Bad       []Message
	Rows      []row
	Points    []point
	Bars      []bar
	Height    int
	BarHeight int
	Width     int
	Label     int
	From, To  string
}

// WriteHTML writes r as one self-contained HTML page: a summary, a
// timeline of the messages by flow, a chart of outcomes by flow, the
// failed and missing messages, and every message. It loads nothing from
// anywhere: styles and charts (SVG) are inline.
func (r *Report) WriteHTML(w io.Writer) error {
	d := htmlData{R: r, Bad: r.Bad(), Width: chartWidth, Label: labelWidth}
	flows := flowsOf(r.Messages)
	for i, f := range flows {
		d.Rows = append(d.Rows, row{Label: f, Y: float64(chartMargin + i*rowHeight)})
	}
	d.Height = chartMargin*2 + len(flows)*rowHeight
	d.BarHeight = d.Height
	lo, hi := timeRange(r.Messages)
	d.From, d.To = timeText(lo), timeText(hi)
	span := hi.Sub(lo)
	plot := float64(chartWidth - labelWidth - 2*chartMargin)
	for _, m := range r.Messages {
		t := when(m)
		x := float64(labelWidth + chartMargin)
		if span > 0 && !t.IsZero() {
			x += plot * float64(t.Sub(lo)) / float64(span)
		}
		y := float64(chartMargin+slices.Index(flows, flowOf(m))*rowHeight) + rowHeight/2
		d.Points = append(d.Points, point{
			X: x, Y: y, Class: string(m.Status), Radius: 5,
			Title: fmt.Sprintf("seq %d %s %s %s", m.Seq, m.MessageID, m.Status, m.Problem),
		})
	}
	// The bars leave room at their end for the counts.
	d.Bars = bars(r.Messages, flows, plot-barTextWidth)
	return reportTemplate.Execute(w, d)
}

func when(m Message) time.Time {
	if !m.Stored.IsZero() {
		return m.Stored
	}
	return m.PublishedAt
}

func flowOf(m Message) string { return m.Sender + " → " + m.Recipient + " (" + m.Type + ")" }

func flowsOf(ms []Message) []string {
	var out []string
	for _, m := range ms {
		if f := flowOf(m); !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

func timeRange(ms []Message) (lo, hi time.Time) {
	for _, m := range ms {
		t := when(m)
		if t.IsZero() {
			continue
		}
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		if t.After(hi) {
			hi = t
		}
	}
	return lo, hi
}

func bars(ms []Message, flows []string, plot float64) []bar {
	counts := make([][3]int, len(flows))
	most := 1
	for _, m := range ms {
		c := &counts[slices.Index(flows, flowOf(m))]
		switch m.Status {
		case StatusValid:
			c[0]++
		case StatusFailed:
			c[1]++
		default:
			c[2]++
		}
		most = max(most, c[0]+c[1]+c[2])
	}
	out := make([]bar, len(flows))
	unit := plot / float64(most)
	for i, f := range flows {
		c := counts[i]
		b := bar{
			Label: f, Y: float64(chartMargin + i*rowHeight + 4),
			Valid: unit * float64(c[0]), Failed: unit * float64(c[1]), Miss: unit * float64(c[2]),
			NValid: c[0], NFail: c[1], NMiss: c[2],
		}
		b.X = labelWidth + chartMargin
		b.FailedX = b.X + b.Valid
		b.MissX = b.FailedX + b.Failed
		b.TextX = b.MissX + 6
		out[i] = b
	}
	return out
}
