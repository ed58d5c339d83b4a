package hl7

import (
	"bytes"
	"fmt"
	"strconv"
)

// File is a parsed HL7 batch file: an optional FHS, one or more batches,
// and an FTS when there was an FHS. A file of consecutive messages with
// no batch segments at all is one batch with no header.
type File struct {
	Header  *Segment // FHS; nil when absent
	Trailer *Segment // FTS; nil when absent
	Batches []*Batch
}

// Batch is one BHS ... BTS group of a [File].
type Batch struct {
	Header   *Segment // BHS; nil when absent
	Trailer  *Segment // BTS; nil when absent
	Messages []*Message
}

// Messages returns every message in the file, in order.
func (f *File) Messages() []*Message {
	var out []*Message
	for _, b := range f.Batches {
		out = append(out, b.Messages...)
	}
	return out
}

// ParseFile splits a batch file into its messages and parses each with
// [Parse] and opts (the size limit applies to each message). Each message
// keeps its exact bytes and its own delimiters and character set. The
// counts in BTS-1 and FTS-1, when valued, must match the messages and
// batches found, and a batch or file header needs its trailer; otherwise
// ParseFile fails with an error matching [ErrBatchCount] that names both
// counts. A message that fails to parse fails the file, with its position.
func ParseFile(raw []byte, opts ...Option) (*File, error) {
	p := &fileParser{f: &File{}, raw: raw, opts: opts}
	for _, sp := range lineSpans(raw) {
		if err := p.line(sp); err != nil {
			return nil, err
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p.f, nil
}

// span is one line of a file: its text is raw[start:end] and the next line
// begins at next.
type span struct{ start, end, next int }

// lineSpans splits raw into lines the way [Parse] splits segments: on CR
// (with a following LF), or on LF when raw has no CR.
func lineSpans(raw []byte) []span {
	sep := byte('\r')
	if bytes.IndexByte(raw, '\r') < 0 {
		sep = '\n'
	}
	var out []span
	for pos := 0; pos < len(raw); {
		i := bytes.IndexByte(raw[pos:], sep)
		if i < 0 {
			out = append(out, span{pos, len(raw), len(raw)})
			break
		}
		end, next := pos+i, pos+i+1
		if sep == '\r' && next < len(raw) && raw[next] == '\n' {
			next++
		}
		out = append(out, span{pos, end, next})
		pos = next
	}
	return out
}

type fileParser struct {
	f     *File
	raw   []byte
	opts  []Option
	batch *Batch // the open batch, nil before the first
	msg   int    // start of the open message
	open  bool   // a message is open
	delim Delimiters
	done  bool // FTS seen
}

func (p *fileParser) line(sp span) error {
	text := bytes.TrimLeft(p.raw[sp.start:sp.end], " \t\n\v\f")
	text = bytes.TrimPrefix(text, []byte("\ufeff"))
	if len(text) == 0 {
		return nil // blank: belongs to the open message, if any
	}
	if p.done {
		return rejectf(ErrSegment, CodeSegmentSequence, "segment after FTS")
	}
	name := string(text[:min(3, len(text))])
	switch name {
	case "FHS":
		return p.fileHeader(text)
	case "BHS", "MSH", "BTS", "FTS":
		if err := p.closeMessage(sp.start); err != nil {
			return err
		}
	default:
		if !p.open {
			return rejectf(ErrSegment, CodeSegmentSequence, "segment outside a message in batch file")
		}
		return nil
	}
	switch name {
	case "BHS":
		return p.batchHeader(text)
	case "MSH":
		p.ensureBatch()
		p.msg, p.open = sp.start, true
		return nil
	case "BTS":
		return p.batchTrailer(text)
	}
	return p.fileTrailer(text)
}

func (p *fileParser) fileHeader(text []byte) error {
	if p.f.Header != nil || p.batch != nil {
		return rejectf(ErrSegment, CodeSegmentSequence, "FHS is not the first segment")
	}
	seg, d, err := headerSegment(text)
	if err != nil {
		return err
	}
	p.f.Header, p.delim = seg, d
	return nil
}

func (p *fileParser) batchHeader(text []byte) error {
	if p.batch != nil && p.batch.Trailer == nil && p.batch.Header != nil {
		return rejectf(ErrBatchCount, CodeSegmentSequence, "batch %d has no BTS trailer", len(p.f.Batches))
	}
	seg, d, err := headerSegment(text)
	if err != nil {
		return err
	}
	p.batch = &Batch{Header: seg}
	p.f.Batches = append(p.f.Batches, p.batch)
	p.delim = d
	return nil
}

func (p *fileParser) ensureBatch() {
	if p.batch == nil || p.batch.Trailer != nil {
		p.batch = &Batch{}
		p.f.Batches = append(p.f.Batches, p.batch)
	}
}

// closeMessage parses the open message, which ends where the segment at
// end begins.
func (p *fileParser) closeMessage(end int) error {
	if !p.open {
		return nil
	}
	p.open = false
	m, err := Parse(p.raw[p.msg:end], p.opts...)
	if err != nil {
		n := len(p.f.Messages()) + 1
		if e, ok := err.(*Error); ok {
			e.Reason = fmt.Sprintf("message %d: %s", n, e.Reason)
		}
		return err
	}
	p.batch.Messages = append(p.batch.Messages, m)
	return nil
}

func (p *fileParser) batchTrailer(text []byte) error {
	p.ensureBatch()
	seg, err := p.trailer(text)
	if err != nil {
		return err
	}
	p.batch.Trailer = seg
	return checkCount(seg, "BTS-1", len(p.batch.Messages), "messages")
}

func (p *fileParser) fileTrailer(text []byte) error {
	if p.batch != nil && p.batch.Header != nil && p.batch.Trailer == nil {
		return rejectf(ErrBatchCount, CodeSegmentSequence, "batch %d has no BTS trailer", len(p.f.Batches))
	}
	seg, err := p.trailer(text)
	if err != nil {
		return err
	}
	p.f.Trailer, p.done = seg, true
	return checkCount(seg, "FTS-1", len(p.f.Batches), "batches")
}

func (p *fileParser) trailer(text []byte) (*Segment, error) {
	d := p.delim
	if d.Field == 0 {
		d = DefaultDelimiters
	}
	return parseSegment(string(text), &codec{d: d})
}

func (p *fileParser) finish() error {
	if err := p.closeMessage(len(p.raw)); err != nil {
		return err
	}
	switch {
	case len(p.f.Messages()) == 0:
		return rejectf(ErrNotHL7, CodeSegmentSequence, "batch file holds no messages")
	case p.batch != nil && p.batch.Header != nil && p.batch.Trailer == nil:
		return rejectf(ErrBatchCount, CodeSegmentSequence, "batch %d has no BTS trailer", len(p.f.Batches))
	case p.f.Header != nil && p.f.Trailer == nil:
		return rejectf(ErrBatchCount, CodeSegmentSequence, "file has no FTS trailer")
	}
	return nil
}

// headerSegment parses an FHS or BHS, whose delimiters it declares.
func headerSegment(text []byte) (*Segment, Delimiters, error) {
	d, _, err := readDelimiters(text)
	if err != nil {
		return nil, d, err
	}
	seg, err := parseSegment(string(text), &codec{d: d})
	return seg, d, err
}

// checkCount compares a trailer's count field, when valued, with what
// was found.
func checkCount(seg *Segment, field string, found int, what string) error {
	v := seg.Get(field[4:])
	if stateOf(v) != Valued {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return &Error{
			Code: CodeDataType, Reject: true, Err: ErrBatchCount,
			Location: mustLocation(field), Reason: "count is not a number",
		}
	}
	if n != found {
		return &Error{
			Code: CodeSegmentSequence, Reject: true, Err: ErrBatchCount, Location: mustLocation(field),
			Reason: fmt.Sprintf("trailer counts %d %s, found %d", n, what, found),
		}
	}
	return nil
}
